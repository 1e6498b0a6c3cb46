"""Results in the Django database: ``results="django://"`` (the ``default`` database) or
``django://ALIAS`` (``settings.DATABASES[ALIAS]``), read and written with the ORM.

Layout (models.py, created by ``manage.py migrate``): conveyor_taskresult, one row per
task in columns the admin filters on, with the call's queue and arguments when this
project queued it (`record_pending`); conveyor_claim, conveyor_joinedset with
conveyor_setmember, and conveyor_value for `claim`, `join` and `put` (keys longer than
their column are stored as their SHA-256).

Atomic with nothing but the ORM, on any backend with an upsert (PostgreSQL, MySQL and
MariaDB, SQLite):
- `store` is one upsert of what a worker knows, so the queue, arguments and created
  time a producer wrote survive; `record_pending` inserts, leaving existing rows alone.
- `claim` is a loop of single statements: UPDATE takes the key if it is ours or expired,
  else INSERT (the primary key lets one racing insert win), else read the holder.
- `join` is one transaction that first locks each set's head row with an UPDATE, keys
  in sorted order: a row lock on PostgreSQL and MySQL; on SQLite the write lock, taken
  before any read so that two transactions never deadlock upgrading. Joins of one key
  take turns, so each sees its own size.
- `wait()` polls, every 50 ms for the first second then every 100 ms: no notifications.
- Expired rows count as absent at once and are deleted in passing, at most once a
  minute per process (`purge_expired()` does it now).

Django keeps one connection per thread; a thread that used the store closes its own when
it ends. On a thread running an event loop, where Django refuses sync queries, calls run
on a helper thread. Inside a transaction of the caller's, writes are part of it, except
`record_pending`, which waits for the commit.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

from django.apps import apps
from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.models import F, Q

from conveyor.errors import BrokerUnavailable, ConfigurationError
from conveyor.message import Message
from conveyor.result import ResultRecord

T = TypeVar("T")
logger = logging.getLogger("conveyor.results")

POLL_FIRST, POLL_LATER, POLL_FIRST_FOR = 0.05, 0.1, 1.0
PURGE_EVERY = 60.0
CHUNK = 500  # ids per `IN (...)`: under every backend's limit on query parameters
MAX_KEY = 255  # the key columns' max_length
ATTEMPTS = 50  # of a claim or a set's lock racing with others, before giving up
# What a worker's record says about a task; a PENDING row's queue, args, kwargs and
# created time are not in it, so an upsert leaves them as they are.
RECORD_FIELDS = ["task_name", "state", "result", "error_type", "error_message", "traceback",
                 "progress_current", "progress_total", "progress_label", "attempt",
                 "updated", "updated_ts", "expires_at", "retry_at"]


def database_alias(url: str) -> str:
    """The DATABASES alias a ``django://`` URL names (``default`` when it names none)."""
    parts = urlsplit(url)
    if parts.scheme != "django" or parts.path.strip("/") or parts.query:
        raise ConfigurationError(f"result store URL {url!r}: use django:// for the default "
                                 "database or django://ALIAS for settings.DATABASES[ALIAS]")
    return parts.netloc or "default"


class DjangoResultStore:
    """The ResultStore protocol on the Django ORM. See the module docstring for how."""

    def __init__(self, url: str = "django://") -> None:
        self.url = url
        self.alias = database_alias(url)
        if not apps.ready:
            raise ConfigurationError(
                f"{url} results need Django set up first: run workers with `manage.py "
                "conveyor worker`, or call django.setup() before using the App")
        if not apps.is_installed("conveyor.contrib.django"):
            raise ConfigurationError(f"{url} results need 'conveyor.contrib.django' in "
                                     "INSTALLED_APPS (then run manage.py migrate)")
        if self.alias not in connections.settings:
            raise ConfigurationError(f"{url}: no database {self.alias!r} in "
                                     f"settings.DATABASES (it has {', '.join(connections)})")
        features = connections[self.alias].features
        if not features.supports_update_conflicts:
            raise ConfigurationError(f"{url}: the {connections[self.alias].vendor} backend "
                                     "has no upsert (bulk_create(update_conflicts=True))")
        self._unique: dict[str, list[str] | None] = {
            "task_id": ["task_id"], "key": ["key"]}
        if not features.supports_update_conflicts_with_target:  # MySQL: any unique key
            self._unique = {"task_id": None, "key": None}
        from conveyor.contrib.django import models  # once the installed app is loaded

        self._dt, self._ts = models.as_datetime, models.as_timestamp
        self.rows = models.TaskResult.objects.db_manager(self.alias)
        self.claims = models.Claim.objects.db_manager(self.alias)
        self.sets = models.JoinedSet.objects.db_manager(self.alias)
        self.members = models.SetMember.objects.db_manager(self.alias)
        self.values = models.Value.objects.db_manager(self.alias)
        self._lock = threading.Lock()
        self._helper: ThreadPoolExecutor | None = None
        self._next_purge = 0.0

    def __repr__(self) -> str:
        return f"<DjangoResultStore {self.url}>"

    # -- running queries ---------------------------------------------------------------

    def _run(self, action: Callable[[], T]) -> T:
        """Run `action` on a thread where Django allows sync queries, translating
        database errors into BrokerUnavailable; then purge expired rows if it's time."""
        if _event_loop_running():
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
        if not _event_loop_running():
            _close(self.alias)

    # -- task records ------------------------------------------------------------------

    def store(self, records: Sequence[tuple[ResultRecord, float]]) -> None:
        if not records:
            return
        now = time.time()
        latest = {r.id: (r, ttl) for r, ttl in records if _fits(r.id)}  # the last one wins
        rows = [self.rows.model.from_record(r, now + ttl, now) for r, ttl in latest.values()]
        self._run(lambda: self.rows.bulk_create(
            rows, update_conflicts=True, unique_fields=self._unique["task_id"],
            update_fields=RECORD_FIELDS))

    def get(self, task_id: str) -> ResultRecord | None:
        """The record, or None. A row `record_pending` wrote comes back as PENDING."""
        row = self._run(lambda: self.rows.filter(
            task_id=task_id, expires_at__gt=self._dt(time.time())).first())
        return None if row is None else row.to_record()

    def get_many(self, task_ids: Sequence[str]) -> list[ResultRecord | None]:
        def select() -> dict[str, Any]:
            now = self._dt(time.time())
            return {row.task_id: row for start in range(0, len(task_ids), CHUNK)
                    for row in self.rows.filter(task_id__in=task_ids[start:start + CHUNK],
                                                expires_at__gt=now)}

        found = self._run(select) if task_ids else {}
        return [found[i].to_record() if i in found else None for i in task_ids]

    def wait(self, task_id: str, timeout: float | None) -> ResultRecord | None:
        """Poll until the record is final or `timeout` passes (see the module docstring)."""
        start = time.monotonic()
        deadline = start + (timeout if timeout is not None else 10**9)
        while True:
            record = self.get(task_id)
            now = time.monotonic()
            if (record is not None and record.state.is_final) or now >= deadline:
                return record
            pause = POLL_FIRST if now - start < POLL_FIRST_FOR else POLL_LATER
            time.sleep(min(pause, deadline - now))

    def forget(self, task_ids: Sequence[str]) -> None:
        def delete() -> None:
            for start in range(0, len(task_ids), CHUNK):
                self.rows.filter(task_id__in=task_ids[start:start + CHUNK]).delete()

        if task_ids:
            self._run(delete)

    def record_pending(self, messages: Sequence[Message]) -> None:
        """A PENDING row per just-published message (its call; an eta as "due at") so the
        admin lists queued tasks; a row already there (a worker was quicker) is kept. In a
        transaction, written at its commit. Failures are logged: the tasks are queued."""
        rows = [self.rows.model.pending(m, time.time()) for m in messages if _fits(m.id)]
        if not rows:
            return

        def insert() -> None:
            try:
                self._run(lambda: self.rows.bulk_create(rows, ignore_conflicts=True))
            except BrokerUnavailable as exc:
                logger.warning("can't record %d queued task(s) in the database: %s",
                               len(rows), exc)

        if self._in_transaction() and not _event_loop_running():
            transaction.on_commit(insert, using=self.alias)
        else:
            insert()

    # -- coordination ------------------------------------------------------------------

    def claim(self, key: str, owner: str, ttl: float) -> str:
        key = _fit(key)

        def claim() -> str:
            for _ in range(ATTEMPTS):
                now = time.time()
                mine = Q(owner=owner) | Q(expires_at__lte=self._dt(now))
                expires = self._dt(now + ttl)
                if self.claims.filter(mine, key=key).update(owner=owner, expires_at=expires):
                    return owner
                try:
                    with transaction.atomic(using=self.alias):
                        self.claims.create(key=key, owner=owner, expires_at=expires)
                    return owner
                except IntegrityError:
                    pass  # another owner holds it (or just took it): who?
                holder = self.claims.filter(key=key, expires_at__gt=self._dt(now)).values_list(
                    "owner", flat=True).first()
                if holder is not None:
                    return str(holder)
                # it expired or was released in between: try again
            raise DatabaseError(f"claim {key!r} changed hands {ATTEMPTS} times in a row")

        return self._run(claim)

    def release(self, key: str, owner: str) -> bool:
        key = _fit(key)
        deleted, _ = self._run(lambda: self.claims.filter(
            key=key, owner=owner, expires_at__gt=self._dt(time.time())).delete())
        return bool(deleted)

    def join(self, entries: Sequence[tuple[str, str]], ttl: float) -> list[int]:
        if not entries:
            return []
        # Locks are taken key by key in sorted order (no deadlock between two joins of
        # several keys); the entries of one key keep their order, which sets the sizes.
        order = sorted(range(len(entries)), key=lambda i: _fit(entries[i][0]))

        def join() -> list[int]:
            sizes = [0] * len(entries)
            with transaction.atomic(using=self.alias):
                now = time.time()
                heads: dict[str, int] = {}
                for i in order:
                    key, member = _fit(entries[i][0]), _fit(entries[i][1])
                    if key not in heads:
                        heads[key] = self._lock_set(key, now)
                    if not self.members.filter(key=key, member=member).exists():
                        self.members.create(key=key, member=member)
                        heads[key] += 1
                    sizes[i] = heads[key]
                expires = self._dt(now + ttl)
                for key, size in heads.items():
                    self.sets.filter(key=key).update(size=size, expires_at=expires)
            return sizes

        return self._run(join)

    def _lock_set(self, key: str, now: float) -> int:
        """Lock the head row of the set at `key` (creating it), and return its size; an
        expired set starts afresh. Call inside a transaction."""
        for _ in range(ATTEMPTS):
            if self.sets.filter(key=key).update(size=F("size")):  # the lock
                size, expires = self.sets.filter(key=key).values_list(
                    "size", "expires_at").get()
                if self._ts(expires) > now:
                    return int(size)
                self.members.filter(key=key).delete()
                return 0
            try:
                with transaction.atomic(using=self.alias):
                    self.sets.create(key=key, size=0, expires_at=self._dt(now))
                return 0
            except IntegrityError:
                pass  # another join created it first: lock that one
        raise DatabaseError(f"set {key!r} was created and deleted {ATTEMPTS} times in a row")

    def put(self, key: str, value: str, ttl: float) -> None:
        row = self.values.model(key=_fit(key), value=value,
                                expires_at=self._dt(time.time() + ttl))
        self._run(lambda: self.values.bulk_create(
            [row], update_conflicts=True, unique_fields=self._unique["key"],
            update_fields=["value", "expires_at"]))

    def fetch(self, keys: Sequence[str]) -> list[str | None]:
        fitted = [_fit(key) for key in keys]

        def select() -> dict[str, str]:
            now = self._dt(time.time())
            return {k: v for start in range(0, len(fitted), CHUNK)
                    for k, v in self.values.filter(key__in=fitted[start:start + CHUNK],
                                                   expires_at__gt=now).values_list("key", "value")}

        found = self._run(select) if keys else {}
        return [found.get(key) for key in fitted]

    # -- expiry ------------------------------------------------------------------------

    def purge_expired(self) -> None:
        """Delete every expired row now (it also happens in passing, once a minute)."""
        self._run(self._purge)

    def _purge(self) -> None:
        now = self._dt(time.time())
        for manager in (self.rows, self.claims, self.values):
            manager.filter(expires_at__lte=now).delete()
        expired_sets = self.sets.filter(expires_at__lte=now)
        self.members.filter(key__in=expired_sets.values("key")).delete()
        expired_sets.delete()


def _fits(task_id: str) -> bool:
    """Whether an id fits its column; a longer one is logged and not stored (a write that
    can never succeed would keep a worker retrying it)."""
    if len(task_id) > MAX_KEY:
        logger.error("task id %.40s... is over %d characters: no result kept", task_id, MAX_KEY)
    return len(task_id) <= MAX_KEY


def _fit(key: str) -> str:
    """A key as its column holds it: longer ones by their SHA-256 (same key, same row)."""
    if len(key) <= MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _event_loop_running() -> bool:
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
