"""`Window`: how many tasks a worker process holds at once (running, reserved ahead of its
threads, or finished and waiting to be written), unless `--prefetch` fixes it.

Every batch costs the same few round trips whatever its size (a reserve, a write of the
results, an ack), so short tasks want big batches: on Redis with a task body that does
one round trip of its own, a window of 64 instead of 16 cut the worker's CPU per task by
a third. But a task held ahead is one no other worker can take, and that is what slow
tasks must avoid. So the window is sized in time: enough for `AHEAD` seconds of the
process's recent throughput, never below the floor (2 x threads: what the threads run
and as many waiting), never above `CAP`. A process running 5,000 short tasks a second
holds about 100 of them (20 ms of work); one running 1-second tasks holds the floor.

It moves in powers of two: up at once, down only after `SHRINK_AFTER` seconds of lower
throughput, so a broker that re-makes its consumer for a bigger window (RabbitMQ's
basic.qos) sees a handful of changes, not one per sample.
"""

from __future__ import annotations

AHEAD = 0.02  # seconds of recent throughput a process holds
CAP = 256  # tasks, at most
SAMPLE = 0.25  # seconds between two measurements of the throughput
SHRINK_AFTER = 2.0  # seconds the throughput must stay lower before the window shrinks


def _power_of_two_at_least(n: float) -> int:
    size = 1
    while size < n:
        size *= 2
    return size


class Window:
    def __init__(self, floor: int, fixed: bool = False) -> None:
        self.floor = floor
        self.fixed = fixed  # `--prefetch N`: always N
        self.size = floor
        self._count = 0  # tasks finished, as last seen
        self._since = 0.0  # when they were counted (0: not yet)
        self._lower_since: float | None = None

    def observe(self, finished: int, now: float) -> None:
        """Resize from the tasks finished so far (a running count), at most every SAMPLE
        seconds; cheap enough to call before every reserve."""
        if self.fixed or now - self._since < SAMPLE:
            return
        if self._since:
            rate = (finished - self._count) / (now - self._since)
            self._resize(self.target(rate), now)
        self._count, self._since = finished, now

    def target(self, rate: float) -> int:
        """The window for a throughput of `rate` tasks a second."""
        return min(CAP, max(self.floor, _power_of_two_at_least(rate * AHEAD)))

    def _resize(self, target: int, now: float) -> None:
        if target >= self.size:
            self.size, self._lower_since = target, None
        elif self._lower_since is None:
            self._lower_since = now
        elif now - self._lower_since >= SHRINK_AFTER:
            self.size, self._lower_since = target, None
