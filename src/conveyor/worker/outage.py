"""How a worker's loops word a store outage (`conveyor.outage.Outage` logs it once when
it happens, once when it is back)."""

from __future__ import annotations

import logging

from conveyor.outage import Outage

logger = logging.getLogger("conveyor.worker")


def store_outage(who: str, what: str) -> Outage:
    """One per loop (reserving, heartbeat, paused queues): each says what it couldn't do."""
    who, what = who.replace("%", "%%"), what.replace("%", "%%")
    return Outage(logger, f"{who} lost the store ({what}), retrying until it is back: %s",
                  f"{who} reached the store again ({what}) after %.1f s")
