"""Runtime schedules as the coordination store keeps them.

Schedules that operators add, change, pause and remove while the cluster runs
(`app.schedules`, `conveyor schedule`, the Django admin) live in the App's coordination
store, so every beat of every host sees the same set without a deploy. The set is one
value, `beat:<app>:schedules`, a JSON document::

    {"version": 1, "schedules": {"nightly": {"task": "shop.cleanup", "cron": "0 3 * * *",
     "tz": "UTC", "args": [], "kwargs": {}, "paused": false, "since": 1767225600.0, ...}}}

One value because the beat re-reads it every pass: one `fetch`, one round trip, however
many schedules there are (the store has no key listing). Changes read, modify and write
it under a short claim (`beat:<app>:schedules:lock`, lifecycle/locking.py), so two
operators changing two schedules at once both win. The value is kept for a century: a
schedule lasts until someone removes it.

`since` is when a schedule was added, changed or last resumed: the beat publishes only
its ticks after that, so a change, a re-added name or a resume never fires ticks that
fell before it (while paused, say).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from conveyor.errors import ConfigurationError
from conveyor.lifecycle.locking import locked
from conveyor.periodic import CatchUp, PeriodicTask
from conveyor.schedules import Cron, Every, Schedule
from conveyor.store import Coordination

KEEP = 100 * 365 * 86400.0  # until removed
VERSION = 1
T = TypeVar("T")


class StoredSchedule(msgspec.Struct, frozen=True, omit_defaults=True):
    """One runtime schedule: `cron` (in `tz`) or `every` seconds, and what each tick
    publishes. Ticks at or before `since` never fire."""

    task: str
    cron: str | None = None
    tz: str = "UTC"
    every: int | None = None
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    queue: str | None = None
    priority: int | None = None
    catch_up: CatchUp = "once"
    paused: bool = False
    since: float = 0.0
    changed: float = 0.0

    def schedule(self) -> Schedule:
        """The `Cron` or `Every` it stands for (ConfigurationError if neither fits)."""
        if self.cron is not None:
            return Cron(self.cron, self.tz)
        if self.every is not None:
            return Every(self.every)
        raise ConfigurationError("a stored schedule has neither 'cron' nor 'every'")

    def entry(self, name: str) -> PeriodicTask:
        """The `PeriodicTask` the beat publishes (ConfigurationError if it can't be one)."""
        return PeriodicTask(name=name, task=self.task, schedule=self.schedule(),
                            args=tuple(self.args), kwargs=self.kwargs,
                            catch_up=self.catch_up, queue=self.queue, priority=self.priority)

    def same_call(self, other: StoredSchedule) -> bool:
        """The same ticks and the same call: replacing one by the other changes nothing."""
        ignored = {"paused": False, "since": 0.0, "changed": 0.0}
        return (msgspec.structs.replace(self, **ignored)
                == msgspec.structs.replace(other, **ignored))


def stored(entry: PeriodicTask, *, paused: bool, since: float) -> StoredSchedule:
    """How `entry` is kept (ConfigurationError for a schedule neither cron nor every)."""
    schedule = entry.schedule
    if isinstance(schedule, Cron):
        when: dict[str, Any] = {"cron": schedule.expression, "tz": schedule.tz}
    elif isinstance(schedule, Every):
        when = {"every": schedule.seconds}
    else:
        raise ConfigurationError(f"schedule {entry.name!r}: a runtime schedule must be "
                                 f"cron(...) or every(...), got {schedule!r}")
    return StoredSchedule(task=entry.task, args=list(entry.args), kwargs=dict(entry.kwargs),
                          queue=entry.queue, priority=entry.priority, catch_up=entry.catch_up,
                          paused=paused, since=since, changed=since, **when)


class Document(msgspec.Struct):
    version: int = VERSION
    schedules: dict[str, StoredSchedule] = {}


_decode = msgspec.json.Decoder(Document)
_encode = msgspec.json.Encoder()


def key(app: str) -> str:
    """`beat:<app>:schedules`: beside the beat's own keys, one set per App."""
    return f"beat:{app}:schedules"


def decode(raw: str | None) -> dict[str, StoredSchedule]:
    """The schedules a stored value holds. Raises ConfigurationError for a value this
    version can't read (written by a newer Conveyor, or by hand): changing it would
    lose what it holds."""
    if raw is None:
        return {}
    try:
        document = _decode.decode(raw)
    except msgspec.DecodeError as exc:
        raise ConfigurationError(f"the stored runtime schedules can't be read ({exc}): "
                                 "were they written by a newer Conveyor?") from None
    if document.version != VERSION:
        raise ConfigurationError(f"the runtime schedules are stored in format version "
                                 f"{document.version}; this Conveyor reads {VERSION}: upgrade")
    return document.schedules


def read(coordination: Coordination, app: str) -> dict[str, StoredSchedule]:
    """The App's runtime schedules, by name (one round trip)."""
    return decode(coordination.fetch([key(app)])[0])


def change(coordination: Coordination, app: str,
           edit: Callable[[dict[str, StoredSchedule]], T]) -> T:
    """Apply `edit` to the App's schedules (it changes the dict in place and returns what
    the caller wants back) and store the result, all under the claim; a failing edit
    stores nothing."""
    name = key(app)
    with locked(coordination, f"{name}:lock", "the runtime schedules"):
        schedules = decode(coordination.fetch([name])[0])
        before = dict(schedules)
        outcome = edit(schedules)
        if schedules != before:
            document = Document(VERSION, dict(sorted(schedules.items())))
            coordination.put(name, _encode.encode(document).decode(), KEEP)
        return outcome
