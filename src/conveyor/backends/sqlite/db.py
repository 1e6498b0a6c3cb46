"""Connections to the embedded SQLite store, shared by the SQLite broker, result store and
coordination.

Durability (see docs/sqlite.md): WAL journal. Producer commits use synchronous=FULL, so
a task whose `delay()` returned survives even a power cut; worker bookkeeping (reserve,
ack, results) uses NORMAL, which survives any process crash and can lose only the last
few worker commits on power loss, and WAL keeps commits in order, so what is lost is
at worst re-run, never dropped.

One connection per thread (sqlite3 connections aren't shareable across threads), and
none is ever reused after `fork()`: worker processes are forked from the supervisor.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

from conveyor.errors import BrokerUnavailable, ConfigurationError

T = TypeVar("T")

# Writers of one process to one file take turns on a Python lock before SQLite's own:
# SQLite makes a blocked writer sleep and retry (its busy handler), a lock wakes it the
# moment the file is free. Keyed by path, since the broker and result store of an App
# (and a worker's reserving and writing threads) open the same file separately.
_write_locks: dict[str, threading.Lock] = {}
_write_locks_guard = threading.Lock()
os.register_at_fork(after_in_child=_write_locks.clear)


def _write_lock(path: str) -> threading.Lock:
    with _write_locks_guard:
        return _write_locks.setdefault(path, threading.Lock())
SYNC_LEVELS = ("off", "normal", "full", "extra")
WAL_SIZE_LIMIT = 16 * 2**20  # truncate the WAL back to this after a checkpoint


def path_from_url(url: str) -> tuple[str, dict[str, str]]:
    """``sqlite:///rel.db`` -> rel.db (cwd-relative); ``sqlite:////abs.db`` -> /abs.db."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc:
        raise ConfigurationError(
            f"{url!r} is not a SQLite URL: use sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db"
        )
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise ConfigurationError(f"{url!r} names no file: use e.g. sqlite:///conveyor.db")
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(options) - {"synchronous"}
    if unknown:
        raise ConfigurationError(f"unknown option(s) {sorted(unknown)} in {url!r}")
    sync = options.get("synchronous", "").lower()
    if sync and sync not in SYNC_LEVELS:
        raise ConfigurationError(f"synchronous= must be one of {SYNC_LEVELS}, got {sync!r}")
    return os.path.abspath(path), options


def location(url: str) -> str:
    """Where `url` points, for banners and messages: ``file /abs/path.db``."""
    return f"file {path_from_url(url)[0]}"


def check(url: str) -> None:
    """Raise ConfigurationError for a SQLite URL that can't work."""
    path_from_url(url)


class Database:
    """Per-thread, fork-aware connections to one SQLite file, with a schema applied once."""

    def __init__(self, url: str, schema: str, synchronous: str = "normal") -> None:
        self.url = url
        self.path, options = path_from_url(url)
        self.synchronous = options.get("synchronous", synchronous).upper()
        self._schema = schema
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._pid = os.getpid()

    def connection(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:
            self._after_fork()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _after_fork(self) -> None:
        # The parent's connections (and their locks) are unusable here: forget, don't close.
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all = []
        self._pid = os.getpid()

    def _connect(self) -> sqlite3.Connection:
        # Switching a brand-new file to WAL takes an exclusive lock that SQLite doesn't
        # wait for: processes opening it at the same moment get "database is locked"
        # at once, so that one error is retried for a while.
        deadline = time.monotonic() + 60.0
        self._create_private()
        while True:
            conn = None
            try:
                conn = sqlite3.connect(
                    self.path, timeout=60.0, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA busy_timeout=60000")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self.synchronous}")
                conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
                self._apply_schema(conn)
                break
            except sqlite3.Error as exc:
                if conn is not None:
                    conn.close()
                if "locked" in str(exc) and time.monotonic() < deadline:
                    time.sleep(0.01)
                    continue
                raise BrokerUnavailable(
                    f"can't open the SQLite store {self.url!r} (file {self.path}): {exc}; "
                    "check that the directory exists and is writable"
                ) from exc
        with self._lock:
            self._all.append(conn)
        return conn

    def _create_private(self) -> None:
        """Create the file readable by its owner only (0600): it holds task arguments and
        results. SQLite gives the -wal and -shm files the same mode. An existing file
        keeps the mode it has, and is not opened here: closing any descriptor of the
        file drops every POSIX lock this process holds on it, those of its open
        connections too, and then another process closing its last connection deletes
        the WAL they still use (they would see no more commits, and lose their own)."""
        if os.path.exists(self.path):
            return
        try:
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return  # another process made it just now
        except OSError as exc:
            raise BrokerUnavailable(
                f"can't create the SQLite store {self.url!r} (file {self.path}): {exc}; "
                "check that the directory exists and is writable") from exc

    def _apply_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        for statement in filter(str.strip, self._schema.split(";")):
            conn.execute(statement)
        conn.execute("COMMIT")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the lock up front (BEGIN IMMEDIATE), so two
        writers never deadlock upgrading from read to write."""
        conn = self.connection()
        with _write_lock(self.path):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def run(self, action: Callable[[], T]) -> T:
        """Run `action`, translating SQLite errors into BrokerUnavailable."""
        try:
            return action()
        except sqlite3.Error as exc:
            raise BrokerUnavailable(f"SQLite store {self.url!r} failed: {exc}") from exc

    def changed(self) -> bool:
        """True if another connection committed since this thread last asked (cheap: no I/O)."""
        conn = self.connection()
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        previous = getattr(self._local, "data_version", None)
        self._local.data_version = version
        return previous is not None and version != previous

    def sleep_until_change(self, timeout: float, poll: float = 0.002) -> None:
        """Sleep until another connection commits (since the last `changed()` call of this
        thread, so call that before looking), or for `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
            if self.changed():
                return

    def close(self) -> None:
        if os.getpid() != self._pid:
            return
        with self._lock:
            connections, self._all = self._all, []
        for conn in connections:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()


class ExpiringRows:
    """What the stores with expiring rows (results, coordination) share: a write
    transaction with the time read once its lock is held, so a lease never starts in the
    past; expired rows deleted in passing at most once a minute; and chunked IN-list
    selects. Expired rows are invisible to reads at once."""

    CLEANUP_EVERY = 60.0
    CHUNK = 500  # keys per `IN (...)`: well under SQLite's limit on bound parameters

    def __init__(self, url: str, schema: str, clock: Callable[[], float]) -> None:
        self.url = url
        self._db = Database(url, schema, synchronous="normal")
        self._clock = clock
        self._next_cleanup = 0.0

    def delete_expired(self, conn: sqlite3.Connection, now: float) -> None:
        raise NotImplementedError

    def _write(self, action: Callable[[sqlite3.Connection, float], T]) -> T:
        """Run `action(conn, now)` in one write transaction; clean up if it's time."""

        def write() -> T:
            with self._db.write() as conn:
                now = self._clock()
                result = action(conn, now)
                if now >= self._next_cleanup:
                    self._next_cleanup = now + self.CLEANUP_EVERY
                    self.delete_expired(conn, now)
            return result

        return self._db.run(write)

    def _select_in(self, sql: str, keys: Sequence[str]) -> dict[str, T]:
        """Run `sql` (with `{marks}` for the IN list and one `?` for now after it) over
        `keys` in chunks; the rows are (key, value) pairs."""

        def select() -> dict[str, T]:
            conn, now = self._db.connection(), self._clock()
            found: dict[str, T] = {}
            for start in range(0, len(keys), self.CHUNK):
                chunk = keys[start:start + self.CHUNK]
                query = sql.format(marks=",".join("?" * len(chunk)))
                found.update(conn.execute(query, (*chunk, now)).fetchall())
            return found

        return self._db.run(select)

    def close(self) -> None:
        self._db.close()
