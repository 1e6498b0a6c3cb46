"""Results in the embedded SQLite file (the broker's file unless `results=` says otherwise).

Layout: conveyor_results(id, state, expires, record) with `record` the JSON ResultRecord.
Expired rows are invisible at once and deleted in passing, at most once a minute.
`wait()` sleeps until another connection commits (PRAGMA data_version), not on a timer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgspec

from conveyor.result import ResultRecord
from conveyor.sqlite_db import Database

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
CLEANUP_EVERY = 60.0


class SQLiteResultStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self._db = Database(url, SCHEMA, synchronous="normal")
        self._next_cleanup = 0.0

    def store(self, records: Sequence[tuple[ResultRecord, float]]) -> None:
        if not records:
            return
        now = time.time()
        rows = [(r.id, r.state.value, now + ttl, _encoder.encode(r)) for r, ttl in records]
        cleanup = now >= self._next_cleanup
        if cleanup:
            self._next_cleanup = now + CLEANUP_EVERY

        def write() -> None:
            with self._db.write() as conn:
                conn.executemany("INSERT OR REPLACE INTO conveyor_results VALUES (?, ?, ?, ?)",
                                 rows)
                if cleanup:
                    conn.execute("DELETE FROM conveyor_results WHERE expires <= ?", (now,))

        self._db.run(write)

    def get(self, task_id: str) -> ResultRecord | None:
        row = self._db.run(
            lambda: self._db.connection().execute(
                "SELECT record FROM conveyor_results WHERE id = ? AND expires > ?",
                (task_id, time.time()),
            ).fetchone()
        )
        return _decoder.decode(row[0]) if row else None

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

    def close(self) -> None:
        self._db.close()
