"""`Outage`: log that a store can't be reached once when it happens and once when it is
back, however many calls fail in between. The worker's loops (reserving, heartbeat,
paused queues) and the rate-limit middleware each keep one, with their own words."""

from __future__ import annotations

import logging
import threading
import time


class Outage:
    """`lost` is the error logged when the outage starts, with one `%s` for the
    exception; `back` the warning logged when it ends, with one `%.1f` for the seconds it
    lasted. Thread-safe: the heartbeat may try ten times a second."""

    def __init__(self, logger: logging.Logger, lost: str, back: str) -> None:
        self.logger = logger
        self.lost_message = lost
        self.back_message = back
        self.since: float | None = None
        self._lock = threading.Lock()

    def lost(self, exc: BaseException) -> None:
        with self._lock:
            if self.since is not None:
                return
            self.since = time.monotonic()
        self.logger.error(self.lost_message, exc)

    def back(self) -> None:
        if self.since is None:  # the common case: no lock
            return
        with self._lock:
            since, self.since = self.since, None
        if since is not None:
            self.logger.warning(self.back_message, time.monotonic() - since)
