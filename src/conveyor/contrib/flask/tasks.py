"""Tasks declared on the `Conveyor` extension, before any Flask app exists.

``@conveyor.task`` makes a `FlaskTask`: a plain `Task` whose App is the extension,
which forwards every call to the App of the current Flask app. Each Flask app the
extension is initialised with registers the function on its own `App` too, wrapped so
that it runs inside that app's context (`in_app_context`): that is what its workers run.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from flask import Flask, has_app_context
from flask.globals import app_ctx

from conveyor.options import TaskOptions
from conveyor.task import AsyncTask, Task

P = ParamSpec("P")
R = TypeVar("R")


class Registries(Protocol):
    """What a FlaskTask needs of its extension: the current App's registered tasks."""

    @property
    def initialised(self) -> bool: ...

    @property
    def registered(self) -> Mapping[str, Task[Any, Any]]: ...


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


class FlaskTask(Task[P, R]):
    """A task declared with ``@conveyor.task``. `delay()` and the rest go to the App of
    the current Flask app (outside an app context, of the one initialised last); a plain
    call runs the function inline, inside that app's context."""

    @property
    def options(self) -> TaskOptions:
        """The options the current App gave the task: its own, with that Flask app's
        ``CONVEYOR_TASK_DEFAULTS`` and ``CONVEYOR_ROUTES`` applied; as declared while no
        Flask app is initialised."""
        extension = cast(Registries, self.app)
        if extension.initialised:
            registered = extension.registered.get(self.name)
            if registered is not None:
                return registered.options
        return self._declared

    @options.setter
    def options(self, options: TaskOptions) -> None:
        self._declared = options

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        extension = cast(Registries, self.app)
        if extension.initialised:
            registered: R = extension.registered[self.name](*args, **kwargs)
            return registered
        return super().__call__(*args, **kwargs)  # no app yet: a plain call, as in a test


class AsyncFlaskTask(FlaskTask[P, R], AsyncTask[P, R]):
    """A ``async def`` task declared with ``@conveyor.task``: a plain call returns the
    coroutine, like the function."""

    def __call__(  # type: ignore[override]
        self, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]:
        return super().__call__(*args, **kwargs)  # type: ignore[return-value]
