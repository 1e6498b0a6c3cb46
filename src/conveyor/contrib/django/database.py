"""What the Django stores (``results="django://"``: results.py and coordination.py) share:
the checks that the project can hold them, and how queries run.

``django://`` is the ``default`` database, ``django://ALIAS`` ``settings.DATABASES[ALIAS]``,
read and written with the ORM (models.py, created by ``manage.py migrate``). Keys longer
than their column are stored as their SHA-256.

Django keeps one connection per thread; a thread that used a store closes its own when
it ends. On a thread running an event loop, where Django refuses sync queries, calls run
on a helper thread. Inside a transaction of the caller's, writes are part of it. Expired
rows count as absent at once and are deleted in passing, at most once a minute per
process and store (`purge_expired()` does it now).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

from django.apps import apps
from django.db import DatabaseError, IntegrityError, connections

from conveyor.errors import BrokerUnavailable, ConfigurationError

T = TypeVar("T")
logger = logging.getLogger("conveyor.django")

PURGE_EVERY = 60.0
CHUNK = 500  # ids per `IN (...)`: under every backend's limit on query parameters
MAX_KEY = 255  # the key columns' max_length


def database_alias(url: str) -> str:
    """The DATABASES alias a ``django://`` URL names (``default`` when it names none)."""
    parts = urlsplit(url)
    if parts.scheme != "django" or parts.path.strip("/") or parts.query:
        raise ConfigurationError(f"result store URL {url!r}: use django:// for the default "
                                 "database or django://ALIAS for settings.DATABASES[ALIAS]")
    return parts.netloc or "default"


class OrmStore:
    """A store on the Django ORM: checks at creation that the project can hold it, then
    runs its queries (`_run`). Subclasses say what to delete when rows expire."""

    what = "store"

    def __init__(self, url: str = "django://") -> None:
        self.url = url
        self.alias = database_alias(url)
        if not apps.ready:
            raise ConfigurationError(
                f"{url} {self.what} needs Django set up first: run workers with `manage.py "
                "conveyor worker`, or call django.setup() before using the App")
        if not apps.is_installed("conveyor.contrib.django"):
            raise ConfigurationError(f"{url} {self.what} needs 'conveyor.contrib.django' in "
                                     "INSTALLED_APPS (then run manage.py migrate)")
        if self.alias not in connections.settings:
            raise ConfigurationError(f"{url}: no database {self.alias!r} in "
                                     f"settings.DATABASES (it has {', '.join(connections)})")
        features = connections[self.alias].features
        if not features.supports_update_conflicts:
            raise ConfigurationError(f"{url}: the {connections[self.alias].vendor} backend "
                                     "has no upsert (bulk_create(update_conflicts=True))")
        # The conflict target of an upsert; MySQL takes none (it uses any unique key).
        self.unique_on = features.supports_update_conflicts_with_target
        from conveyor.contrib.django import models  # once the installed app is loaded

        self.models = models
        self._dt, self._ts = models.as_datetime, models.as_timestamp
        self._lock = threading.Lock()
        self._helper: ThreadPoolExecutor | None = None
        self._next_purge = 0.0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    def purge_expired(self) -> None:
        """Delete every expired row now (it also happens in passing, once a minute)."""
        self._run(self._purge)

    def _purge(self) -> None:
        raise NotImplementedError

    def _run(self, action: Callable[[], T]) -> T:
        """Run `action` on a thread where Django allows sync queries, translating
        database errors into BrokerUnavailable; then purge expired rows if it's time."""
        if in_event_loop():
            with self._lock:
                if self._helper is None:
                    self._helper = ThreadPoolExecutor(1, "conveyor-django-results")
                helper = self._helper
            return helper.submit(self._run, action).result()
        self._watch_thread()
        try:
            result = self._retrying(action)
        except DatabaseError as exc:
            raise self._unavailable(exc) from exc
        if time.time() >= self._next_purge and not self._in_transaction():
            self._next_purge = time.time() + PURGE_EVERY
            try:
                self._retrying(self._purge)
            except DatabaseError as exc:  # the next purge will do
                logger.warning("can't delete expired rows: %s", self._unavailable(exc))
        return result

    def _unavailable(self, exc: DatabaseError) -> BrokerUnavailable:
        missing = "no such table" in str(exc) or "does not exist" in str(exc)
        hint = f" (did you run `manage.py migrate conveyor --database {self.alias}`?)"
        return BrokerUnavailable(f"{self.url} result store failed: {exc}{hint * missing}")

    def _retrying(self, action: Callable[[], T]) -> T:
        """Once more, on a fresh connection if this one was dropped (a restart, an idle
        timeout), or after a moment if the database was busy; not in a transaction."""
        try:
            return action()
        except DatabaseError as exc:
            if self._in_transaction() or isinstance(exc, IntegrityError):
                raise
            connections[self.alias].close_if_unusable_or_obsolete()
            time.sleep(0.05)
            return action()

    def _in_transaction(self) -> bool:
        return bool(connections[self.alias].in_atomic_block)

    def _watch_thread(self) -> None:
        """Close this thread's connection when the thread ends (Django only closes the
        connections of request threads; an unclosed one leaks until collected)."""
        closers = _threads.__dict__.setdefault("closers", {})
        if self.alias not in closers:
            closers[self.alias] = _CloseOnThreadExit(connections[self.alias])

    def close(self) -> None:
        """Close this thread's and the helper thread's connections. Safe to call twice."""
        with self._lock:
            helper, self._helper = self._helper, None
        if helper is not None:
            helper.submit(_close, self.alias).result()
            helper.shutdown()
        if not in_event_loop():
            _close(self.alias)

def fits(task_id: str) -> bool:
    """Whether an id fits its column; a longer one is logged and not stored (a write that
    can never succeed would keep a worker retrying it)."""
    if len(task_id) > MAX_KEY:
        logger.error("task id %.40s... is over %d characters: no result kept", task_id, MAX_KEY)
    return len(task_id) <= MAX_KEY


def fit(key: str) -> str:
    """A key as its column holds it: longer ones by their SHA-256 (same key, same row)."""
    if len(key) <= MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def in_event_loop() -> bool:
    try:
        return asyncio.get_running_loop() is not None
    except RuntimeError:
        return False


def _close(alias: str) -> None:
    connection = connections[alias]
    if not connection.in_atomic_block:
        connection.close()


_threads = threading.local()  # per thread: alias -> its _CloseOnThreadExit


class _CloseOnThreadExit:
    """Held in a thread-local: dropped when its thread ends, it closes that thread's
    connection (a sqlite3 connection left to the garbage collector warns)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.thread = threading.get_ident()

    def __del__(self) -> None:
        if threading.get_ident() != self.thread:
            return  # never another thread's connection (interpreter shutdown)
        try:
            self.connection.close()
        except Exception:
            logger.debug("can't close a finished thread's connection", exc_info=True)
