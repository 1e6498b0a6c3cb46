"""`app.schedules`: periodic schedules that operators add, change, pause and remove at run
time, beside those declared in code (`@app.periodic`, `beat_schedule=`).

Runtime schedules are stored in the App's coordination store (schedule_store.py), so a
change made from any host, by `conveyor schedule`, the Django admin or code, reaches
every beat within seconds and needs no deploy. Everything is checked here, before
anything is stored, so a beat never meets a mistake an operator could have been told
about: the schedule, the arguments (plain JSON that fits the task's signature), the
queue, a name that a schedule in code already has.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import msgspec

from conveyor.config import Settings
from conveyor.errors import (
    ConfigurationError,
    MessageTooLarge,
    ScheduleNotFound,
    SerializationError,
    did_you_mean,
)
from conveyor.host import Registered
from conveyor.lifecycle import schedule_store
from conveyor.lifecycle.schedule_store import StoredSchedule
from conveyor.periodic import CatchUp, PeriodicTask
from conveyor.plain import problem
from conveyor.schedules import Schedule, to_schedule
from conveyor.store import Coordination

Source = Literal["code", "runtime"]
# Every beat re-reads all runtime schedules every pass: their arguments stay small
# (a reference to data, not the data), whatever max_message_size allows.
MAX_ARGUMENTS = 64 * 1024


class Owner(Protocol):
    """The App, as its schedules see it."""

    name: str

    @property
    def tasks(self) -> Mapping[str, Registered]: ...

    @property
    def periodic_tasks(self) -> Mapping[str, PeriodicTask]: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def coordination(self) -> Coordination: ...


@dataclass(frozen=True)
class ScheduleInfo:
    """One schedule as `app.schedules.list()` and `get()` show it. `source` says where
    it is declared: "code" (`@app.periodic`, `beat_schedule`; change it in code) or
    "runtime" (stored; `changed` is when it was added, changed or last resumed)."""

    name: str
    task: str
    schedule: Schedule
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    catch_up: CatchUp = "once"
    source: Source = "code"
    paused: bool = False
    changed: float | None = None

    def next_run(self, now: float) -> float | None:
        """Unix time of the next tick after `now`; None while paused."""
        return None if self.paused else self.schedule.next_after(now)


def _info(entry: PeriodicTask, source: Source, paused: bool = False,
          changed: float | None = None) -> ScheduleInfo:
    return ScheduleInfo(entry.name, entry.task, entry.schedule, entry.args, entry.kwargs,
                        entry.queue, entry.priority, entry.catch_up, source, paused, changed)


class Schedules:
    """The App's schedules: `list()` and `get()` show those in code and those added at run
    time; `add`, `pause`, `resume` and `remove` change the runtime ones (a schedule in
    code changes with the code). See docs/periodic.md."""

    def __init__(self, app: Owner, clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.clock = clock

    def __repr__(self) -> str:
        return f"<Schedules of App {self.app.name!r}>"

    # -- reading -----------------------------------------------------------------------

    def stored(self) -> dict[str, StoredSchedule]:
        """The runtime schedules as stored, by name (one round trip)."""
        return schedule_store.read(self.app.coordination, self.app.name)

    def list(self) -> list[ScheduleInfo]:
        """Every schedule, in code and at run time, by name. A runtime schedule that a
        schedule in code has the name of (declared after it was added) is left out: the
        beat runs the one in code."""
        code = self.app.periodic_tasks
        found = {name: _info(entry, "code") for name, entry in code.items()}
        for name, kept in self.stored().items():
            if name not in code:
                found[name] = self._runtime_info(name, kept)
        return [found[name] for name in sorted(found)]

    def get(self, name: str) -> ScheduleInfo:
        """The schedule named `name`. Raises ScheduleNotFound naming the closest."""
        entry = self.app.periodic_tasks.get(name)
        if entry is not None:
            return _info(entry, "code")
        stored = self.stored()
        if name not in stored:
            raise self._not_found(name, stored)
        return self._runtime_info(name, stored[name])

    # -- changing ----------------------------------------------------------------------

    def add(self, name: str, task: str | Registered, schedule: Any,
            args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, *,
            queue: str | None = None, priority: int | None = None,
            catch_up: CatchUp = "once", replace: bool = False,
            allow_unregistered: bool = False) -> ScheduleInfo:
        """Publish `task(*args, **kwargs)` at each tick of `schedule` (``cron(...)``,
        ``every(...)``, a cron string or seconds), once per tick cluster-wide, from the
        next tick on; every beat picks it up within a few seconds.

        `task` is a registered task or its name; a name this App hasn't registered is a
        ConfigurationError (a typo), unless `allow_unregistered` (a task only workers
        import: ticks are sent by name, like `send_task`). A schedule of that name
        already stored is a ConfigurationError unless `replace`: then it is changed (its
        paused state is kept) and fires from its next tick under the new definition.

        Raises ConfigurationError for a bad schedule, queue, priority or `catch_up`, for
        arguments that don't fit the task, and for a name a schedule in code has;
        SerializationError for arguments that aren't plain JSON; MessageTooLarge for
        arguments over 64 KiB as JSON (every beat re-reads them every pass).
        """
        task_name = self._task_name(name, task, allow_unregistered)
        where = f"runtime schedule {name!r}"
        entry = PeriodicTask(name=self._check_name(name), task=task_name,
                             schedule=to_schedule(schedule, where), args=_sequence(args, where),
                             kwargs=_mapping(kwargs, where), catch_up=catch_up,
                             queue=queue, priority=priority)
        self._check_call(entry)
        now = self.clock()
        new = schedule_store.stored(entry, paused=False, since=now)

        def edit(schedules: dict[str, StoredSchedule]) -> StoredSchedule:
            old = schedules.get(name)
            if old is None:
                schedules[name] = new
            elif not replace:
                raise ConfigurationError(
                    f"a runtime schedule named {name!r} exists (task {old.task!r}): pass "
                    "replace=True (conveyor schedule add --replace) to change it")
            elif not old.same_call(new):
                schedules[name] = msgspec.structs.replace(new, paused=old.paused)
            return schedules[name]

        kept = schedule_store.change(self.app.coordination, self.app.name, edit)
        return self._runtime_info(name, kept)

    def pause(self, name: str) -> bool:
        """Stop publishing the ticks of runtime schedule `name` (within a few seconds),
        until `resume`. Returns False if it was paused already. Raises ScheduleNotFound,
        or ConfigurationError for a schedule in code."""
        return self._set_paused(name, True)

    def resume(self, name: str) -> bool:
        """Publish the ticks of runtime schedule `name` again, from its next tick: the
        ticks that fell while it was paused never fire. Returns False if it wasn't
        paused. Raises ScheduleNotFound, or ConfigurationError for a schedule in code."""
        return self._set_paused(name, False)

    def remove(self, name: str) -> None:
        """Delete runtime schedule `name`: no tick of it is published from the beats' next
        pass on (ticks already published still run). Raises ScheduleNotFound, or
        ConfigurationError for a schedule in code."""

        def edit(schedules: dict[str, StoredSchedule]) -> None:
            if schedules.pop(name, None) is None:
                raise self._missing(name, schedules)

        schedule_store.change(self.app.coordination, self.app.name, edit)

    # -- helpers -----------------------------------------------------------------------

    def _set_paused(self, name: str, paused: bool) -> bool:
        now = self.clock()

        def edit(schedules: dict[str, StoredSchedule]) -> bool:
            old = schedules.get(name)
            if old is None:
                raise self._missing(name, schedules)
            if old.paused == paused:
                return False
            # A resume moves `since`: the ticks that fell while paused are not due.
            since = old.since if paused else now
            schedules[name] = msgspec.structs.replace(old, paused=paused, since=since,
                                                      changed=now)
            return True

        return schedule_store.change(self.app.coordination, self.app.name, edit)

    def _missing(self, name: str, stored: Mapping[str, StoredSchedule]) -> Exception:
        if name in self.app.periodic_tasks:
            return ConfigurationError(
                f"schedule {name!r} is declared in code (@app.periodic or beat_schedule): "
                "change it there; pause, resume and remove act on runtime schedules")
        return self._not_found(name, stored)

    def _not_found(self, name: str, stored: Mapping[str, StoredSchedule]) -> ScheduleNotFound:
        known = set(stored) | set(self.app.periodic_tasks)
        return ScheduleNotFound(f"no schedule named {name!r}{did_you_mean(name, known)} "
                                "(conveyor schedule list shows them all)")

    def _runtime_info(self, name: str, kept: StoredSchedule) -> ScheduleInfo:
        return _info(kept.entry(name), "runtime", kept.paused, kept.changed)

    def _check_name(self, name: str) -> str:
        if not isinstance(name, str) or not name.strip() or not name.isprintable() \
                or len(name) > 200:
            raise ConfigurationError(f"a schedule name must be printable text of 1 to 200 "
                                     f"characters, got {name!r}")
        if name in self.app.periodic_tasks:
            raise ConfigurationError(f"schedule {name!r} is declared in code (@app.periodic "
                                     "or beat_schedule): pick another name")
        return name

    def _task_name(self, name: str, task: str | Registered, allow_unregistered: bool) -> str:
        if not isinstance(task, str):
            registered = self.app.tasks.get(getattr(task, "name", ""))
            if registered is not task:
                raise ConfigurationError(f"runtime schedule {name!r}: {task!r} is not a task "
                                         f"of App {self.app.name!r}")
            return task.name
        if task not in self.app.tasks and not allow_unregistered:
            raise ConfigurationError(
                f"runtime schedule {name!r}: no task named {task!r} is registered in App "
                f"{self.app.name!r}{did_you_mean(task, self.app.tasks)}; if only the "
                "workers import it, pass allow_unregistered=True "
                "(conveyor schedule add --allow-unregistered)")
        return task

    def _check_call(self, entry: PeriodicTask) -> None:
        where = f"runtime schedule {entry.name!r}"
        entry.schedule.check()
        for what, value in (("args", list(entry.args)), ("kwargs", dict(entry.kwargs))):
            found = problem(value)
            if found is not None:
                found = what + found if found.startswith("[") else found.replace(
                    "the value", what, 1)
                raise SerializationError(f"{where}: {what} must be plain JSON: {found}")
        size = len(msgspec.json.encode([entry.args, entry.kwargs]))
        limit = min(MAX_ARGUMENTS, self.app.settings.max_message_size)
        if size > limit:
            raise MessageTooLarge(f"{where}: the arguments take {size:,} bytes as JSON, over "
                                  f"the {limit:,} a runtime schedule may hold: pass a "
                                  "reference (a path, a URL, a row id) instead")
        task = self.app.tasks.get(entry.task)
        if task is not None:
            entry.check_arguments(task)


def _sequence(args: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(args, list | tuple):
        raise ConfigurationError(f"{where}: args must be a list or tuple, got {args!r}")
    return tuple(args)


def _mapping(kwargs: Any, where: str) -> dict[str, Any]:
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping):
        raise ConfigurationError(f"{where}: kwargs must be a dict, got {kwargs!r}")
    return dict(kwargs)
