"""The two storage seams beside the broker: `ResultStore` (task states, progress, values
and errors) and `Coordination` (small atomic key-value primitives).

Kept apart from the Broker even when one SQLite file or one Redis serves all three, so a
deployment can put results elsewhere (`results=` on the App) without touching queues.
Coordination is apart from results because it is not about any one task: chords,
unique keys, the beat's lease and run-once guards, paused queues and rate limits use
it. By default it lives in the result store's backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from conveyor.records import ResultRecord


class ResultStore(Protocol):
    """Implementations must be safe to use from several threads of one process."""

    url: str

    def store(self, records: Sequence[tuple[ResultRecord, float]]) -> None:
        """Write (record, ttl seconds) pairs in one round trip; each replaces its id's record."""

    def get(self, task_id: str) -> ResultRecord | None:
        """The current record, or None when nothing is stored (PENDING) or it expired."""

    def wait(self, task_id: str, timeout: float | None) -> ResultRecord | None:
        """Block until the record is in a final state, or `timeout` passes (then return the
        latest record, possibly None). Stores that can be notified don't busy-poll."""

    def forget(self, task_ids: Sequence[str]) -> None:
        """Delete records now."""

    def get_many(self, task_ids: Sequence[str]) -> list[ResultRecord | None]:
        """The records of many ids in one round trip, in the order asked (None: PENDING)."""

    def close(self) -> None:
        """Release connections. Safe to call twice."""


class Coordination(Protocol):
    """The small atomic primitives workflows, unique tasks and the beat share. Keys live
    in their own namespace (they never clash with task ids) and expire on their own.
    Implementations must be safe to use from several threads of one process."""

    url: str

    def claim(self, key: str, owner: str, ttl: float) -> str:
        """Atomically: if `key` is free (absent or expired) or already held by `owner`, make
        it `owner`'s for `ttl` seconds from now; return who holds it afterwards. A lock with
        a lease (renew by claiming again), a unique-task guard, a run-once guard."""

    def release(self, key: str, owner: str) -> bool:
        """Free `key` if `owner` holds it (a holder never frees another's claim)."""

    def join(self, entries: Sequence[tuple[str, str]], ttl: float) -> list[int]:
        """For each (key, member): add member to the set at `key` (kept `ttl` seconds) and
        return the set's size, atomically, all in one round trip. Adding a member twice
        counts it once: the counter of a chord whose members may run more than once."""

    def put(self, key: str, value: str, ttl: float) -> None:
        """Store a small value under `key` for `ttl` seconds."""

    def fetch(self, keys: Sequence[str]) -> list[str | None]:
        """Values of `put` keys in one round trip, in order (None: absent or expired)."""

    def pace(self, key: str, interval: float) -> float:
        """Atomically take the next slot of the schedule at `key`, which hands out one
        slot every `interval` seconds, and return how many seconds from now it starts
        (0.0: now). One round trip; what cluster-wide rate limits stand on.

        GCRA, the "theoretical arrival time" (tat) of the next free slot:
        ``slot = max(now, tat); tat = slot + interval``. So any number of callers, in
        any processes, get distinct slots at least `interval` apart, and a schedule
        nobody used for a while starts at once again (it keeps no burst credit). `now`
        is the store's clock where it has one (Redis `TIME`), and the answer is a
        delay, not a time, so callers need not agree with the store on the time. The
        key expires on its own at its tat, when it would answer "now" anyway."""

    def close(self) -> None:
        """Release connections. Safe to call twice."""
