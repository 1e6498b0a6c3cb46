"""The beat: publishes each tick of each periodic task once, cluster-wide.

Any number of beats may run. They compete for one lock with a lease in the App's result
store (`beat:<app>:leader`); the holder renews it every lease/3 and alone publishes.
What a new holder needs is in the store, never in a beat's memory:

- `beat:<app>:last:<name>`: the time up to which schedule <name> is handled (its ticks
  up to then were published, or dropped by its catch-up policy) and its last published
  tick. Written after publishing.
- `beat:<app>:alive`: the holder, the time of its last pass, and `until`: the end of the
  time it answers for (last pass + lease while it runs; its stop time once stopped).

A new holder publishes every tick after `last` that some beat answered for: the old
holder's gap (last pass, until], since it may have died without publishing them, and the
time this beat itself has been running. The other ticks fell while no beat ran at all:
the schedule's `catch_up` decides ("once": publish the latest of them; "skip"). A tick's
message id is derived from the schedule and the tick, with `once=True`: a holder that
dies after publishing but before recording is covered by the worker, which runs an id at
most once.

Runtime schedules (`app.schedules.add`, beat/runtime.py) are one more value,
`beat:<app>:schedules`, fetched with the others: a holder sees an addition, a change, a
pause or a removal at its next pass, within `REFRESH` seconds. Their ticks go through
the same lock, records and ids as those in code; none at or before the time a schedule
was added, changed or resumed fires.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from conveyor.app import App
from conveyor.beat.runtime import RuntimeEntries
from conveyor.errors import ConfigurationError, ConveyorError
from conveyor.lifecycle import schedule_store
from conveyor.message import Message, encode
from conveyor.periodic import PeriodicTask
from conveyor.schedules import ticks_between

logger = logging.getLogger("conveyor.beat")

KEEP = 400 * 86400.0  # how long last runs are kept: longer than any sensible outage
DEFAULT_LEASE = 10.0
MAX_TICKS = 10_000  # per schedule and pass: bounds a tiny interval over a long gap
REFRESH = 2.0  # the longest a holder waits between passes: how soon it sees runtime changes


class Alive(msgspec.Struct, frozen=True):
    """The last holder: its id, its last pass, the end of the time it answers for."""

    beat: str
    at: float
    until: float
    stopped: bool = False


class LastRun(msgspec.Struct, frozen=True):
    """A schedule's ticks up to `upto` are handled; `tick` is the last one published."""

    upto: float
    tick: float | None = None


_alive = msgspec.json.Decoder(Alive)
_last = msgspec.json.Decoder(LastRun)


def key(app: App, *parts: str) -> str:
    """`beat:<app>:leader`, `beat:<app>:alive`, `beat:<app>:last:<schedule>`: two Apps on
    one store have beats of their own."""
    return ":".join(("beat", app.name, *parts))


def read_alive(app: App) -> Alive | None:
    """The last leader's record (who, when), or None if no beat ever ran."""
    return decode_alive(app.coordination.fetch([key(app, "alive")])[0])


def iso(tick: float) -> str:
    return datetime.fromtimestamp(tick, UTC).isoformat().replace("+00:00", "Z")


def tick_id(app: str, schedule: str, tick: float) -> str:
    """The same id for the same tick in every beat, so a tick published twice is one task."""
    import hashlib  # here: OpenSSL costs every worker process MBs; only the beat needs it

    return hashlib.blake2b(f"{app}\0{schedule}\0{iso(tick)}".encode(), digest_size=16).hexdigest()


def decode_alive(raw: str | None) -> Alive | None:
    return _alive.decode(raw) if raw else None


def decode_last(raw: str | None) -> LastRun | None:
    return _last.decode(raw) if raw else None


def due_ticks(entry: PeriodicTask, upto: float, gap: tuple[float, float] | None,
              since: float, now: float) -> tuple[list[float], bool]:
    """Ticks of `entry` in (upto, now] to publish, and whether some fell while no beat ran.

    A beat answered for the ticks in `gap` (the last holder's) and from `since` on (this
    beat's own running time); every other tick was missed: `catch_up` decides.
    """
    schedule = entry.schedule
    # Ticks are whole seconds at least 1 s apart: a tick at `since` itself counts as on time.
    since = min(since, now) - 0.001
    covered = set(ticks_between(schedule, max(upto, since), now, MAX_TICKS))
    if gap is not None:
        covered.update(ticks_between(schedule, max(upto, gap[0]), min(gap[1], now), MAX_TICKS))
    missed = schedule.last_at_or_before(since)
    if gap is not None and gap[0] < missed <= gap[1]:
        missed = schedule.last_at_or_before(gap[0])
    if missed <= upto:
        return sorted(covered), False
    if entry.catch_up == "once":
        covered.add(missed)
    return sorted(covered), True


class Beat:
    """One beat. `step()` is one pass (claim or renew the lock; if held, publish what is
    due) and returns how long to wait before the next; `run()` loops until `stop()`.

    `clock` gives Unix time (tests pass a fake one and call `step()` themselves); `lease`
    is the lock's lease in seconds. Raises ConfigurationError at once if a schedule names
    a task not registered in this process or arguments that don't fit it.
    """

    def __init__(self, app: App, *, lease: float = DEFAULT_LEASE,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], object] | None = None,
                 beat_id: str | None = None, parent_pid: int | None = None) -> None:
        if isinstance(lease, bool) or not isinstance(lease, int | float) or lease <= 0:
            raise ConfigurationError(f"the beat's lease must be seconds > 0, got {lease!r}")
        self.app = app
        self.lease = float(lease)
        self.clock = clock
        self.sleep = sleep or self._wait
        self.id = beat_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.parent_pid = parent_pid
        self.leader_key, self._alive_key = key(app, "leader"), key(app, "alive")
        self.code_entries = list(app.periodic_tasks.values())
        for entry in self.code_entries:
            self._check(entry)
        self.runtime = RuntimeEntries(self._check_runtime, app.periodic_tasks)
        self._runtime_key = schedule_store.key(app.name)
        self.is_leader = False
        self._since: float | None = None  # since when this beat has been in touch
        self._contact = 0.0  # when its last round trip to the store ended
        self._last_pass: float | None = None
        self._stopping = threading.Event()
        self._release = True

    def _check(self, entry: PeriodicTask) -> None:
        task = self.app.tasks.get(entry.task)
        if task is None:
            raise ConfigurationError(
                f"periodic task {entry.name!r} names task {entry.task!r}, which is not "
                "registered: fix the name, or import the module that defines it from the "
                "module -A names")
        entry.check_arguments(task)
        entry.schedule.check()
        encode(self._message(entry, self.clock()), self.app.settings.max_message_size,
               task.param_names)

    def _check_runtime(self, entry: PeriodicTask) -> None:
        """A runtime schedule's task may be one only the workers import (sent by name)."""
        if entry.task in self.app.tasks:
            self._check(entry)
            return
        entry.schedule.check()
        encode(self._message(entry, self.clock()), self.app.settings.max_message_size)
        logger.warning("runtime schedule %s: task %s is not registered in this beat's App; "
                       "its ticks are sent by name", entry.name, entry.task)

    @property
    def entries(self) -> list[PeriodicTask]:
        """What this beat publishes: the schedules in code, then the active runtime ones."""
        return [*self.code_entries, *self.runtime.active.values()]

    # -- one pass --------------------------------------------------------------------

    def _read(self) -> tuple[Alive | None, list[LastRun | None]]:
        """The last holder's record and each entry's last run: one round trip, two when
        the runtime schedules changed (their entries' records are read then)."""
        store = self.app.coordination
        lasts = [key(self.app, "last", e.name) for e in self.entries]
        raw = store.fetch([self._alive_key, self._runtime_key, *lasts])
        if self.runtime.refresh(raw[1]):
            raw[2:] = store.fetch([key(self.app, "last", e.name) for e in self.entries])
        return decode_alive(raw[0]), [decode_last(r) for r in raw[2:]]

    def step(self) -> float:
        now = self.clock()
        if not self._claim(now):
            return min(1.0, self.lease / 3)
        store = self.app.coordination
        alive, lasts = self._read()
        gap = (alive.at, alive.until) if alive is not None else None
        since = self._since if self._since is not None else now
        messages: list[Message] = []
        writes: list[tuple[str, LastRun]] = []
        for entry, last in zip(self.entries, lasts, strict=True):
            floor = self.runtime.since.get(entry.name)  # runtime: when added or resumed
            if last is None and floor is None:  # a new schedule starts at its first tick from now
                writes.append((entry.name, LastRun(now)))
                continue
            upto = max(last.upto if last is not None else -math.inf,
                       floor if floor is not None else -math.inf)
            ticks, missed = due_ticks(entry, upto, gap, since, now)
            messages += [self._message(entry, tick) for tick in ticks]
            if ticks or missed:
                previous = last.tick if last is not None else None
                writes.append((entry.name, LastRun(now, ticks[-1] if ticks else previous)))
            if missed:
                logger.warning("periodic task %s: ticks were missed while no beat ran "
                               "(catch_up=%s)", entry.name, entry.catch_up)
        if messages:
            self.app.publish(messages)  # before recording: a crash in between re-publishes
            logger.info("published %s", ", ".join(
                f"{m.headers['beat_schedule']}@{m.headers['beat_tick']}" for m in messages))
        for name, last_run in writes:
            store.put(key(self.app, "last", name), msgspec.json.encode(last_run).decode(), KEEP)
        alive = Alive(self.id, now, now + self.lease)
        store.put(self._alive_key, msgspec.json.encode(alive).decode(), KEEP)
        self._last_pass, self._contact = now, self.clock()
        return self._delay(now)

    def _claim(self, now: float) -> bool:
        try:
            holder = self.app.coordination.claim(self.leader_key, self.id, self.lease)
        except ConveyorError:
            self._since, self.is_leader = None, False
            raise
        if self._since is None or now - self._contact > self.lease:
            # Out of touch longer than a lease between passes (stopped, suspended): not
            # running meanwhile. A slow round trip still counts as running.
            self._since = now
        self._contact = self.clock()
        leading = holder == self.id
        if leading and not self.is_leader:
            logger.info("beat %s holds the lock: publishing %d periodic task(s)", self.id,
                        len(self.entries))
        elif self.is_leader and not leading:
            logger.warning("beat %s lost the lock to %s", self.id, holder)
        self.is_leader = leading
        return leading

    def _message(self, entry: PeriodicTask, tick: float) -> Message:
        task = self.app.tasks.get(entry.task)
        task_id = tick_id(self.app.name, entry.name, tick)
        if task is not None:
            message = task.message(entry.args, entry.kwargs, queue=entry.queue,
                                   priority=entry.priority, task_id=task_id)
        else:  # a runtime schedule's task that only the workers know, as send_task sends it
            queue, priority = self.app.controls.placement(entry.task)
            message = Message(id=task_id, task=entry.task, args=list(entry.args),
                              kwargs=dict(entry.kwargs), queue=entry.queue or queue,
                              priority=priority if entry.priority is None else entry.priority,
                              created=time.time())
        headers = {**message.headers, "beat_schedule": entry.name, "beat_tick": iso(tick)}
        return msgspec.structs.replace(message, once=True, headers=headers)

    def _delay(self, now: float) -> float:
        soonest = min((e.schedule.next_after(now) for e in self.entries), default=now + 60)
        return max(0.0, min(soonest - now, self.lease / 3, REFRESH))

    # -- running ---------------------------------------------------------------------

    def run(self) -> None:
        """Pass after pass until `stop()`; a store that can't be reached is retried."""
        try:
            while not self._stopping.is_set():
                try:
                    delay = self.step()
                except ConveyorError as exc:
                    logger.error("beat %s can't reach the store, retrying in 1 s: %s",
                                 self.id, exc)
                    delay = 1.0
                self.sleep(delay)
        finally:
            if self._release:
                self.resign()

    def stop(self, release: bool = True) -> None:
        """Ask `run()` to return (safe from a signal handler). With `release` the lock is
        freed at once for another beat; without, as if this beat died, it runs out."""
        self._release = release
        self._stopping.set()

    def resign(self) -> None:
        """Free the lock if held, recording that this beat answered for ticks up to now."""
        if not self.is_leader:
            return
        self.is_leader = False
        try:
            store = self.app.coordination
            if store.claim(self.leader_key, self.id, self.lease) == self.id:
                now = self.clock()
                alive = Alive(self.id, self._last_pass or now, now, stopped=True)
                store.put(self._alive_key, msgspec.json.encode(alive).decode(), KEEP)
                store.release(self.leader_key, self.id)
                logger.info("beat %s released the lock", self.id)
        except ConveyorError as exc:
            logger.error("beat %s could not release the lock (it runs out in %g s): %s",
                         self.id, self.lease, exc)

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping.wait(max(0.0, min(0.5, deadline - time.monotonic()))):
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                logger.error("the supervisor died: beat %s stops", self.id)
                self.stop()
            elif time.monotonic() >= deadline:
                return


def overview(app: App, now: float) -> tuple[list[tuple[str, str, str, str, str]], str]:
    """For `conveyor status`: a row per schedule, in code and at run time (name, task,
    schedule, next run, last run), and a line saying which beat holds the lock. Two round
    trips to the store."""
    from conveyor.schedules import show_time

    schedules = app.schedules.list()
    for info in schedules:
        info.schedule.check()
    raw = app.coordination.fetch([key(app, "alive"),
                                  *[key(app, "last", info.name) for info in schedules]])
    rows = []
    for info, last in zip(schedules, map(decode_last, raw[1:]), strict=True):
        zone = info.schedule.zone
        rows.append((info.name, info.task, str(info.schedule),
                     "paused" if info.paused else show_time(info.next_run(now), zone, now),
                     show_time(last.tick if last else None, zone, now)))
    return rows, leader_line(decode_alive(raw[0]), now)


def leader_line(alive: Alive | None, now: float) -> str:
    """Which beat holds the lock, or since when none runs."""
    if alive is None:
        return "no beat has run yet: start one with `conveyor beat` or `conveyor worker --beat`"
    if alive.stopped or alive.until < now:
        how, when = ("stopped", alive.until) if alive.stopped else ("was last seen", alive.at)
        return f"no beat running: the last one, {alive.beat}, {how} {_ago(when, now)}"
    return f"beat {alive.beat} holds the lock (last pass {_ago(alive.at, now)})"


def _ago(t: float, now: float) -> str:
    seconds = max(0, int(now - t))
    return f"{seconds}s ago" if seconds < 120 else f"{seconds // 60}m ago"
