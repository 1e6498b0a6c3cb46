"""`DjangoApp`: an App that reads ``settings.CONVEYOR`` when first used, whose tasks can
wait for the current transaction to commit before they are enqueued."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Coroutine, Mapping, Sequence
from functools import partial
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar, overload

from conveyor.app import App, check_schemes
from conveyor.config import Settings, resolve_settings
from conveyor.context import TaskContext
from conveyor.contrib.django import config
from conveyor.contrib.django.connections import CloseOldConnections
from conveyor.errors import ConfigurationError
from conveyor.message import Envelope, Message, new_id
from conveyor.middleware.base import Middleware
from conveyor.result import AsyncResult
from conveyor.task import AsyncTask, Task

P = ParamSpec("P")
R = TypeVar("R")
MESSAGE_OPTIONS = ("countdown", "eta", "expires", "priority", "queue")


class DjangoTask(Task[P, R]):
    """A task of a `DjangoApp`: a Task that can also be enqueued on commit."""

    def delay_on_commit(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """`delay()` once the current transaction commits; nothing if it rolls back."""
        return self.apply_async_on_commit(args, kwargs)

    def apply_async_on_commit(self, args: Sequence[Any] = (),
                              kwargs: Mapping[str, Any] | None = None, *,
                              using: str | None = None, **options: Any) -> AsyncResult[R]:
        """`apply_async()` once the transaction on database `using` commits (at once
        outside a transaction, as Django's ``on_commit``). The arguments are checked and
        encoded now, so a bad one raises here, not after the commit. The result's id is
        known now; it stays PENDING for good if the transaction rolls back."""
        task_id = options.pop("task_id", None) or new_id()
        message = self.message(args, kwargs, task_id=task_id,
                               **{k: options[k] for k in MESSAGE_OPTIONS if k in options})
        self.app.seal([message], self.param_names)
        from django.db import transaction

        transaction.on_commit(partial(self.apply_async, args, kwargs, task_id=task_id,
                                      **options), using=using)
        return AsyncResult(task_id, self.app)


class AsyncDjangoTask(DjangoTask[P, R], AsyncTask[P, R]):
    """An ``async def`` task of a `DjangoApp`."""


class DjangoApp(App):
    """An App for a Django project: configured from ``settings.CONVEYOR`` (arguments given
    here win over it), read when first used, so defining it in ``proj/conveyor.py`` reads
    no settings. The installed app ``conveyor.contrib.django`` configures it in
    ``ready()`` and autodiscovers the ``tasks.py`` of every installed app.

    Every task closes stale database connections before and after it runs, as Django
    does around a request. With ``ENQUEUE_ON_COMMIT``, a publish inside a transaction
    waits for its commit.
    """

    lazy_settings = True
    task_class = DjangoTask
    async_task_class = AsyncDjangoTask

    def __init__(self, name: str | None = None, broker: str | None = None,
                 results: str | None = None, *, middleware: Sequence[Middleware] = (),
                 **options: Any) -> None:
        self._named = name is not None
        super().__init__(name or "django", broker, results,
                         middleware=[CloseOldConnections(), *middleware], **options)
        self.enqueue_on_commit = False

    @property
    def name(self) -> str:
        """The name given here, else ``settings.CONVEYOR["NAME"]``, else "django"."""
        if not self._named and self._settings is None:
            self.settings  # noqa: B018 - reads settings.CONVEYOR["NAME"]
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    def resolve_settings(self) -> Settings:
        """Read ``settings.CONVEYOR`` now: the first use of the App, or ``ready()``."""
        found = config.from_settings()
        if found.name and not self._named:
            self._name = found.name
        given = {k: v for k, v in self._options.items() if v is not None}
        settings = resolve_settings(self._name, **{**found.app_options, **given})
        self.enqueue_on_commit = found.enqueue_on_commit
        if found.beat_schedule and self._settings is None:  # the first read only
            from conveyor.beat.entries import from_config

            from_config(self, found.beat_schedule)
        return check_schemes(settings)

    def publish(self, messages: Sequence[Message], param_names: Sequence[str] = ()) -> None:
        """As `App.publish`; with ``ENQUEUE_ON_COMMIT`` inside a transaction, the
        messages are checked and encoded now and sent when it commits."""
        sealed, envelopes = self.seal(messages, param_names)
        if self.enqueue_on_commit:
            from django.db import transaction

            if transaction.get_connection().in_atomic_block:
                transaction.on_commit(partial(self.send, sealed, envelopes))
                return
        self.send(sealed, envelopes)

    def send(self, messages: Sequence[Message], envelopes: list[Envelope]) -> None:
        """As `App.send`; with results in the Django database, queued tasks get a PENDING
        row too, so the admin lists them (and can revoke them)."""
        super().send(messages, envelopes)
        if self.settings.effective_results_url.startswith("django:"):
            record_pending = getattr(self.results, "record_pending", None)
            if record_pending is not None:
                record_pending(messages)

    # -- typed task decorators (the App's, returning DjangoTask) -------------------------

    @overload  # type: ignore[override]
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> AsyncDjangoTask[P, R]: ...
    @overload
    def task(self, fn: Callable[P, R]) -> DjangoTask[P, R]: ...
    @overload
    def task(self, *, bind: Literal[True], **options: Any) -> BoundDjangoTaskDecorator: ...
    @overload
    def task(self, *, bind: Literal[False] = False, **options: Any) -> DjangoTaskDecorator: ...
    def task(self, fn: Callable[..., Any] | None = None, *, bind: bool = False,
             **options: Any) -> Any:
        """``@app.task`` as on any App; the task also has `delay_on_commit`."""
        if fn is not None:
            return self.register(fn, bind=bind, **options)
        self._check_options(options.get("name", "@app.task"), {"bind": bind, **options})
        if bind:
            return BoundDjangoTaskDecorator(self, options)
        return DjangoTaskDecorator(self, options)


class DjangoTaskDecorator:
    def __init__(self, app: DjangoApp, options: dict[str, Any]) -> None:
        self.app = app
        self.options = options

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> AsyncDjangoTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> DjangoTask[P, R]: ...
    def __call__(self, fn: Callable[..., Any]) -> Any:
        return self.app.register(fn, **self.options)


class BoundDjangoTaskDecorator:
    def __init__(self, app: DjangoApp, options: dict[str, Any]) -> None:
        self.app = app
        self.options = options

    @overload
    def __call__(
        self, fn: Callable[Concatenate[TaskContext, P], Coroutine[Any, Any, R]]
    ) -> AsyncDjangoTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[TaskContext, P], R]) -> DjangoTask[P, R]: ...
    def __call__(self, fn: Callable[..., Any]) -> Any:
        return self.app.register(fn, bind=True, **self.options)


A = TypeVar("A", bound=App)


def import_app(path: str, setting: str, kind: type[A], error: type[Exception],
               expected: str) -> A:
    """The `kind` of App a ``"module:attribute"`` setting names, or `error` saying which
    setting is wrong and why."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"{setting} = {path!r}: can't import {module_name!r}: {exc}") from exc
    found = getattr(module, attr, None)
    if not isinstance(found, kind):
        raise error(f"{setting} = {path!r} names {found!r}, not {expected}")
    return found


def load_project_app(app_path: str | None) -> DjangoApp:
    """The App ``settings.CONVEYOR["APP"]`` names (``"proj.conveyor:app"``), or, when it
    names none, a `DjangoApp` configured from the settings alone."""
    if app_path is None:
        return DjangoApp()
    return import_app(app_path, "settings.CONVEYOR['APP']", DjangoApp, ConfigurationError,
                      "a DjangoApp: define app = DjangoApp('proj') there")


def project_app() -> DjangoApp:
    """The project's App, as the installed app ``conveyor.contrib.django`` loaded it."""
    from django.apps import apps

    if not apps.is_installed("conveyor.contrib.django"):
        raise ConfigurationError("add 'conveyor.contrib.django' to INSTALLED_APPS")
    app: DjangoApp = apps.get_app_config("conveyor").app
    return app
