"""`PausedQueues`: which of a worker's queues it may take tasks from, given the queues
paused cluster-wide (`App.pause`, lifecycle/pausing.py).

The reserve loop is a hot path: it asks `consumable()` before every reserve, which
answers from memory and reads the store at most every REFRESH seconds (one `fetch`).
So a pause or resume reaches every worker within REFRESH plus one idle reserve (0.5 s
each): within a second. When the store can't be read, the last known set holds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from conveyor.errors import ConveyorError
from conveyor.lifecycle import pausing
from conveyor.worker.outage import store_outage

if TYPE_CHECKING:
    from conveyor.app import App

logger = logging.getLogger("conveyor.worker")

REFRESH = 0.5  # seconds between two reads of the paused queues


class PausedQueues:
    def __init__(self, app: App, queues: Sequence[str], who: str = "worker") -> None:
        self.app = app
        self.queues = list(queues)
        self.who = who
        self.paused: frozenset[str] = frozenset()  # of this worker's queues, last read
        self._consumable = list(self.queues)
        self._next_read = 0.0
        self._outage = store_outage(who, "reading the paused queues; the last known ones stay "
                                         "paused meanwhile")

    def consumable(self) -> list[str]:
        """This worker's queues but the paused ones, in their order (maybe none)."""
        now = time.monotonic()
        if now >= self._next_read:
            self._next_read = now + REFRESH
            self.refresh()
        return self._consumable

    def refresh(self) -> None:
        """Read the paused queues now; on a store error keep the last known ones."""
        try:
            paused = frozenset(pausing.paused(self.app.coordination)) & set(self.queues)
        except ConveyorError as exc:
            self._outage.lost(exc)
            return
        self._outage.back()
        if paused == self.paused:
            return
        for queue in sorted(paused - self.paused):
            logger.info("%s: queue %s is paused: taking none of its tasks until it is "
                        "resumed", self.who, queue)
        for queue in sorted(self.paused - paused):
            logger.info("%s: queue %s is resumed", self.who, queue)
        self.paused = paused
        self._consumable = [q for q in self.queues if q not in paused]
