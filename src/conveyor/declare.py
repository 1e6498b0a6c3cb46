"""`Declarer`: the task-declaring API (`task`, `register`, `periodic`), defined once.

`App`, the Flask extension and `DjangoApp` all declare tasks through it, so the typed
decorator overloads, the option checks and the naming rules exist in one place. A
declarer says which class its tasks are (`task_class`, `async_task_class`) and which
middleware own the options it accepts (`middleware`).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Concatenate, Literal, ParamSpec, TypeVar, cast, overload

from conveyor.context import TaskContext
from conveyor.errors import ConfigurationError, did_you_mean
from conveyor.host import Host
from conveyor.middleware.base import MiddlewareStack
from conveyor.options import CORE_OPTIONS, TaskOptions, build_options, check_core_options
from conveyor.periodic import PeriodicDecorator, PeriodicTask, add
from conveyor.task import AsyncTask, Task

P = ParamSpec("P")
R = TypeVar("R")

NOT_YET_SUPPORTED: dict[str, str] = {}  # option -> why it can't be used yet


def default_task_name(fn: Callable[..., Any]) -> str:
    """``module.function``. A task defined in a script run as ``python shop.py`` is named
    after the file (``shop.add``), as the worker that imports ``shop`` will name it."""
    module = fn.__module__
    if module == "__main__":
        main = sys.modules["__main__"]
        spec = getattr(main, "__spec__", None)
        file = getattr(main, "__file__", None)
        if spec is not None and spec.name:
            module = spec.name
        elif file:
            module = Path(file).stem
    return f"{module}.{fn.__qualname__}"


def check_task_options(name: str, options: dict[str, Any], middleware: MiddlewareStack) -> None:
    """Raise ConfigurationError for an option no one owns (naming the closest) or a bad
    value; a middleware may normalize the values of its own options in place."""
    known = CORE_OPTIONS | set(middleware.options)
    for key in options:
        if key in NOT_YET_SUPPORTED:
            raise ConfigurationError(f"task {name!r}: {NOT_YET_SUPPORTED[key]}")
        if key not in known:
            hint = did_you_mean(key, known | set(NOT_YET_SUPPORTED))
            raise ConfigurationError(f"task {name!r}: unknown option {key!r}{hint}")
    check_core_options(name, options)
    middleware.validate_options(name, options)


class TaskDecorator:
    """What ``@app.task(...)`` returns before it is applied to the function."""

    def __init__(self, declarer: Declarer, options: dict[str, Any]) -> None:
        self.declarer = declarer
        self.options = options

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> AsyncTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Task[P, R]: ...
    def __call__(self, fn: Callable[..., Any]) -> Task[Any, Any]:
        return self.declarer.register(fn, **self.options)


class BoundTaskDecorator:
    """What ``@app.task(bind=True, ...)`` returns: the function's first parameter is the
    running task's `TaskContext` and is not part of `delay()`'s signature."""

    def __init__(self, declarer: Declarer, options: dict[str, Any]) -> None:
        self.declarer = declarer
        self.options = options

    @overload
    def __call__(
        self, fn: Callable[Concatenate[TaskContext, P], Coroutine[Any, Any, R]]
    ) -> AsyncTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[TaskContext, P], R]) -> Task[P, R]: ...
    def __call__(self, fn: Callable[..., Any]) -> Task[Any, Any]:
        return self.declarer.register(fn, bind=True, **self.options)


class Declarer:
    """Declares tasks and periodic schedules. Subclasses are Hosts (their tasks are
    handed `self`) and set `middleware` before declaring anything."""

    task_class: ClassVar[type[Task[Any, Any]]] = Task
    async_task_class: ClassVar[type[AsyncTask[Any, Any]]] = AsyncTask
    middleware: MiddlewareStack
    tasks: dict[str, Task[Any, Any]]
    periodic_tasks: dict[str, PeriodicTask]  # declared in code, by schedule name

    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> AsyncTask[P, R]: ...
    @overload
    def task(self, fn: Callable[P, R]) -> Task[P, R]: ...
    @overload
    def task(self, *, bind: Literal[True], **options: Any) -> BoundTaskDecorator: ...
    @overload
    def task(self, *, bind: Literal[False] = False, **options: Any) -> TaskDecorator: ...
    def task(
        self, fn: Callable[..., Any] | None = None, *, bind: bool = False, **options: Any
    ) -> Task[Any, Any] | TaskDecorator | BoundTaskDecorator:
        """Register a function as a task: ``@app.task`` or ``@app.task(queue="emails", ...)``.

        Raises ConfigurationError for an unknown option (naming the closest one) or a bad
        value, and if another task already has the name.
        """
        if fn is not None:
            return self.register(fn, bind=bind, **options)
        # A bad value fails here; an unknown option when applied to the function
        # (`register`), so that its message names the task: ``task 'shop.f': unknown
        # option 'retrys'; did you mean 'retries'?``.
        if set(options) <= CORE_OPTIONS | set(self.middleware.options) | set(NOT_YET_SUPPORTED):
            check_task_options(options.get("name", "@app.task"), {"bind": bind, **options},
                               self.middleware)
        if bind:
            return BoundTaskDecorator(self, options)
        return TaskDecorator(self, options)

    def register(self, fn: Callable[..., Any], **options: Any) -> Task[Any, Any]:
        """`@app.task(**options)` applied to `fn`: build its Task and keep it by name."""
        if not callable(fn):
            raise TypeError(f"@app.task decorates a function, got {fn!r}")
        name = options.pop("name", None) or default_task_name(fn)
        check_task_options(name, options, self.middleware)
        if name in self.tasks and self.tasks[name].fn is not fn:
            raise ConfigurationError(
                f"a task named {name!r} is already registered (by "
                f"{self.tasks[name].fn.__module__}): give one of them name=..."
            )
        task_options = self.task_options(name, options)
        cls = self.async_task_class if inspect.iscoroutinefunction(fn) else self.task_class
        task: Task[Any, Any] = cls(cast(Host, self), fn, task_options)
        self.tasks[name] = task
        return task

    def task_options(self, name: str, declared: dict[str, Any]) -> TaskOptions:
        """The options of task `name`, from what it was declared with (checked). An App
        adds its `task_defaults` and routes (conveyor.routing)."""
        return build_options(name, declared, self.middleware.options)

    def periodic(
        self,
        schedule: Any,
        *,
        name: str | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        catch_up: Literal["once", "skip"] = "once",
        queue: str | None = None,
        priority: int | None = None,
        **task_options: Any,
    ) -> PeriodicDecorator:
        """Publish a task at each tick of `schedule` (``cron(...)``, ``every(...)``, a cron
        string or seconds), once per tick cluster-wide, from `conveyor beat`. On a function
        it also registers the task (`name` and `task_options` as in `@app.task`); on a Task
        it only schedules it. `catch_up` ("once" or "skip") decides about ticks that fell
        while no beat ran at all. See docs/periodic.md.

        Raises ConfigurationError for a bad schedule, argument or option, or a schedule
        name already used by another periodic task.
        """
        return PeriodicDecorator(self, schedule, name, args, kwargs, catch_up, queue, priority,
                                 task_options)

    def add_schedule(self, entry: PeriodicTask) -> None:
        """Schedule `entry` (ConfigurationError if another entry has its name)."""
        add(self.periodic_tasks, entry)
