"""The Broker seam: a small Protocol of queue operations, one module per backend.

Brokers move messages atomically and nothing else. Policy (attempt counting, backoff,
when to dead-letter, task states) lives once, in the worker's executor.

Semantics every broker must keep (the contract suite in tests/contract checks them):
- `publish` is durable when it returns.
- `reserve` hands out ready messages, highest priority first (9 before 0), then oldest
  first, each with a lease; a message is never handed to two consumers while its lease
  holds. A message whose lease runs out is handed out again (`Delivery.redelivered`).
- Messages with an `eta` in the future wait in a durable schedule until due.
- `ack`, `retry`, `dead_letter` and `extend` on a delivery whose lease was lost (it expired
  and the message was handed out again) do nothing: the newer holder owns it.
- A message handed out again, or put back by `retry`, keeps its `Delivery.entry`; a
  message published twice (the same task id) is two entries.
- `revoke` removes only waiting messages (ready or scheduled), never a reserved one: a
  worker may be running it. Nothing on the reserve/ack path checks for revocations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from conveyor.message import Envelope


class Delivery(msgspec.Struct, frozen=True):
    """One reserved message. `receipt` is what the broker instance that handed it out
    settles it by (unique among what that instance holds), `deliveries` counts its
    hand-outs, and `fence` (where a broker needs more than the count to tell hand-outs
    apart, e.g. after a failover rolled one back) names this one.

    `entry` names the stored message: a hand-out after a lost lease or a killed worker,
    and a retry, keep it, in any process; each publish makes a new one, even of the same
    task id. The run-once guard claims a `once` message's id with it. On SQLite, Redis
    and memory it is the receipt; RabbitMQ's receipts are per process (backends/amqp)."""

    id: str
    queue: str
    priority: int
    body: bytes
    receipt: str
    entry: str
    deliveries: int = 1
    fence: str = ""

    @property
    def key(self) -> tuple[str, int, str]:
        """Identifies this hand-out of this message (what a worker tracks in flight)."""
        return (self.receipt, self.deliveries, self.fence)

    @property
    def redelivered(self) -> bool:
        return self.deliveries > 1


class QueueStats(msgspec.Struct):
    ready: int = 0
    scheduled: int = 0
    running: int = 0
    dead: int = 0


class DeadLetter(msgspec.Struct, frozen=True):
    id: str
    queue: str
    reason: str
    failed_at: float
    body: bytes


class Revoked(msgspec.Struct, frozen=True):
    """A waiting message `revoke` removed, with its body: the App reads the body to end
    what the task would have set off (a chain's next steps, a chord, a unique key)."""

    id: str
    queue: str
    body: bytes


class WorkerInfo(msgspec.Struct, frozen=True):
    """A live worker process, as `conveyor status` shows it."""

    id: str
    hostname: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    started: float
    seen: float
    processed: int = 0
    running: int = 0  # task bodies running now
    reserved: int = 0  # held ahead of a free thread, not started
    # What it holds (running or reserved), per queue: brokers that can't count reserved
    # messages themselves (RabbitMQ) add these up for `stats()`.
    running_by_queue: dict[str, int] = msgspec.field(default_factory=dict)
    # What runs now, per queue: `conveyor status` tells running from reserved with it.
    started_by_queue: dict[str, int] = msgspec.field(default_factory=dict)


class Broker(Protocol):
    """Implementations must be safe to use from several threads of one process, and must
    not reuse connections across `fork()` (worker processes are forked)."""

    url: str
    lease_seconds: float

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Store messages durably, all in one round trip (`map()` relies on it)."""

    def reserve(self, queues: Sequence[str], n: int, wait: float) -> list[Delivery]:
        """Up to `n` ready messages from `queues`, leased for `lease_seconds`; block up to
        `wait` seconds for the first one when none is ready."""

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Renew the leases of running messages for another `lease_seconds`."""

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Remove finished messages for good."""

    def retry(self, delivery: Delivery, body: bytes, at: float | None) -> None:
        """Put a message back with a new body, ready at `at` (None: at once)."""

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move a message to its queue's dead-letter store, keeping its body and the reason."""

    def purge(self, queue: str) -> int:
        """Delete the ready and scheduled messages of a queue; running ones finish."""

    def revoke(self, ids: Sequence[str]) -> list[Revoked]:
        """Atomically remove the messages with these task ids that wait, ready or
        scheduled (a countdown, an eta, a retry backoff), in any queue; one entry per
        message removed. Reserved (running) messages, dead letters and unknown ids are
        left alone. Writes no result: `App.revoke` does, for what this returns."""

    def stats(self) -> dict[str, QueueStats]:
        """Counts per known queue, `default` always included."""

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters first."""

    def purge_dead(self, queue: str | None = None, ids: Sequence[str] | None = None) -> int:
        """Delete dead letters (of a queue, or with those ids, or all). Re-running them is
        the App's job (`App.retry_dead`): it resets their attempts and re-signs them."""

    def heartbeat(self, worker: WorkerInfo, ttl: float) -> None:
        """Record that a worker process is alive, for `ttl` seconds, and forget the
        workers whose heartbeat expired (a SIGKILLed process never says goodbye)."""

    def workers(self) -> list[WorkerInfo]:
        """Workers whose heartbeat hasn't expired."""

    def forget_worker(self, worker_id: str) -> None:
        """Drop a worker that shut down cleanly."""

    def close(self) -> None:
        """Release connections. Safe to call twice."""
