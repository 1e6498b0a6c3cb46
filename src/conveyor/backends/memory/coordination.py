"""In-process coordination for users' unit tests and `conveyor.testing`.

Claims, sets, values and pace schedules live in their own dicts, each entry with its
expiry time; an expired entry counts as absent and is replaced when next written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TypeVar

from conveyor.backends.waiting import Clock

T = TypeVar("T")


class MemoryCoordination:
    def __init__(self, url: str = "memory://", *, clock: Clock = time.time) -> None:
        self.url = url
        self._clock = clock
        self._lock = threading.Lock()
        self._claims: dict[str, tuple[float, str]] = {}  # key -> (expires, owner)
        self._sets: dict[str, tuple[float, set[str]]] = {}  # key -> (expires, members)
        self._values: dict[str, tuple[float, str]] = {}  # key -> (expires, value)
        self._paces: dict[str, tuple[float, float]] = {}  # key -> (expires, tat), equal

    def claim(self, key: str, owner: str, ttl: float) -> str:
        with self._lock:
            now = self._clock()
            holder = _live(self._claims.get(key), now)
            if holder is None or holder == owner:
                self._claims[key] = (now + ttl, owner)
                return owner
            return holder

    def release(self, key: str, owner: str) -> bool:
        with self._lock:
            if _live(self._claims.get(key), self._clock()) != owner:
                return False
            del self._claims[key]
            return True

    def join(self, entries: Sequence[tuple[str, str]], ttl: float) -> list[int]:
        with self._lock:
            now = self._clock()
            sizes = []
            for key, member in entries:
                members = _live(self._sets.get(key), now) or set()
                members.add(member)
                self._sets[key] = (now + ttl, members)
                sizes.append(len(members))
            return sizes

    def put(self, key: str, value: str, ttl: float) -> None:
        with self._lock:
            self._values[key] = (self._clock() + ttl, value)

    def fetch(self, keys: Sequence[str]) -> list[str | None]:
        with self._lock:
            now = self._clock()
            return [_live(self._values.get(key), now) for key in keys]

    def pace(self, key: str, interval: float) -> float:
        with self._lock:
            now = self._clock()
            tat = _live(self._paces.get(key), now)
            slot = now if tat is None else max(now, tat)
            self._paces[key] = (slot + interval, slot + interval)
            return slot - now

    def close(self) -> None:
        """Nothing to release."""


def _live(entry: tuple[float, T] | None, now: float) -> T | None:
    """The value of an (expires, value) entry, or None if it is missing or expired."""
    return entry[1] if entry is not None and entry[0] > now else None
