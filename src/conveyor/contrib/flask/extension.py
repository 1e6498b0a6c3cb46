"""`Conveyor`: the Flask extension. It turns ``app.config`` into an `App` per Flask app,
registers the tasks declared on it there, and follows ``current_app`` when it publishes.
"""

from __future__ import annotations

import importlib
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from flask import Flask, has_app_context
from flask.globals import app_ctx

from conveyor import result
from conveyor.app import App
from conveyor.config import Settings
from conveyor.contrib.flask.tasks import AsyncFlaskTask, FlaskTask, in_app_context
from conveyor.declare import Declarer
from conveyor.errors import ConfigurationError, did_you_mean
from conveyor.message import Envelope, Message
from conveyor.middleware import Middleware, MiddlewareStack, default_middleware
from conveyor.periodic import PeriodicTask, from_config
from conveyor.store import Coordination, ResultStore
from conveyor.task import Task

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
    "CONVEYOR_TASK_DEFAULTS": "task_defaults",
    "CONVEYOR_ROUTES": "routes",
    "CONVEYOR_WORKER_PREFETCH": "worker_prefetch",
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


class Conveyor(Declarer):
    """The Flask extension: ``Conveyor(app)``, or ``Conveyor()`` then ``init_app(app)`` in
    an app factory. It offers the App API (`task`, `periodic`, `AsyncResult`,
    `send_task`, ...) before any Flask app exists; each Flask app gets its own `App`,
    configured from its ``app.config`` and kept in ``app.extensions["conveyor"]``.

    `middleware` is added to every App this extension makes.
    """

    task_class = FlaskTask
    async_task_class = AsyncFlaskTask

    def __init__(self, app: Flask | None = None, *,
                 middleware: Sequence[Middleware] = ()) -> None:
        self.extra_middleware = tuple(middleware)
        # Checks options at declaration; each App runs its own instances of these.
        self.middleware = MiddlewareStack([*default_middleware(), *self.extra_middleware])
        self.tasks = {}
        self.periodic_tasks = {}
        self._options: dict[str, dict[str, Any]] = {}  # each task's options, as declared
        # Weak, so a Flask app (and its App, which it holds) can go away, as in tests
        # that make one per test; each app's App is in its extensions.
        self._flask_apps: weakref.WeakSet[Flask] = weakref.WeakSet()
        self._last: weakref.ref[Flask] | None = None
        if app is not None:
            self.init_app(app)

    def __repr__(self) -> str:
        return (f"<Conveyor extension: {len(self.tasks)} task(s), "
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
        app = App(options.pop("name", flask_app.name), middleware=self.extra_middleware,
                  **options)
        for task in self.tasks.values():
            self._register(flask_app, app, task)
        for entry in self.periodic_tasks.values():  # their arguments were checked when declared
            app.add_schedule(entry)
        flask_app.extensions[EXTENSION_KEY] = app
        self._flask_apps.add(flask_app)
        self._last = weakref.ref(flask_app)
        for module in imports:  # their @conveyor.task declarations register on `app` too
            importlib.import_module(module)
        for entry in from_config(schedule or {}):
            app.add_schedule(entry)
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

    # -- declaring tasks: on every Flask app, present and future -------------------------

    def register(self, fn: Callable[..., Any], **options: Any) -> Task[Any, Any]:
        declared = {k: v for k, v in options.items() if k != "name"}
        task = super().register(fn, **options)
        self._options[task.name] = declared
        for flask_app, app in self.apps.items():
            self._register(flask_app, app, task)
        return task

    def add_schedule(self, entry: PeriodicTask) -> None:
        super().add_schedule(entry)
        for app in self.apps.values():
            app.add_schedule(entry)

    def _register(self, flask_app: Flask, app: App, task: Task[Any, Any]) -> None:
        app.register(in_app_context(flask_app, task.fn), name=task.name,
                     **self._options[task.name])

    @property
    def registered(self) -> Mapping[str, Task[Any, Any]]:
        """The tasks as the current App registered them (what its workers run)."""
        return self.app.tasks

    # -- the App API, on the current App -------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self.app.settings

    @property
    def results(self) -> ResultStore:
        return self.app.results

    @property
    def coordination(self) -> Coordination:
        return self.app.coordination

    def seal(self, messages: Sequence[Message], param_names: Sequence[str] = ()
             ) -> tuple[Sequence[Message], list[Envelope]]:
        return self.app.seal(messages, param_names)

    def publish(self, messages: Sequence[Message], param_names: Sequence[str] = ()) -> None:
        self.app.publish(messages, param_names)

    def on_commit(self, publish: Callable[[], object], using: str | None = None) -> None:
        self.app.on_commit(publish, using)

    def revoke(self, task_ids: str | Sequence[str], terminate: bool = False) -> list[str]:
        """Revoke tasks on the current App, as ``App.revoke``."""
        return self.app.revoke(task_ids, terminate)

    def unfinished(self, queue: str | None) -> str:
        """Why a task may not have finished, on the current App (as ``App.unfinished``)."""
        return self.app.unfinished(queue)

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
