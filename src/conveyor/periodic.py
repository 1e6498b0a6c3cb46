"""Periodic tasks as the App holds them: from `@app.periodic(...)` and `beat_schedule=`.

An entry names its task by name, so a config schedule can point at a task registered
by another module; the beat checks at start that every named task is registered.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, ParamSpec, Protocol, TypeVar, cast, overload

from conveyor.errors import ConfigurationError, did_you_mean
from conveyor.options import check_priority, check_queue
from conveyor.schedules import Schedule, to_schedule
from conveyor.task import AsyncTask, Task

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T", bound=Task[Any, Any])
CatchUp = Literal["once", "skip"]
CATCH_UP = ("once", "skip")
CONFIG_KEYS = ("task", "schedule", "args", "kwargs", "catch_up", "queue", "priority")


class Checkable(Protocol):
    """A task, or a task declared before its App exists (the Flask extension's)."""

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class PeriodicTask:
    """One schedule: publish `task(*args, **kwargs)` at each tick of `schedule`.

    `catch_up` says what happens to ticks that fell while no beat ran at all: "once"
    publishes the latest of them when a beat starts again, "skip" drops them. `queue` and
    `priority` default to the task's own.
    """

    name: str
    task: str
    schedule: Schedule
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    catch_up: CatchUp = "once"
    queue: str | None = None
    priority: int | None = None

    def __post_init__(self) -> None:
        where = f"periodic task {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ConfigurationError(f"a periodic task needs a non-empty name, got {self.name!r}")
        if not isinstance(self.task, str) or not self.task:
            raise ConfigurationError(f"{where}: 'task' must be a task name, got {self.task!r}")
        if self.catch_up not in CATCH_UP:
            raise ConfigurationError(f"{where}: catch_up must be 'once' or 'skip', got "
                                     f"{self.catch_up!r}")
        if not isinstance(self.args, list | tuple) or not isinstance(self.kwargs, Mapping):
            raise ConfigurationError(f"{where}: args must be a list or tuple and kwargs a dict")
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "kwargs", dict(self.kwargs))
        try:
            if self.queue is not None:
                check_queue(self.queue)
            if self.priority is not None:
                check_priority(self.priority)
        except ValueError as exc:
            raise ConfigurationError(f"{where}: {exc}") from None

    def check_arguments(self, task: Checkable) -> None:
        try:
            task.check_arguments(self.args, self.kwargs)
        except TypeError as exc:
            raise ConfigurationError(f"periodic task {self.name!r}: {exc}") from None


class Registry(Protocol):
    """Where periodic tasks are declared: an App, or the Flask extension."""

    def register(self, fn: Callable[..., Any], **options: Any) -> Task[Any, Any]: ...

    def add_schedule(self, entry: PeriodicTask) -> None: ...


def add(schedules: dict[str, PeriodicTask], entry: PeriodicTask) -> None:
    """Add `entry` to `schedules`; the same entry twice is harmless (a module imported
    twice), two different entries with one name are a ConfigurationError."""
    existing = schedules.get(entry.name)
    if existing is not None and existing != entry:
        raise ConfigurationError(
            f"two periodic tasks are named {entry.name!r} (tasks {existing.task!r} and "
            f"{entry.task!r}): schedule names must be unique, give one of them name=...")
    schedules[entry.name] = entry


def from_config(config: Mapping[str, Mapping[str, Any]]) -> list[PeriodicTask]:
    """The entries of `App(beat_schedule={"name": {"task": ..., "schedule": ...}})`."""
    if not isinstance(config, Mapping):
        raise ConfigurationError(f"beat_schedule must be a dict of name -> entry, got {config!r}")
    entries = []
    for name, options in config.items():
        where = f"beat_schedule[{name!r}]"
        if not isinstance(options, Mapping):
            raise ConfigurationError(f"{where} must be a dict, got {options!r}")
        for key in options:
            if key not in CONFIG_KEYS:
                hint = did_you_mean(key, CONFIG_KEYS)
                raise ConfigurationError(f"{where}: unknown key {key!r}{hint}")
        for key in ("task", "schedule"):
            if key not in options:
                raise ConfigurationError(f"{where} needs a {key!r}")
        values = {k: v for k, v in options.items() if k != "schedule"}
        entries.append(PeriodicTask(name=name, schedule=to_schedule(options["schedule"], where),
                                    **values))
    return entries


class PeriodicDecorator:
    """What ``@app.periodic(schedule, ...)`` returns: applied to a function it registers
    the function as a task too (with `task_options`); applied to a Task it schedules it."""

    def __init__(self, app: Registry, schedule: Any, name: str | None, args: Sequence[Any],
                 kwargs: Mapping[str, Any] | None, catch_up: str, queue: str | None,
                 priority: int | None, task_options: dict[str, Any]) -> None:
        self.app = app
        self.schedule = to_schedule(schedule, f"@app.periodic({schedule!r})")
        self.name = name
        self.options: dict[str, Any] = {"args": tuple(args), "kwargs": dict(kwargs or {}),
                                        "catch_up": catch_up, "queue": queue,
                                        "priority": priority}
        self.task_options = task_options

    @overload
    def __call__(self, fn: T) -> T: ...
    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> AsyncTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Task[P, R]: ...
    def __call__(self, fn: Callable[..., Any]) -> Task[Any, Any]:
        if isinstance(fn, Task):
            if self.task_options:
                raise ConfigurationError(
                    f"@app.periodic on task {fn.name!r}: task options "
                    f"({', '.join(self.task_options)}) belong on its @app.task(...)")
            if cast(object, fn.app) is not self.app:
                raise ConfigurationError(f"task {fn.name!r} belongs to another App")
            task = fn
        else:
            task = self.app.register(fn, name=self.name, **self.task_options)
        entry = PeriodicTask(name=self.name or task.name, task=task.name,
                             schedule=self.schedule, **self.options)
        entry.check_arguments(task)
        self.app.add_schedule(entry)
        return task
