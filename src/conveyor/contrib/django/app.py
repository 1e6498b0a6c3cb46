"""`DjangoApp`: an App that reads ``settings.CONVEYOR`` when first used, whose tasks can
wait for the current transaction to commit before they are enqueued (`delay_on_commit`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, ParamSpec, TypeVar

from conveyor.app import App, check_urls
from conveyor.config import Settings, resolve_settings
from conveyor.contrib.django import config
from conveyor.contrib.django.connections import CloseOldConnections
from conveyor.errors import ConfigurationError
from conveyor.message import Envelope, Message
from conveyor.middleware import Middleware
from conveyor.periodic import from_config
from conveyor.task import AsyncTask, Task

P = ParamSpec("P")
R = TypeVar("R")


class DjangoTask(Task[P, R]):
    """A task of a `DjangoApp`. Its App reads ``settings.CONVEYOR`` before the task's
    first message is built, so ``TASK_DEFAULTS`` and ``ROUTES`` apply to a task declared
    (and called) before anything else used the App."""

    def message(self, *args: Any, **kwargs: Any) -> Message:
        self.app.settings  # noqa: B018 - read once; then an attribute
        return super().message(*args, **kwargs)


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
            for entry in from_config(found.beat_schedule):
                self.add_schedule(entry)
        return check_urls(settings)

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

    def on_commit(self, publish: Callable[[], object], using: str | None = None) -> None:
        """`delay_on_commit`: `publish` once the transaction on database `using` commits
        (at once outside a transaction)."""
        from django.db import transaction

        transaction.on_commit(publish, using=using)


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
