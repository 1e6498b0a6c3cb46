"""Tasks declared on the `Conveyor` extension, before any Flask app exists.

``@conveyor.task`` keeps the function and its options; each Flask app the extension is
initialised with registers it on that app's own `App`, wrapped so that it runs inside
the app context. The `SharedTask` handed back sends every call to the App of the
current Flask app, which is how one module of tasks serves the app factory, tests
that build several apps, and the worker alike.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from flask import Flask, has_app_context
from flask.globals import app_ctx

from conveyor.context import TaskContext, current_task
from conveyor.message import new_id

if TYPE_CHECKING:
    from conveyor.canvas import Signature
    from conveyor.contrib.flask.extension import Conveyor
    from conveyor.result import AsyncResult
    from conveyor.task import Task

P = ParamSpec("P")
R = TypeVar("R")


def in_app_context(flask_app: Flask, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, run inside `flask_app`'s app context and torn down after it, also when it
    raises (``teardown_appcontext`` handlers see the exception, so Flask-SQLAlchemy
    rolls back and returns its connection).

    A call already inside that app's context (a task called inline from a view) runs as
    it is: a second context would tear the request's database session down under it.
    """
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            if _inside(flask_app):
                return await fn(*args, **kwargs)
            with flask_app.app_context():
                return await fn(*args, **kwargs)

        return run_async

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        if _inside(flask_app):
            return fn(*args, **kwargs)
        with flask_app.app_context():
            return fn(*args, **kwargs)

    return run


def _inside(flask_app: Flask) -> bool:
    return has_app_context() and app_ctx.app is flask_app


class SharedTask(Generic[P, R]):
    """A task declared with ``@conveyor.task``: `delay()` and the rest go to the App of
    the current Flask app; outside an app context, to the one initialised last."""

    def __init__(self, extension: Conveyor, fn: Callable[..., Any], name: str,
                 options: Mapping[str, Any]) -> None:
        self.extension = extension
        self.fn = fn
        self.name = name
        self.options = dict(options)
        self.__name__ = getattr(fn, "__name__", name)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        params = list(inspect.signature(fn).parameters.values())
        self.signature = inspect.Signature(params[1:] if self.options.get("bind") else params)

    def __repr__(self) -> str:
        return f"<SharedTask {self.name}>"

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise TypeError, naming the task, when the arguments don't fit its signature."""
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"task {self.name!r}: {exc} (signature: {self.signature})") from None

    @property
    def task(self) -> Task[P, R]:
        """This task as registered on the current App (raises ConfigurationError when the
        extension was never initialised with a Flask app)."""
        return self.extension.app.tasks[self.name]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run inline in this process, like the function (inside the app context)."""
        if self.extension.initialised:
            return self.task(*args, **kwargs)
        if self.options.get("bind"):  # no app yet: a plain call, as in a unit test
            context = current_task.get() or TaskContext(new_id(), self.name)
            return self.fn(context, *args, **kwargs)  # type: ignore[no-any-return]
        return self.fn(*args, **kwargs)  # type: ignore[no-any-return]

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Enqueue with default options. Durable once it returns."""
        return self.task.delay(*args, **kwargs)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """`delay()` for async views."""
        return await self.task.adelay(*args, **kwargs)

    def apply_async(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
                    **options: Any) -> AsyncResult[R]:
        """Enqueue with per-call options, as `Task.apply_async` (countdown, eta, ...)."""
        return self.task.apply_async(args, kwargs, **options)

    def map(self, arguments: Iterable[Sequence[Any] | Mapping[str, Any]]) -> list[AsyncResult[R]]:
        """Enqueue one task per item, in one round trip."""
        return self.task.map(arguments)

    def s(self, *args: Any, **kwargs: Any) -> Signature[R]:
        """A signature for workflows (chain, group, chord)."""
        return self.task.s(*args, **kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature[R]:
        """An immutable signature: called with exactly these arguments."""
        return self.task.si(*args, **kwargs)


class AsyncSharedTask(SharedTask[P, R]):
    """A shared ``async def`` task: a plain call returns the coroutine, like the function."""

    def __call__(  # type: ignore[override]
        self, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]:
        return super().__call__(*args, **kwargs)  # type: ignore[return-value]


class SharedTaskDecorator:
    """What ``@conveyor.task(...)`` returns before it is applied to the function."""

    def __init__(self, extension: Conveyor, options: dict[str, Any]) -> None:
        self.extension = extension
        self.options = options

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> AsyncSharedTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> SharedTask[P, R]: ...
    def __call__(self, fn: Callable[..., Any]) -> SharedTask[Any, Any]:
        return self.extension.declare(fn, **self.options)


class BoundSharedTaskDecorator:
    """What ``@conveyor.task(bind=True, ...)`` returns: the first parameter receives the
    running task's `TaskContext`."""

    def __init__(self, extension: Conveyor, options: dict[str, Any]) -> None:
        self.extension = extension
        self.options = options

    @overload
    def __call__(
        self, fn: Callable[Concatenate[TaskContext, P], Coroutine[Any, Any, R]]
    ) -> AsyncSharedTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[TaskContext, P], R]) -> SharedTask[P, R]: ...
    def __call__(self, fn: Callable[..., Any]) -> SharedTask[Any, Any]:
        return self.extension.declare(fn, bind=True, **self.options)
