"""Hard time limits (`time_limit=`): which running tasks are past theirs.

Stopping a task for sure means replacing its process: the worker records the overdue
task's failure (or retry), hands every other unfinished task back at once, and exits;
the supervisor forks a fresh process. See `Worker._enforce_hard_limits`.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from conveyor.middleware.base import Execution

if TYPE_CHECKING:
    from conveyor.worker.executor import Prepared


class HardLimits:
    def __init__(self) -> None:
        self._running: dict[int, tuple[float, Prepared, Execution]] = {}
        self._lock = threading.Lock()

    def started(self, prepared: Prepared, execution: Execution) -> None:
        limit = prepared.task.options.time_limit
        if limit is not None:
            with self._lock:
                self._running[id(prepared)] = (time.monotonic() + limit, prepared, execution)

    def finished(self, prepared: Prepared) -> None:
        if prepared.task.options.time_limit is not None:
            with self._lock:
                self._running.pop(id(prepared), None)

    def overdue(self) -> list[tuple[Prepared, Execution]]:
        now = time.monotonic()
        with self._lock:
            return [(p, e) for deadline, p, e in self._running.values() if deadline <= now]
