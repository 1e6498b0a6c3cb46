"""The ResultStore seam: where task states, progress, values and errors live.

Kept separate from the Broker even when one SQLite file or one Redis serves both, so a
deployment can put results elsewhere (`results=` on the App) without touching queues.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from conveyor.result import ResultRecord


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

    def close(self) -> None:
        """Release connections. Safe to call twice."""
