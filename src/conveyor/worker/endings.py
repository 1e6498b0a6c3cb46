"""How finished deliveries show in a worker's log and counts: a retry is logged (when and
why) at INFO, a failure for good once with its traceback; tasks handed back unstarted at
a shutdown are neither processed nor logged. Apart from the consumer, which only calls
these after each batch is written."""

from __future__ import annotations

import logging
import time

from conveyor.lifecycle.completion import Completion
from conveyor.records import State

logger = logging.getLogger("conveyor.worker")


def _handed_back(c: Completion) -> bool:
    """Given back unstarted (a shutdown): not a task processed, nor a retry to log."""
    return c.action == "retry" and c.record is None


def processed(completions: list[Completion]) -> int:
    return sum(1 for c in completions if not _handed_back(c))


def log_ends(completions: list[Completion]) -> None:
    for c in completions:
        if c.action != "ack" and not _handed_back(c):
            _log_end(c)


def _log_end(c: Completion) -> None:
    """Log a retry (when and why) at INFO, and a failure for good once, with its
    traceback: what an operator reading the worker's log needs, off the success path."""
    name = c.message.task if c.message is not None else "?"
    error = c.record.error if c.record is not None else None
    if c.action == "retry" and c.record is not None and c.record.state is State.RETRY:
        at = c.at if c.at is not None else time.time()  # not a hand-back: a retry
        why = f"{error.type}: {error.message}" if error is not None else "asked to"
        logger.info("task %s (%s) attempt %d failed (%s): retrying at %s (in %.1f s)",
                    c.delivery.id, name, c.record.attempt, why,
                    time.strftime("%H:%M:%S %Z", time.localtime(at)),
                    max(0.0, at - time.time()))
    elif c.action == "dead" and error is not None and error.traceback:
        logger.error("task %s (%s) failed for good, dead-lettered: %s\n%s", c.delivery.id,
                     name, c.reason, error.traceback.rstrip())
    elif c.action == "dead":
        logger.warning("task %s (%s) dead-lettered: %s", c.delivery.id, name, c.reason)
