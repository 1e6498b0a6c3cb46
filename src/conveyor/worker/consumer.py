"""The reserve loop of one worker process.

It reserves batches of about 2 x slots (enough that a thread finishing a task finds the
next one waiting, few enough that one worker doesn't hoard a queue other workers could
drain), hands them to the pools, and writes what finished in batches: first every
result of the batch in one transaction, then every ack in one. Results go first, so a
crash between the two re-runs a task (at least once) but never loses its result.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from conveyor.brokers.base import Delivery
from conveyor.errors import ConveyorError, TaskError
from conveyor.message import Envelope
from conveyor.result import ResultRecord
from conveyor.worker.executor import Completion, Executor, Prepared
from conveyor.worker.pools import Pools

if TYPE_CHECKING:
    from conveyor.app import App

logger = logging.getLogger("conveyor.worker")

IDLE_WAIT = 0.5  # how long an idle reserve blocks before looking at shutdown flags
BUSY_POLL = 0.01  # how often a busy consumer looks for more work and flushes results
FULL_POLL = 0.1  # with every slot busy: how often progress reports are written at least


class Consumer:
    def __init__(self, app: App, queues: Sequence[str], threads: int,
                 prefetch: int | None = None) -> None:
        self.app = app
        self.queues = list(queues)
        self.prefetch = prefetch or max(2, 2 * threads)
        self.executor = Executor(app, self._post_record, self._ack_now)
        self.pools = Pools(self.executor, threads)
        self.in_flight: dict[tuple[str, int], Delivery] = {}
        self.processed = 0
        self.failures: list[TaskError] = []  # tasks that failed for good, for testing
        self._done: deque[Completion] = deque()
        self._done_cond = threading.Condition(threading.Lock())
        self._records: dict[str, tuple[ResultRecord, float]] = {}
        self._records_lock = threading.Lock()
        self._lock = threading.Lock()  # guards in_flight across the heartbeat thread
        # One flush or hand-back at a time: the heartbeat thread hands back (hard time
        # limits) while the main thread may be flushing the same deliveries.
        self._flush_lock = threading.RLock()
        self.stopping = threading.Event()

    # -- called from task threads ----------------------------------------------------

    def _post_record(self, record: ResultRecord, ttl: float) -> None:
        with self._records_lock:
            self._records[record.id] = (record, ttl)

    def post_completion(self, completion: Completion) -> None:
        """Called from task threads (and the heartbeat) when a delivery is finished."""
        with self._done_cond:
            self._done.append(completion)
            self._done_cond.notify()

    def _ack_now(self, delivery: Delivery) -> None:
        self.app.broker.ack([delivery])

    # -- the loop --------------------------------------------------------------------

    def step(self, wait: float) -> int:
        """Flush what finished, then reserve and start more. Returns how many started."""
        self.flush()
        free = self.prefetch - len(self.in_flight)
        if free <= 0 or self.stopping.is_set():
            self._wait_for_completion(FULL_POLL)
            return 0
        deliveries = self.app.broker.reserve(self.queues, free, 0 if self.in_flight else wait)
        for delivery in deliveries:
            self._start(delivery)
        if not deliveries and self.in_flight:
            # Busy but nothing more to take: wait for a task to end (or look again soon).
            self._wait_for_completion(BUSY_POLL)
        return len(deliveries)

    def _start(self, delivery: Delivery) -> None:
        with self._lock:
            self.in_flight[_key(delivery)] = delivery
        prepared = self.executor.prepare(delivery)
        if isinstance(prepared, Prepared):
            self.pools.submit(prepared, self.post_completion)
        else:
            self.post_completion(prepared)

    def _wait_for_completion(self, timeout: float) -> None:
        """Sleep until some task finishes (flush() then takes it) or `timeout` passes."""
        with self._done_cond:
            if not self._done:
                self._done_cond.wait(timeout)

    def flush(self) -> None:
        """Write the results, then the broker actions, of everything finished so far.

        A completion whose delivery is no longer in flight is stale (it was handed back,
        or already ended by a hard time limit) and is dropped: the newer owner decides."""
        with self._flush_lock:
            self._flush()

    def _flush(self) -> None:
        with self._done_cond:
            completions = list(self._done)
            self._done.clear()
        with self._records_lock:
            records, self._records = self._records, {}
        if not completions and not records:
            return
        with self._lock:
            live = [c for c in completions if _key(c.delivery) in self.in_flight]
        progress = dict(records)
        for c in live:
            if c.record is not None:
                records[c.record.id] = (c.record, c.ttl)
        try:
            if records:
                self.app.results.store(list(records.values()))
            self._apply(live)
        except ConveyorError:
            # The store is unreachable: keep everything for the next flush (each step is
            # safe to repeat: a lost-lease fence or a no-op makes a second apply harmless).
            self._requeue(live, progress)
            raise

    def _requeue(self, completions: list[Completion],
                 records: dict[str, tuple[ResultRecord, float]]) -> None:
        with self._done_cond:
            self._done.extendleft(reversed(completions))
        with self._records_lock:
            for task_id, record in records.items():
                self._records.setdefault(task_id, record)  # a newer report wins

    def _apply(self, completions: list[Completion]) -> None:
        broker = self.app.broker
        acks = [c.delivery for c in completions if c.action == "ack" and not c.acked]
        if acks:
            broker.ack(acks)
        for c in completions:
            if c.action == "retry" and c.acked:
                broker.publish([Envelope(c.delivery.id, c.delivery.queue, c.delivery.priority,
                                         c.at, c.body or c.delivery.body)])
            elif c.action == "retry":
                broker.retry(c.delivery, c.body or c.delivery.body, c.at)
            if c.action == "dead" and c.record is not None and c.record.error is not None:
                self.failures.append(c.record.error.to_exception())
            if c.action == "dead" and not c.acked:
                logger.warning("task %s dead-lettered: %s", c.delivery.id, c.reason)
                broker.dead_letter(c.delivery, c.reason)
        with self._lock:
            for c in completions:
                self.in_flight.pop(_key(c.delivery), None)
        self.processed += len(completions)

    # -- leases and shutdown ---------------------------------------------------------

    def renew_leases(self) -> None:
        with self._lock:
            running = list(self.in_flight.values())
        if running:
            self.app.broker.extend(running)

    def hand_back(self) -> int:
        """Return every unfinished delivery to its queue, ready at once."""
        with self._flush_lock:
            self._flush()
            with self._lock:
                pending, self.in_flight = list(self.in_flight.values()), {}
            for delivery in pending:
                self.app.broker.retry(delivery, delivery.body, None)
            return len(pending)

    def drain(self, grace: float) -> None:
        """Warm shutdown: let running tasks finish for up to `grace` seconds."""
        deadline = time.monotonic() + grace
        while self.in_flight and time.monotonic() < deadline:
            self.flush()
            self._wait_for_completion(min(0.05, max(0.0, deadline - time.monotonic())))
        self.flush()


def _key(delivery: Delivery) -> tuple[str, int]:
    return (delivery.receipt, delivery.deliveries)
