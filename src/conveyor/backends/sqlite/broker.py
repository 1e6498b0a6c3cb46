"""The embedded default broker: one SQLite file, several processes, no server.

Data layout (schema version 1):
- conveyor_messages: one row per message not yet finished.
    state 0 = ready, 1 = reserved (leased), 2 = scheduled (eta in the future).
    due = when a scheduled message becomes ready, or when a lease runs out.
    deliveries = how many times it was handed out; it fences late acks of lost leases.
- conveyor_dead: dead letters with the reason.
- conveyor_queues: every queue name ever published to (for `conveyor status`).
- conveyor_workers: live worker heartbeats (JSON WorkerInfo), expiring.

Expired leases and due scheduled messages are turned back into ready ones by whichever
consumer reserves next, inside its own write transaction, so nothing waits in memory.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgspec

from conveyor.backends.sqlite.db import Database
from conveyor.backends.waiting import Clock, reserve_loop
from conveyor.broker import DeadLetter, Delivery, QueueStats, Revoked, WorkerInfo
from conveyor.message import Envelope

READY, RESERVED, SCHEDULED = 0, 1, 2
ID_CHUNK = 500  # ids per statement, well under SQLite's limit on bound parameters

SCHEMA = """
CREATE TABLE IF NOT EXISTS conveyor_messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state INTEGER NOT NULL,
    due REAL NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 0,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS conveyor_messages_ready
    ON conveyor_messages (queue, state, priority DESC, seq);
CREATE INDEX IF NOT EXISTS conveyor_messages_due ON conveyor_messages (state, due);
CREATE TABLE IF NOT EXISTS conveyor_dead (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    reason TEXT NOT NULL,
    failed_at REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS conveyor_queues (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conveyor_workers (
    id TEXT PRIMARY KEY, expires REAL NOT NULL, info BLOB NOT NULL
) WITHOUT ROWID
"""

_worker_decoder = msgspec.json.Decoder(WorkerInfo)


class SQLiteBroker:
    def __init__(self, url: str, lease_seconds: float = 30.0, *,
                 clock: Clock = time.time) -> None:
        self.url = url
        self.lease_seconds = lease_seconds
        self._clock = clock
        # Producers commit with FULL (see db.py); the worker side uses `_worker_db`.
        self._db = Database(url, SCHEMA, synchronous="full")
        self._worker_db = Database(url, SCHEMA, synchronous="normal")
        self._known_queues: set[str] = set()

    # -- producing -------------------------------------------------------------------

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        now = self._clock()
        rows = [
            (
                e.id,
                e.queue,
                e.priority,
                SCHEDULED if e.eta and e.eta > now else READY,
                e.eta or now,
                e.body,
            )
            for e in envelopes
        ]
        new_queues = {e.queue for e in envelopes} - self._known_queues

        def insert() -> None:
            with self._db.write() as conn:
                conn.executemany(
                    "INSERT INTO conveyor_messages (id, queue, priority, state, due, body)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                if new_queues:
                    conn.executemany(
                        "INSERT OR IGNORE INTO conveyor_queues VALUES (?)",
                        [(q,) for q in new_queues],
                    )

        self._db.run(insert)
        self._known_queues |= new_queues

    # -- consuming -------------------------------------------------------------------

    def reserve(self, queues: Sequence[str], n: int, wait: float) -> list[Delivery]:
        db = self._worker_db

        def attempt() -> tuple[list[Delivery], float | None]:
            db.run(db.changed)  # a baseline before looking: no commit is missed
            deliveries = db.run(lambda: self._reserve_now(queues, n))
            return deliveries, None if deliveries else db.run(lambda: self._next_due(queues))

        # Woken by any commit (a publish), or when the next scheduled message is due.
        return reserve_loop(attempt, db.sleep_until_change, wait, self._clock, max_pause=0.5)

    def _next_due(self, queues: Sequence[str]) -> float | None:
        marks = ",".join("?" * len(queues))
        row = self._worker_db.connection().execute(
            f"SELECT min(due) FROM conveyor_messages WHERE state IN (1, 2) AND queue IN ({marks})",
            list(queues),
        ).fetchone()
        return row[0] if row else None

    def _reserve_now(self, queues: Sequence[str], n: int) -> list[Delivery]:
        now = self._clock()
        with self._worker_db.write() as conn:
            # Lost leases and due schedules become ready again (both cheap index lookups).
            conn.execute(
                "UPDATE conveyor_messages SET state = 0 WHERE state IN (1, 2) AND due <= ?",
                (now,),
            )
            candidates: list[tuple[int, int]] = []
            for queue in queues:
                candidates += conn.execute(
                    "SELECT priority, seq FROM conveyor_messages WHERE queue = ? AND state = 0"
                    " ORDER BY priority DESC, seq LIMIT ?",
                    (queue, n),
                ).fetchall()
            if not candidates:
                return []
            chosen = sorted(candidates, key=lambda c: (-_priority(c[0]), c[1]))[:n]
            marks = ",".join("?" * len(chosen))
            rows = conn.execute(
                f"UPDATE conveyor_messages SET state = 1, due = ?, deliveries = deliveries + 1"
                f" WHERE seq IN ({marks})"
                " RETURNING seq, id, queue, priority, body, deliveries",
                [now + self.lease_seconds, *(seq for _, seq in chosen)],
            ).fetchall()
        deliveries = [
            # A row written by something else may hold other types: they are handed out
            # as what they mean (the executor dead-letters a body that isn't a message).
            Delivery(id=str(r[1]), queue=r[2], priority=_priority(r[3]), body=_bytes(r[4]),
                     receipt=str(r[0]), entry=str(r[0]), deliveries=r[5])
            for r in rows
        ]
        deliveries.sort(key=lambda d: (-d.priority, int(d.receipt)))
        return deliveries

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        until = self._clock() + self.lease_seconds
        self._write_many(
            "UPDATE conveyor_messages SET due = ? WHERE seq = ? AND deliveries = ? AND state = 1",
            [(until, int(d.receipt), d.deliveries) for d in deliveries],
        )

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        self._write_many(
            "DELETE FROM conveyor_messages WHERE seq = ? AND deliveries = ?",
            [(int(d.receipt), d.deliveries) for d in deliveries],
        )

    def retry(self, delivery: Delivery, body: bytes, at: float | None) -> None:
        now = self._clock()
        state = SCHEDULED if at and at > now else READY
        self._write_many(
            "UPDATE conveyor_messages SET state = ?, due = ?, body = ?"
            " WHERE seq = ? AND deliveries = ?",
            [(state, at or now, body, int(delivery.receipt), delivery.deliveries)],
        )

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        key = (int(delivery.receipt), delivery.deliveries)

        def move() -> None:
            with self._worker_db.write() as conn:
                conn.execute(
                    "INSERT INTO conveyor_dead (id, queue, priority, reason, failed_at, body)"
                    " SELECT id, queue, priority, ?, ?, body FROM conveyor_messages"
                    " WHERE seq = ? AND deliveries = ?",
                    (reason, self._clock(), *key),
                )
                conn.execute(
                    "DELETE FROM conveyor_messages WHERE seq = ? AND deliveries = ?", key
                )

        self._worker_db.run(move)

    def _write_many(self, sql: str, rows: list[tuple[object, ...]]) -> None:
        if not rows:
            return

        def write() -> None:
            with self._worker_db.write() as conn:
                conn.executemany(sql, rows)

        self._worker_db.run(write)

    # -- managing --------------------------------------------------------------------

    def purge(self, queue: str) -> int:
        def delete() -> int:
            with self._db.write() as conn:
                cursor = conn.execute(
                    "DELETE FROM conveyor_messages WHERE queue = ? AND state IN (0, 2)", (queue,)
                )
                return cursor.rowcount

        return self._db.run(delete)

    def revoke(self, ids: Sequence[str]) -> list[Revoked]:
        wanted = list(dict.fromkeys(ids))

        # One transaction: a message is either reserved by a worker or deleted here. No
        # index on id (it would cost every publish and ack): the ready and scheduled rows
        # are scanned: some 30 ms for a hundred thousand waiting messages.
        def delete() -> list[Revoked]:
            removed: list[Revoked] = []
            with self._db.write() as conn:
                for start in range(0, len(wanted), ID_CHUNK):
                    chunk = wanted[start:start + ID_CHUNK]
                    removed += [Revoked(*row) for row in conn.execute(
                        "DELETE FROM conveyor_messages WHERE state IN (0, 2)"
                        f" AND id IN ({','.join('?' * len(chunk))}) RETURNING id, queue, body",
                        chunk,
                    )]
            return removed

        return self._db.run(delete) if wanted else []

    def stats(self) -> dict[str, QueueStats]:
        def read() -> dict[str, QueueStats]:
            conn = self._db.connection()
            now = self._clock()
            stats = {"default": QueueStats()}
            for (name,) in conn.execute("SELECT name FROM conveyor_queues"):
                stats[name] = QueueStats()
            rows = conn.execute(
                "SELECT queue, CASE WHEN state = 2 AND due > ? THEN 2"
                " WHEN state = 1 AND due > ? THEN 1 ELSE 0 END AS s, count(*)"
                " FROM conveyor_messages GROUP BY queue, s",
                (now, now),
            )
            for queue, state, count in rows:
                entry = stats.setdefault(queue, QueueStats())
                if state == READY:
                    entry.ready += count
                elif state == RESERVED:
                    entry.running += count
                else:
                    entry.scheduled += count
            for queue, count in conn.execute(
                "SELECT queue, count(*) FROM conveyor_dead GROUP BY queue"
            ):
                stats.setdefault(queue, QueueStats()).dead = count
            return stats

        return self._db.run(read)

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        sql = "SELECT id, queue, reason, failed_at, body FROM conveyor_dead"
        params: list[object] = []
        if queue is not None:
            sql += " WHERE queue = ?"
            params.append(queue)
        sql += " ORDER BY seq DESC LIMIT ?"
        params.append(limit)
        rows = self._db.run(lambda: self._db.connection().execute(sql, params).fetchall())
        return [DeadLetter(str(i), q, str(reason), at, _bytes(body))
                for i, q, reason, at, body in rows]

    def purge_dead(self, queue: str | None = None, ids: Sequence[str] | None = None) -> int:
        sql, params = "DELETE FROM conveyor_dead WHERE 1=1", []
        if queue is not None:
            sql, params = sql + " AND queue = ?", [queue]
        if ids is not None:
            sql += f" AND id IN ({','.join('?' * len(ids))})"
            params += list(ids)

        def delete() -> int:
            with self._db.write() as conn:
                return conn.execute(sql, params).rowcount

        return self._db.run(delete)

    def heartbeat(self, worker: WorkerInfo, ttl: float) -> None:
        """Record `worker`, and delete the rows of workers whose heartbeat expired (a
        SIGKILLed process never says goodbye)."""
        info = msgspec.json.encode(worker)

        def write() -> None:
            with self._worker_db.write() as conn:
                now = self._clock()
                conn.execute("INSERT OR REPLACE INTO conveyor_workers VALUES (?, ?, ?)",
                             (worker.id, now + ttl, info))
                conn.execute("DELETE FROM conveyor_workers WHERE expires <= ?", (now,))

        self._worker_db.run(write)

    def workers(self) -> list[WorkerInfo]:
        rows = self._db.run(
            lambda: self._db.connection().execute(
                "SELECT info FROM conveyor_workers WHERE expires > ? ORDER BY id", (self._clock(),)
            ).fetchall()
        )
        return [_worker_decoder.decode(row[0]) for row in rows]

    def forget_worker(self, worker_id: str) -> None:
        self._write_many("DELETE FROM conveyor_workers WHERE id = ?", [(worker_id,)])

    def close(self) -> None:
        self._db.close()
        self._worker_db.close()


def _bytes(body: object) -> bytes:
    if isinstance(body, bytes):
        return body
    return str(body).encode("utf-8", "surrogateescape")


def _priority(priority: object) -> int:
    return priority if isinstance(priority, int) and 0 <= priority <= 9 else 0
