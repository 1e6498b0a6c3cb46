"""Rate limits: `rate_limit="100/m"` runs a task at most 100 times a minute, cluster-wide
(every worker and process together), evenly spread: one start every 0.6 s.

Each task name has one schedule in the App's coordination store (`Coordination.pace`,
GCRA). Before a rate-limited task starts, its worker takes the schedule's next slot. A
slot that is now (within TOLERANCE) runs the task; a later one puts the delivery back
in its queue, due at the slot (`Defer`), carrying the slot in the HEADER header, so
when it comes back it runs without taking another. Tasks over the limit therefore wait
in the broker's schedule, not in worker memory, and nothing polls or sleeps for them.

A slot belongs to one attempt: a retry (attempt + 1) takes a new one. Slots are handed
out in the order tasks are first reserved, whatever their priority.

When the store can't be reached the limit is kept (fails closed): the task goes back
for OUTAGE_DELAY seconds without a slot, to try again, and the outage is logged once.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from conveyor.errors import ConfigurationError, ConveyorError
from conveyor.message import Message
from conveyor.middleware.base import Defer, Middleware
from conveyor.outage import Outage
from conveyor.task import Task

logger = logging.getLogger("conveyor.worker")

HEADER = "conveyor-rate-slot"  # "<attempt>:<slot, Unix time>": this attempt has its slot
TOLERANCE = 0.05  # seconds: a slot this near runs now (a round trip to defer costs more)
OUTAGE_DELAY = 2.0  # seconds a task waits in its queue while the store is unreachable
UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
FORMS = "'N/s', 'N/m' or 'N/h' with N a number > 0 (e.g. '100/m', '0.5/s'), or None"
_RATE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*/\s*([smh])\s*")


def interval(task_name: str, rate: object) -> float:
    """Seconds between two starts of a task limited to `rate` ("100/m": 0.6), or
    ConfigurationError naming the task and showing the accepted forms."""
    match = _RATE.fullmatch(rate) if isinstance(rate, str) else None
    count = float(match.group(1)) if match else 0.0
    if match is None or count <= 0:
        raise ConfigurationError(f"task {task_name!r}: rate_limit must be {FORMS} for no "
                                 f"limit, got {rate!r}")
    return UNITS[match.group(2)] / count


def schedule_key(task_name: str) -> str:
    """The coordination key of a task's schedule: one per name, shared by every App on
    the store, as the limit is about what the task calls, not who runs it."""
    return f"rate:{task_name}"


def holds_slot(message: Message) -> bool:
    """Whether this attempt already took its slot (it was deferred to it)."""
    attempt, _, _ = message.headers.get(HEADER, "").partition(":")
    return attempt == str(message.attempt)


class RateLimits(Middleware):
    options = {"rate_limit": None}

    def __init__(self) -> None:
        self._intervals: dict[str, float] = {}  # rate ("100/m") -> its interval (0.6)
        self._outage = Outage(
            logger, "rate limits: can't take slots, the coordination store is unreachable "
            f"(%s); rate-limited tasks go back to their queues for {OUTAGE_DELAY:.0f} s at a "
            "time until it is back",
            "rate limits: the coordination store is back after %.1f s")

    def validate_options(self, task_name: str, options: dict[str, Any]) -> None:
        rate = options.get("rate_limit")
        if rate is not None:
            interval(task_name, rate)

    def before_start(self, task: Task[..., Any], message: Message) -> None:
        rate = task.options["rate_limit"]
        if rate is None or holds_slot(message):
            return
        every = self._intervals.get(rate)
        if every is None:
            every = self._intervals[rate] = interval(task.name, rate)
        try:
            wait = task.app.coordination.pace(schedule_key(task.name), every)
        except ConveyorError as exc:
            self._outage.lost(exc)
            raise Defer(time.time() + OUTAGE_DELAY) from exc
        self._outage.back()
        if wait > TOLERANCE:
            slot = time.time() + wait
            raise Defer(slot, {HEADER: f"{message.attempt}:{slot:.6f}"})
