"""An in-process result store for users' unit tests and `conveyor.testing`."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import msgspec

from conveyor.result import ResultRecord

_decoder = msgspec.json.Decoder(ResultRecord)


class MemoryResultStore:
    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._cond = threading.Condition()
        self._records: dict[str, tuple[float, ResultRecord]] = {}

    def store(self, records: Sequence[tuple[ResultRecord, float]]) -> None:
        with self._cond:
            now = time.time()
            for record, ttl in records:
                # Round-trip through JSON, as the real stores do: a test sees what users get.
                stored = _decoder.decode(msgspec.json.encode(record))
                self._records[record.id] = (now + ttl, stored)
            self._cond.notify_all()

    def get(self, task_id: str) -> ResultRecord | None:
        with self._cond:
            found = self._records.get(task_id)
            if found is None or found[0] <= time.time():
                return None
            return found[1]

    def wait(self, task_id: str, timeout: float | None) -> ResultRecord | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                record = self.get(task_id)
                if record is not None and record.state.is_final:
                    return record
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return record
                self._cond.wait(remaining)

    def forget(self, task_ids: Sequence[str]) -> None:
        with self._cond:
            for task_id in task_ids:
                self._records.pop(task_id, None)

    def close(self) -> None:
        """Nothing to release."""
