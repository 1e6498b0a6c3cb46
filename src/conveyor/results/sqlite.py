"""Results in the embedded SQLite file (the broker's file unless `results=` says otherwise).

Layout:
- conveyor_results(id, state, expires, record): `record` the JSON ResultRecord.
- conveyor_claims(key, owner, expires): who holds a `claim` key, until when.
- conveyor_sets(key, expires, size) and conveyor_set_members(key, member): a `join` set,
  its size kept in its head row so a join costs the same for the 10,000th member as for
  the first, and one expiry for the whole set, renewed by every join (as in Redis).
- conveyor_values(key, value, expires): `put` values.
Expired rows are invisible at once and deleted in passing, at most once a minute.
`wait()` sleeps until another connection commits (PRAGMA data_version), not on a timer.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import msgspec

from conveyor.result import ResultRecord
from conveyor.sqlite_db import Database

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS conveyor_results (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    expires REAL NOT NULL,
    record BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conveyor_results_expires ON conveyor_results (expires);
CREATE TABLE IF NOT EXISTS conveyor_claims (
    key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conveyor_claims_expires ON conveyor_claims (expires);
CREATE TABLE IF NOT EXISTS conveyor_sets (
    key TEXT PRIMARY KEY, expires REAL NOT NULL, size INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conveyor_sets_expires ON conveyor_sets (expires);
CREATE TABLE IF NOT EXISTS conveyor_set_members (
    key TEXT NOT NULL, member TEXT NOT NULL, PRIMARY KEY (key, member)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conveyor_values (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conveyor_values_expires ON conveyor_values (expires)
"""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ResultRecord)
CLEANUP_EVERY = 60.0
CHUNK = 500  # ids per `IN (...)`: well under SQLite's limit on bound parameters


class SQLiteResultStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self._db = Database(url, SCHEMA, synchronous="normal")
        self._next_cleanup = 0.0

    def _write(self, action: Callable[[sqlite3.Connection, float], T]) -> T:
        """Run `action(conn, now)` in one write transaction, `now` read once the write
        lock is held (so a lease never starts in the past); clean up if it's time."""

        def write() -> T:
            with self._db.write() as conn:
                now = time.time()
                result = action(conn, now)
                if now >= self._next_cleanup:
                    self._next_cleanup = now + CLEANUP_EVERY
                    _delete_expired(conn, now)
            return result

        return self._db.run(write)

    def _select_in(self, sql: str, keys: Sequence[str]) -> dict[str, T]:
        """Run `sql` (with `{marks}` for the IN list and one `?` for now after it) over
        `keys` in chunks; the rows are (key, value) pairs."""

        def select() -> dict[str, T]:
            conn, now = self._db.connection(), time.time()
            found: dict[str, T] = {}
            for start in range(0, len(keys), CHUNK):
                chunk = keys[start:start + CHUNK]
                query = sql.format(marks=",".join("?" * len(chunk)))
                found.update(conn.execute(query, (*chunk, now)).fetchall())
            return found

        return self._db.run(select)

    def store(self, records: Sequence[tuple[ResultRecord, float]]) -> None:
        if not records:
            return
        encoded = [(r.id, r.state.value, ttl, _encoder.encode(r)) for r, ttl in records]

        def write(conn: sqlite3.Connection, now: float) -> None:
            conn.executemany("INSERT OR REPLACE INTO conveyor_results VALUES (?, ?, ?, ?)",
                             [(i, state, now + ttl, blob) for i, state, ttl, blob in encoded])

        self._write(write)

    def get(self, task_id: str) -> ResultRecord | None:
        row = self._db.run(
            lambda: self._db.connection().execute(
                "SELECT record FROM conveyor_results WHERE id = ? AND expires > ?",
                (task_id, time.time()),
            ).fetchone()
        )
        return _decoder.decode(row[0]) if row else None

    def get_many(self, task_ids: Sequence[str]) -> list[ResultRecord | None]:
        found: dict[str, bytes] = self._select_in(
            "SELECT id, record FROM conveyor_results WHERE id IN ({marks}) AND expires > ?",
            task_ids)
        return [_decoder.decode(found[i]) if i in found else None for i in task_ids]

    def wait(self, task_id: str, timeout: float | None) -> ResultRecord | None:
        deadline = time.monotonic() + (timeout if timeout is not None else 10**9)
        while True:
            self._db.run(self._db.changed)
            record = self.get(task_id)
            if (record is not None and record.state.is_final) or time.monotonic() >= deadline:
                return record
            self._db.sleep_until_change(min(deadline, time.monotonic() + 1.0))

    def forget(self, task_ids: Sequence[str]) -> None:
        def delete() -> None:
            with self._db.write() as conn:
                conn.executemany("DELETE FROM conveyor_results WHERE id = ?",
                                 [(i,) for i in task_ids])

        self._db.run(delete)

    def claim(self, key: str, owner: str, ttl: float) -> str:
        def claim(conn: sqlite3.Connection, now: float) -> str:
            row = conn.execute("SELECT owner FROM conveyor_claims WHERE key = ? AND expires > ?",
                               (key, now)).fetchone()
            if row is not None and row[0] != owner:
                return str(row[0])
            conn.execute("INSERT OR REPLACE INTO conveyor_claims VALUES (?, ?, ?)",
                         (key, owner, now + ttl))
            return owner

        return self._write(claim)

    def release(self, key: str, owner: str) -> bool:
        def release(conn: sqlite3.Connection, now: float) -> bool:
            deleted = conn.execute(
                "DELETE FROM conveyor_claims WHERE key = ? AND owner = ? AND expires > ?",
                (key, owner, now))
            return deleted.rowcount > 0

        return self._write(release)

    def join(self, entries: Sequence[tuple[str, str]], ttl: float) -> list[int]:
        if not entries:
            return []

        def join(conn: sqlite3.Connection, now: float) -> list[int]:
            return [_join_one(conn, key, member, now, now + ttl) for key, member in entries]

        return self._write(join)

    def put(self, key: str, value: str, ttl: float) -> None:
        def put(conn: sqlite3.Connection, now: float) -> None:
            conn.execute("INSERT OR REPLACE INTO conveyor_values VALUES (?, ?, ?)",
                         (key, value, now + ttl))

        self._write(put)

    def fetch(self, keys: Sequence[str]) -> list[str | None]:
        found: dict[str, str] = self._select_in(
            "SELECT key, value FROM conveyor_values WHERE key IN ({marks}) AND expires > ?",
            keys)
        return [found.get(key) for key in keys]

    def close(self) -> None:
        self._db.close()


def _join_one(conn: sqlite3.Connection, key: str, member: str, now: float,
              expires: float) -> int:
    """Add `member` to the set at `key` (an expired set starts afresh); its new size."""
    head = conn.execute("SELECT expires FROM conveyor_sets WHERE key = ?", (key,)).fetchone()
    if head is not None and head[0] <= now:
        conn.execute("DELETE FROM conveyor_set_members WHERE key = ?", (key,))
        conn.execute("DELETE FROM conveyor_sets WHERE key = ?", (key,))
    added = conn.execute("INSERT OR IGNORE INTO conveyor_set_members VALUES (?, ?)",
                         (key, member)).rowcount
    conn.execute(
        "INSERT INTO conveyor_sets VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
        " SET expires = excluded.expires, size = size + excluded.size",
        (key, expires, added))
    size = conn.execute("SELECT size FROM conveyor_sets WHERE key = ?", (key,)).fetchone()[0]
    return int(size)


def _delete_expired(conn: sqlite3.Connection, now: float) -> None:
    conn.execute("DELETE FROM conveyor_results WHERE expires <= ?", (now,))
    conn.execute("DELETE FROM conveyor_claims WHERE expires <= ?", (now,))
    conn.execute("DELETE FROM conveyor_values WHERE expires <= ?", (now,))
    conn.execute("DELETE FROM conveyor_set_members WHERE key IN"
                 " (SELECT key FROM conveyor_sets WHERE expires <= ?)", (now,))
    conn.execute("DELETE FROM conveyor_sets WHERE expires <= ?", (now,))
