"""An in-process result store for users' unit tests and `conveyor.testing`.

Claims, sets and values live in their own dicts, apart from task records, each entry
with its expiry time; an expired entry counts as absent and is replaced when next written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TypeVar

import msgspec

from conveyor.result import ResultRecord

T = TypeVar("T")
_decoder = msgspec.json.Decoder(ResultRecord)


class MemoryResultStore:
    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._cond = threading.Condition()
        self._records: dict[str, tuple[float, ResultRecord]] = {}
        self._claims: dict[str, tuple[float, str]] = {}  # key -> (expires, owner)
        self._sets: dict[str, tuple[float, set[str]]] = {}  # key -> (expires, members)
        self._values: dict[str, tuple[float, str]] = {}  # key -> (expires, value)

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

    def get_many(self, task_ids: Sequence[str]) -> list[ResultRecord | None]:
        with self._cond:
            return [self.get(task_id) for task_id in task_ids]

    def claim(self, key: str, owner: str, ttl: float) -> str:
        with self._cond:
            now = time.time()
            holder = _live(self._claims.get(key), now)
            if holder is None or holder == owner:
                self._claims[key] = (now + ttl, owner)
                return owner
            return holder

    def release(self, key: str, owner: str) -> bool:
        with self._cond:
            if _live(self._claims.get(key), time.time()) != owner:
                return False
            del self._claims[key]
            return True

    def join(self, entries: Sequence[tuple[str, str]], ttl: float) -> list[int]:
        with self._cond:
            now = time.time()
            sizes = []
            for key, member in entries:
                members = _live(self._sets.get(key), now) or set()
                members.add(member)
                self._sets[key] = (now + ttl, members)
                sizes.append(len(members))
            return sizes

    def put(self, key: str, value: str, ttl: float) -> None:
        with self._cond:
            self._values[key] = (time.time() + ttl, value)

    def fetch(self, keys: Sequence[str]) -> list[str | None]:
        with self._cond:
            now = time.time()
            return [_live(self._values.get(key), now) for key in keys]

    def close(self) -> None:
        """Nothing to release."""


def _live(entry: tuple[float, T] | None, now: float) -> T | None:
    """The value of an (expires, value) entry, or None if it is missing or expired."""
    return entry[1] if entry is not None and entry[0] > now else None
