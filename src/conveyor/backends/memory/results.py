"""An in-process result store for users' unit tests and `conveyor.testing`.

Each record is kept with its expiry time; an expired one counts as absent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import msgspec

from conveyor.backends.waiting import Clock, wait_until_final
from conveyor.records import ResultRecord

_decoder = msgspec.json.Decoder(ResultRecord)


class MemoryResultStore:
    def __init__(self, url: str = "memory://", *, clock: Clock = time.time) -> None:
        self.url = url
        self._clock = clock
        self._cond = threading.Condition()
        self._records: dict[str, tuple[float, ResultRecord]] = {}

    def store(self, records: Sequence[tuple[ResultRecord, float]]) -> None:
        with self._cond:
            now = self._clock()
            for record, ttl in records:
                # Round-trip through JSON, as the real stores do: a test sees what users get.
                stored = _decoder.decode(msgspec.json.encode(record))
                self._records[record.id] = (now + ttl, stored)
            self._cond.notify_all()

    def get(self, task_id: str) -> ResultRecord | None:
        with self._cond:
            found = self._records.get(task_id)
            if found is None or found[0] <= self._clock():
                return None
            return found[1]

    def wait(self, task_id: str, timeout: float | None) -> ResultRecord | None:
        with self._cond:
            return wait_until_final(lambda: self.get(task_id), self._cond.wait, timeout)

    def forget(self, task_ids: Sequence[str]) -> None:
        with self._cond:
            for task_id in task_ids:
                self._records.pop(task_id, None)

    def get_many(self, task_ids: Sequence[str]) -> list[ResultRecord | None]:
        with self._cond:
            return [self.get(task_id) for task_id in task_ids]

    def close(self) -> None:
        """Nothing to release."""
