"""Results in the embedded SQLite file (the broker's file unless `results=` says otherwise).

Layout: conveyor_results(id, state, expires, record), `record` the JSON ResultRecord.
Expired rows are invisible at once and deleted in passing, at most once a minute.
`wait()` sleeps until another connection commits (PRAGMA data_version), not on a timer.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

import msgspec

from conveyor.backends.sqlite.db import ExpiringRows
from conveyor.backends.waiting import Clock, wait_until_final
from conveyor.records import ResultRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS conveyor_results (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    expires REAL NOT NULL,
    record BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conveyor_results_expires ON conveyor_results (expires)
"""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ResultRecord)


class SQLiteResultStore(ExpiringRows):
    def __init__(self, url: str, *, clock: Clock = time.time) -> None:
        super().__init__(url, SCHEMA, clock)

    def delete_expired(self, conn: sqlite3.Connection, now: float) -> None:
        conn.execute("DELETE FROM conveyor_results WHERE expires <= ?", (now,))

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
                (task_id, self._clock()),
            ).fetchone()
        )
        return _decoder.decode(row[0]) if row else None

    def get_many(self, task_ids: Sequence[str]) -> list[ResultRecord | None]:
        found: dict[str, bytes] = self._select_in(
            "SELECT id, record FROM conveyor_results WHERE id IN ({marks}) AND expires > ?",
            task_ids)
        return [_decoder.decode(found[i]) if i in found else None for i in task_ids]

    def wait(self, task_id: str, timeout: float | None) -> ResultRecord | None:
        def read() -> ResultRecord | None:
            self._db.run(self._db.changed)  # baseline before looking: no commit is missed
            return self.get(task_id)

        return wait_until_final(read, self._db.sleep_until_change, timeout)

    def forget(self, task_ids: Sequence[str]) -> None:
        def delete() -> None:
            with self._db.write() as conn:
                conn.executemany("DELETE FROM conveyor_results WHERE id = ?",
                                 [(i,) for i in task_ids])

        self._db.run(delete)
