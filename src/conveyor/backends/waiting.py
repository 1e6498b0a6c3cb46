"""The waits every backend does, written once: a reserve that blocks until a message is
ready, a result wait that blocks until a task is final, and a publish retried while the
server is unreachable.

A backend supplies how to look (`attempt`, `read`) and how to sleep until something may
have changed (`sleep`: a condition variable, a SQLite commit counter, a Redis BLPOP or
pub/sub message, a timer); these loops own the deadline arithmetic.

`Clock` is the wall clock the in-process backends (memory, SQLite) read for leases,
schedules and TTLs; tests inject a fake one so those run without waiting. Deadlines of
the waits themselves are always real (`time.monotonic`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from conveyor.errors import BrokerUnavailable
from conveyor.records import ResultRecord

T = TypeVar("T")
Clock = Callable[[], float]

MAX_PAUSE = 1.0  # a sleep is cut at least this often, so a missed wake-up costs little


def reserve_loop(attempt: Callable[[], tuple[list[T], float | None]],
                 sleep: Callable[[float], object], wait: float,
                 clock: Clock = time.time, max_pause: float = MAX_PAUSE) -> list[T]:
    """Call `attempt` (which returns what it reserved, and when the next scheduled or
    leased message falls due, if known) until it reserves something or `wait` seconds
    pass; in between, `sleep` up to the next due time, at most `max_pause`."""
    deadline = time.monotonic() + wait
    while True:
        found, next_due = attempt()
        remaining = deadline - time.monotonic()
        if found or remaining <= 0:
            return found
        pause = min(remaining, max_pause)
        if next_due is not None:
            pause = min(pause, max(0.001, next_due - clock()))
        sleep(pause)


def wait_until_final(read: Callable[[], ResultRecord | None],
                     sleep: Callable[[float], object], timeout: float | None,
                     max_pause: float = MAX_PAUSE) -> ResultRecord | None:
    """Call `read` until the record it returns is final or `timeout` passes (then return
    the latest record, possibly None); in between, `sleep` at most `max_pause`."""
    deadline = time.monotonic() + (timeout if timeout is not None else 10**9)
    while True:
        record = read()
        remaining = deadline - time.monotonic()
        if (record is not None and record.state.is_final) or remaining <= 0:
            return record
        sleep(min(remaining, max_pause))


def retry_while_unavailable(action: Callable[[], T], timeout: float) -> T:
    """Call `action` until it doesn't raise BrokerUnavailable, for up to `timeout` seconds,
    pausing 50 ms doubling to 1 s; then raise the last error. A publish repeated after a
    lost reply may store a message twice (at least once), never zero."""
    deadline = time.monotonic() + timeout
    pause = 0.05
    while True:
        try:
            return action()
        except BrokerUnavailable:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, MAX_PAUSE)
