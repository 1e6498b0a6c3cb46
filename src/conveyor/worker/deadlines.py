"""Hard deadlines: which running tasks are past the `Execution.deadline` a middleware set
(`time_limit=` does, in `TimeLimits`).

Stopping a task for sure means replacing its process: the worker records the overdue
task's failure (or retry), hands every other unfinished task back at once, and exits
with `EXIT_HARD_LIMIT`; the supervisor forks a fresh process. See
`Worker._enforce_deadlines`. Light on purpose: the supervisor imports this module.
"""

from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

T = TypeVar("T")  # what is watched: the executor's (prepared delivery, execution) pairs

EXIT_HARD_LIMIT = 70  # a worker process replaced itself to stop a task over its time_limit


class Deadlines(Generic[T]):
    def __init__(self) -> None:
        self._running: dict[int, tuple[float, T]] = {}
        self._lock = threading.Lock()

    def watch(self, key: object, deadline: float | None, item: T) -> None:
        """Watch `item` until `forget(key)`, if it has a `deadline` (`time.monotonic()`)."""
        if deadline is not None:
            with self._lock:
                self._running[id(key)] = (deadline, item)

    def forget(self, key: object) -> None:
        if id(key) in self._running:  # most tasks have no deadline: no lock for them
            with self._lock:
                self._running.pop(id(key), None)

    def overdue(self) -> list[T]:
        now = time.monotonic()
        with self._lock:
            return [item for deadline, item in self._running.values() if deadline <= now]
