"""`Conveyor`: the Flask extension. It turns ``app.config`` into an `App` per Flask app,
registers the tasks declared on it there, and follows ``current_app`` when it publishes.
"""

from __future__ import annotations

import importlib
import inspect
import weakref
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

from flask import Flask, has_app_context
from flask.globals import app_ctx

from conveyor.app import App, check_task_options, default_middleware, default_task_name
from conveyor.beat.entries import PeriodicTask, add, from_config
from conveyor.beat.schedules import to_schedule
from conveyor.contrib.flask.tasks import (
    AsyncSharedTask,
    BoundSharedTaskDecorator,
    SharedTask,
    SharedTaskDecorator,
    in_app_context,
)
from conveyor.errors import ConfigurationError, did_you_mean
from conveyor.middleware.base import Middleware, MiddlewareStack

if TYPE_CHECKING:
    from conveyor import result

P = ParamSpec("P")
R = TypeVar("R")

EXTENSION_KEY = "conveyor"
# app.config key -> App argument. Anything not given falls back to the CONVEYOR_*
# environment variable of the same name, then to the default, as for a plain App.
CONFIG_KEYS: dict[str, str] = {
    "CONVEYOR_NAME": "name",
    "CONVEYOR_BROKER_URL": "broker",
    "CONVEYOR_RESULTS_URL": "results",
    "CONVEYOR_SIGNING_KEY": "signing_key",
    "CONVEYOR_MAX_MESSAGE_SIZE": "max_message_size",
    "CONVEYOR_LEASE_SECONDS": "lease_seconds",
    "CONVEYOR_RESULT_TTL": "result_ttl",
    "CONVEYOR_BEAT_SCHEDULE": "beat_schedule",
    "CONVEYOR_IMPORTS": "imports",
}


def app_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """The App arguments in a Flask config; a misspelt ``CONVEYOR_*`` key is an error
    (naming the closest one), not a setting silently ignored."""
    options: dict[str, Any] = {}
    for key, value in config.items():
        if not key.startswith("CONVEYOR_"):
            continue
        if key not in CONFIG_KEYS:
            hint = did_you_mean(key, CONFIG_KEYS)
            raise ConfigurationError(f"app.config[{key!r}] is not a Conveyor setting{hint} "
                                     f"(they are: {', '.join(CONFIG_KEYS)})")
        if value is not None:
            options[CONFIG_KEYS[key]] = value
    imports = options.get("imports", [])
    if isinstance(imports, str):
        options["imports"] = [imports]
    elif not isinstance(imports, list | tuple) or not all(isinstance(m, str) for m in imports):
        raise ConfigurationError(f"app.config['CONVEYOR_IMPORTS'] must be a list of module "
                                 f"names, got {imports!r}")
    return options


class Conveyor:
    """The Flask extension: ``Conveyor(app)``, or ``Conveyor()`` then ``init_app(app)`` in
    an app factory. It offers the App API (`task`, `periodic`, `AsyncResult`,
    `send_task`, ...) before any Flask app exists; each Flask app gets its own `App`,
    configured from its ``app.config`` and kept in ``app.extensions["conveyor"]``.

    `middleware` is added to every App this extension makes.
    """

    def __init__(self, app: Flask | None = None, *,
                 middleware: Sequence[Middleware] = ()) -> None:
        self.middleware = tuple(middleware)
        self._checks = MiddlewareStack([*default_middleware(), *self.middleware])
        self._tasks: dict[str, SharedTask[Any, Any]] = {}
        self._periodic: list[PeriodicTask] = []
        # Weak, so a Flask app (and its App, which it holds) can go away, as in tests
        # that make one per test; each app's App is in its extensions.
        self._flask_apps: weakref.WeakSet[Flask] = weakref.WeakSet()
        self._last: weakref.ref[Flask] | None = None
        if app is not None:
            self.init_app(app)

    def __repr__(self) -> str:
        return (f"<Conveyor extension: {len(self._tasks)} task(s), "
                f"{len(self._flask_apps)} app(s)>")

    # -- binding to Flask apps ---------------------------------------------------------

    def init_app(self, flask_app: Flask) -> App:
        """Make `flask_app`'s App from its config, register every declared task on it
        and add ``flask conveyor ...`` to its CLI. Returns the App (also in
        ``flask_app.extensions["conveyor"]``, for ``conveyor worker -A``)."""
        if EXTENSION_KEY in flask_app.extensions:
            raise ConfigurationError(f"Flask app {flask_app.name!r} already has Conveyor: "
                                     "call init_app once per app")
        options = app_options(flask_app.config)
        imports = options.pop("imports", [])
        schedule = options.pop("beat_schedule", None)
        app = App(options.pop("name", flask_app.name), middleware=self.middleware, **options)
        for shared in self._tasks.values():
            self._register(flask_app, app, shared)
        for entry in self._periodic:  # their arguments were checked when declared
            add(app, entry)
        flask_app.extensions[EXTENSION_KEY] = app
        self._flask_apps.add(flask_app)
        self._last = weakref.ref(flask_app)
        for module in imports:  # their @conveyor.task declarations register on `app` too
            importlib.import_module(module)
        if schedule is not None:
            from_config(app, schedule)
        from conveyor.contrib.flask.cli import conveyor_cli

        flask_app.cli.add_command(conveyor_cli)
        return app

    @property
    def initialised(self) -> bool:
        """Whether init_app has run for at least one Flask app still alive."""
        return len(self._flask_apps) > 0

    @property
    def apps(self) -> dict[Flask, App]:
        """Each Flask app initialised with this extension (and still alive), with its App."""
        return {flask_app: flask_app.extensions[EXTENSION_KEY]
                for flask_app in list(self._flask_apps)}

    @property
    def app(self) -> App:
        """The App of the current Flask app; outside an app context, of the Flask app
        most recently passed to init_app."""
        if has_app_context():
            flask_app = app_ctx.app
            if flask_app not in self._flask_apps:
                raise ConfigurationError(f"Flask app {flask_app.name!r} has no Conveyor: "
                                         "call conveyor.init_app(app) in your app factory")
            return self.apps[flask_app]
        last = self._last() if self._last is not None else None
        if last is None:
            raise ConfigurationError("Conveyor is not initialised with a Flask app yet: call "
                                     "Conveyor(app) or conveyor.init_app(app) first")
        app: App = last.extensions[EXTENSION_KEY]
        return app

    # -- declaring tasks ---------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> AsyncSharedTask[P, R]: ...
    @overload
    def task(self, fn: Callable[P, R]) -> SharedTask[P, R]: ...
    @overload
    def task(self, *, bind: Literal[True], **options: Any) -> BoundSharedTaskDecorator: ...
    @overload
    def task(self, *, bind: Literal[False] = False, **options: Any) -> SharedTaskDecorator: ...
    def task(
        self, fn: Callable[..., Any] | None = None, *, bind: bool = False, **options: Any
    ) -> SharedTask[Any, Any] | SharedTaskDecorator | BoundSharedTaskDecorator:
        """``@conveyor.task`` or ``@conveyor.task(queue="emails", ...)``: the options of
        ``App.task``. Bad options raise ConfigurationError here, at import."""
        if fn is not None:
            return self.declare(fn, bind=bind, **options)
        check_task_options(options.get("name", "@conveyor.task"), {"bind": bind, **options},
                           self._checks)
        if bind:
            return BoundSharedTaskDecorator(self, options)
        return SharedTaskDecorator(self, options)

    def declare(self, fn: Callable[..., Any], **options: Any) -> SharedTask[Any, Any]:
        """Declare `fn` as a task on every Flask app, present and future."""
        if not callable(fn):
            raise TypeError(f"@conveyor.task decorates a function, got {fn!r}")
        name = options.pop("name", None) or default_task_name(fn)
        check_task_options(name, options, self._checks)
        existing = self._tasks.get(name)
        if existing is not None and existing.fn is not fn:
            raise ConfigurationError(
                f"a task named {name!r} is already declared (by {existing.fn.__module__}): "
                "give one of them name=...")
        cls = AsyncSharedTask if inspect.iscoroutinefunction(fn) else SharedTask
        shared: SharedTask[Any, Any] = cls(self, fn, name, options)
        self._tasks[name] = shared
        for flask_app, app in self.apps.items():
            self._register(flask_app, app, shared)
        return shared

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
    ) -> Callable[[Callable[..., Any]], SharedTask[Any, Any]]:
        """``@conveyor.periodic(every(hours=1))``: as ``App.periodic``, on every Flask app.
        On a function it declares the task too; on a shared task it only schedules it."""
        checked = to_schedule(schedule, f"@conveyor.periodic({schedule!r})")

        def decorate(fn: Callable[..., Any]) -> SharedTask[Any, Any]:
            if isinstance(fn, SharedTask):
                if task_options:
                    raise ConfigurationError(
                        f"@conveyor.periodic on task {fn.name!r}: task options "
                        f"({', '.join(task_options)}) belong on its @conveyor.task(...)")
                shared = fn
            else:
                shared = self.declare(fn, name=name, **task_options)
            entry = PeriodicTask(name=name or shared.name, task=shared.name, schedule=checked,
                                 args=tuple(args), kwargs=dict(kwargs or {}),
                                 catch_up=catch_up, queue=queue, priority=priority)
            entry.check_arguments(shared)
            self._periodic.append(entry)
            for app in self.apps.values():
                add(app, entry)
            return shared

        return decorate

    @staticmethod
    def _register(flask_app: Flask, app: App, shared: SharedTask[Any, Any]) -> None:
        app.register(in_app_context(flask_app, shared.fn), name=shared.name, **shared.options)

    # -- the App API, on the current App -------------------------------------------------

    def AsyncResult(self, task_id: str) -> result.AsyncResult[Any]:  # noqa: N802 - Celery's name
        """A handle on any task by id, read from the current App's result store."""
        return self.app.AsyncResult(task_id)

    def send_task(self, name: str, args: Sequence[Any] = (),
                  kwargs: Mapping[str, Any] | None = None, *,
                  countdown: float | None = None, eta: datetime | None = None,
                  expires: float | datetime | None = None, priority: int | None = None,
                  queue: str | None = None, task_id: str | None = None) -> result.AsyncResult[Any]:
        """Enqueue a task by name, as ``App.send_task``."""
        return self.app.send_task(name, args, kwargs, countdown=countdown, eta=eta,
                                  expires=expires, priority=priority, queue=queue,
                                  task_id=task_id)

    def retry_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        """Re-queue dead letters of the current App, as ``App.retry_dead``."""
        return self.app.retry_dead(ids, queue)
