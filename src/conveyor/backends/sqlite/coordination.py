"""Coordination in the embedded SQLite file (the result store's file).

Layout:
- conveyor_claims(key, owner, expires): who holds a `claim` key, until when.
- conveyor_sets(key, expires, size) and conveyor_set_members(key, member): a `join` set,
  its size kept in its head row so a join costs the same for the 10,000th member as for
  the first, and one expiry for the whole set, renewed by every join (as in Redis).
- conveyor_values(key, value, expires): `put` values.
- conveyor_paces(key, tat): the next free slot of a `pace` schedule; it expires at it.
Expired rows are invisible at once and deleted in passing, at most once a minute.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from conveyor.backends.sqlite.db import ExpiringRows
from conveyor.backends.waiting import Clock

SCHEMA = """
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
CREATE INDEX IF NOT EXISTS conveyor_values_expires ON conveyor_values (expires);
CREATE TABLE IF NOT EXISTS conveyor_paces (
    key TEXT PRIMARY KEY, tat REAL NOT NULL
) WITHOUT ROWID
"""


class SQLiteCoordination(ExpiringRows):
    def __init__(self, url: str, *, clock: Clock = time.time) -> None:
        super().__init__(url, SCHEMA, clock)

    def delete_expired(self, conn: sqlite3.Connection, now: float) -> None:
        conn.execute("DELETE FROM conveyor_claims WHERE expires <= ?", (now,))
        conn.execute("DELETE FROM conveyor_values WHERE expires <= ?", (now,))
        conn.execute("DELETE FROM conveyor_set_members WHERE key IN"
                     " (SELECT key FROM conveyor_sets WHERE expires <= ?)", (now,))
        conn.execute("DELETE FROM conveyor_sets WHERE expires <= ?", (now,))
        conn.execute("DELETE FROM conveyor_paces WHERE tat <= ?", (now,))

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

    def pace(self, key: str, interval: float) -> float:
        def pace(conn: sqlite3.Connection, now: float) -> float:
            (tat,) = conn.execute(
                "INSERT INTO conveyor_paces VALUES (?, ?) ON CONFLICT (key) DO UPDATE"
                " SET tat = max(tat, ?) + ? RETURNING tat",
                (key, now + interval, now, interval)).fetchone()
            return max(0.0, float(tat) - interval - now)

        return self._write(pace)


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
