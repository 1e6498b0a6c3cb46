"""An in-process broker for users' unit tests and `conveyor.testing`.

Same semantics as the real brokers (leases, schedule, priorities, dead letters), held in
this process's memory: nothing survives the process, and other processes can't see it.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from conveyor.backends.waiting import Clock, reserve_loop
from conveyor.broker import DeadLetter, Delivery, QueueStats, Revoked, WorkerInfo
from conveyor.message import Envelope

T = TypeVar("T")  # a heap's sort key: (-priority) for ready, the due time for scheduled


@dataclass
class _Entry:
    seq: int
    id: str
    queue: str
    priority: int
    body: bytes
    due: float = 0.0
    deliveries: int = 0
    leased_until: float | None = None


def _without(heap: list[tuple[T, int, _Entry]], ids: set[str], removed: list[Revoked]
             ) -> list[tuple[T, int, _Entry]]:
    """`heap` without the entries of `ids` (appended to `removed`), still a heap."""
    kept = [item for item in heap if item[2].id not in ids]
    if len(kept) < len(heap):
        removed += [Revoked(e.id, e.queue, e.body) for _, _, e in heap if e.id in ids]
        heapq.heapify(kept)
    return kept


class MemoryBroker:
    def __init__(self, url: str = "memory://", lease_seconds: float = 30.0, *,
                 clock: Clock = time.time) -> None:
        self.url = url
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._ready: dict[str, list[tuple[int, int, _Entry]]] = {"default": []}
        self._scheduled: list[tuple[float, int, _Entry]] = []
        self._leased: dict[int, _Entry] = {}
        self._dead: list[DeadLetter] = []
        self._dead_priority: dict[str, int] = {}
        self._workers: dict[str, tuple[float, WorkerInfo]] = {}

    def _push(self, entry: _Entry) -> None:
        entry.leased_until = None
        heapq.heappush(self._ready.setdefault(entry.queue, []),
                       (-entry.priority, entry.seq, entry))

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        now = self._clock()
        with self._cond:
            for e in envelopes:
                entry = _Entry(next(self._seq), e.id, e.queue, e.priority, e.body)
                self._ready.setdefault(e.queue, [])
                if e.eta and e.eta > now:
                    entry.due = e.eta
                    heapq.heappush(self._scheduled, (e.eta, entry.seq, entry))
                else:
                    self._push(entry)
            self._cond.notify_all()

    def _promote(self, now: float) -> float | None:
        """Move due schedules and lost leases back to ready; return the next time to look."""
        while self._scheduled and self._scheduled[0][0] <= now:
            self._push(heapq.heappop(self._scheduled)[2])
        for seq, entry in list(self._leased.items()):
            if entry.leased_until is not None and entry.leased_until <= now:
                del self._leased[seq]
                self._push(entry)
        times = [self._scheduled[0][0]] if self._scheduled else []
        times += [e.leased_until for e in self._leased.values() if e.leased_until is not None]
        return min(times) if times else None

    def reserve(self, queues: Sequence[str], n: int, wait: float) -> list[Delivery]:
        def attempt() -> tuple[list[Delivery], float | None]:
            next_due = self._promote(self._clock())
            heads = [q for q in queues if self._ready.get(q)]
            return (self._take(heads, n) if heads else []), next_due

        with self._cond:
            return reserve_loop(attempt, self._cond.wait, wait, self._clock)

    def _take(self, queues: list[str], n: int) -> list[Delivery]:
        taken: list[Delivery] = []
        until = self._clock() + self.lease_seconds
        while len(taken) < n:
            candidates = [q for q in queues if self._ready[q]]
            if not candidates:
                break
            queue = min(candidates, key=lambda q: self._ready[q][0][:2])
            entry = heapq.heappop(self._ready[queue])[2]
            entry.deliveries += 1
            entry.leased_until = until
            self._leased[entry.seq] = entry
            taken.append(Delivery(entry.id, entry.queue, entry.priority, entry.body,
                                  str(entry.seq), str(entry.seq), entry.deliveries))
        return taken

    def _holder(self, delivery: Delivery) -> _Entry | None:
        entry = self._leased.get(int(delivery.receipt))
        return entry if entry is not None and entry.deliveries == delivery.deliveries else None

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        with self._cond:
            for d in deliveries:
                entry = self._holder(d)
                if entry is not None:
                    entry.leased_until = self._clock() + self.lease_seconds

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        with self._cond:
            for d in deliveries:
                if self._holder(d) is not None:
                    del self._leased[int(d.receipt)]

    def retry(self, delivery: Delivery, body: bytes, at: float | None) -> None:
        with self._cond:
            entry = self._holder(delivery)
            if entry is None:
                return
            del self._leased[entry.seq]
            entry.body = body
            if at and at > self._clock():
                entry.leased_until = None
                entry.due = at
                heapq.heappush(self._scheduled, (at, entry.seq, entry))
            else:
                self._push(entry)
            self._cond.notify_all()

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        with self._cond:
            entry = self._holder(delivery)
            if entry is None:
                return
            del self._leased[entry.seq]
            self._dead.append(DeadLetter(entry.id, entry.queue, reason, self._clock(), entry.body))

    def make_all_due(self) -> None:
        """Make every scheduled message ready now (conveyor.testing skips waiting)."""
        with self._cond:
            while self._scheduled:
                self._push(heapq.heappop(self._scheduled)[2])
            self._cond.notify_all()

    def purge(self, queue: str) -> int:
        with self._cond:
            count = len(self._ready.get(queue, []))
            self._ready[queue] = []
            kept = [s for s in self._scheduled if s[2].queue != queue]
            count += len(self._scheduled) - len(kept)
            self._scheduled = kept
            heapq.heapify(self._scheduled)
            return count

    def revoke(self, ids: Sequence[str]) -> list[Revoked]:
        wanted = set(ids)
        removed: list[Revoked] = []
        with self._cond:
            for queue, heap in self._ready.items():
                self._ready[queue] = _without(heap, wanted, removed)
            self._scheduled = _without(self._scheduled, wanted, removed)
        return removed

    def stats(self) -> dict[str, QueueStats]:
        with self._cond:
            self._promote(self._clock())
            stats = {q: QueueStats(ready=len(items)) for q, items in self._ready.items()}
            for _, _, entry in self._scheduled:
                stats.setdefault(entry.queue, QueueStats()).scheduled += 1
            for entry in self._leased.values():
                stats.setdefault(entry.queue, QueueStats()).running += 1
            for dead in self._dead:
                stats.setdefault(dead.queue, QueueStats()).dead += 1
            return stats

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        with self._cond:
            found = [d for d in reversed(self._dead) if queue is None or d.queue == queue]
            return found[:limit]

    def purge_dead(self, queue: str | None = None, ids: Sequence[str] | None = None) -> int:
        with self._cond:
            wanted = set(ids) if ids is not None else None
            kept = [
                d for d in self._dead
                if (queue is not None and d.queue != queue)
                or (wanted is not None and d.id not in wanted)
            ]
            removed = len(self._dead) - len(kept)
            self._dead = kept
            return removed

    def heartbeat(self, worker: WorkerInfo, ttl: float) -> None:
        with self._cond:
            now = self._clock()
            self._workers = {i: w for i, w in self._workers.items() if w[0] > now}
            self._workers[worker.id] = (now + ttl, worker)

    def workers(self) -> list[WorkerInfo]:
        with self._cond:
            now = self._clock()
            return [info for expires, info in self._workers.values() if expires > now]

    def forget_worker(self, worker_id: str) -> None:
        with self._cond:
            self._workers.pop(worker_id, None)

    def close(self) -> None:
        """Nothing to release: the messages live as long as this object."""
