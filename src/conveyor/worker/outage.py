"""`Outage`: how a worker's loops log that the store can't be reached: once when it
happens, once when it is back."""

from __future__ import annotations

import logging
import threading
import time

from conveyor.errors import ConveyorError

logger = logging.getLogger("conveyor.worker")


class Outage:
    """Logs that the store can't be reached once when it happens and once when it is
    back, however many calls fail in between (the heartbeat tries ten times a second).
    One per loop (reserving, heartbeat): each says what it couldn't do."""

    def __init__(self, who: str, what: str) -> None:
        self.who = who
        self.what = what
        self.since: float | None = None
        self._lock = threading.Lock()

    def lost(self, exc: ConveyorError) -> None:
        with self._lock:
            if self.since is not None:
                return
            self.since = time.monotonic()
        logger.error("%s lost the store (%s), retrying until it is back: %s", self.who,
                     self.what, exc)

    def back(self) -> None:
        if self.since is None:  # the common case: no lock
            return
        with self._lock:
            since, self.since = self.since, None
        if since is not None:
            logger.warning("%s reached the store again (%s) after %.1f s", self.who,
                           self.what, time.monotonic() - since)
