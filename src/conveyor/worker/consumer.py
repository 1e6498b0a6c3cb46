"""The reserve loop of one worker process, and its writer.

The main thread reserves batches (up to 2 x slots in flight: enough that a thread
finishing a task finds the next one waiting, few enough that one worker doesn't hoard a
queue other workers could drain) and hands them to the pools. A writer thread writes
what finished, in batches: first every result of the batch in one round trip, then
every ack in one. Results go first, so a crash between the two re-runs a task (at
least once) but never loses its result. Reserving and writing overlap, so a busy worker
pays for the slower of the two round trips, not their sum.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from conveyor.broker import Delivery
from conveyor.errors import ConveyorError, TaskError, TaskTerminated, TimeLimitExceeded
from conveyor.lifecycle import stopping
from conveyor.lifecycle.completion import Completion
from conveyor.lifecycle.followups import Followups, needed
from conveyor.message import Envelope
from conveyor.middleware.base import Outcome
from conveyor.records import ResultRecord, State
from conveyor.worker import threads as worker_threads
from conveyor.worker.deadlines import Board
from conveyor.worker.endings import log_ends, processed
from conveyor.worker.executor import Executor, Prepared
from conveyor.worker.paused import PausedQueues
from conveyor.worker.pools import Pools
from conveyor.worker.window import Window

if TYPE_CHECKING:
    from conveyor.app import App

logger = logging.getLogger("conveyor.worker")

IDLE_WAIT = 0.5  # how long an idle reserve blocks before looking at shutdown flags
BUSY_WAIT = 0.05  # how long a reserve blocks for more work while tasks are running
FULL_POLL = 0.1  # how often progress reports are written at least, and flags looked at


DEFAULT_ASYNC_CONCURRENCY = 256  # async tasks one process runs at once, by default


def default_prefetch(threads: int) -> int:
    """How many tasks a worker process holds at most (reserved, running or finishing),
    unless told otherwise (`conveyor worker --prefetch N`)."""
    return max(2, 2 * threads)


class Consumer:
    def __init__(self, app: App, queues: Sequence[str], threads: int,
                 prefetch: int | None = None,
                 on_thread_death: Callable[[str], None] | None = None,
                 name: str = "worker", board: Board | None = None,
                 async_concurrency: int = DEFAULT_ASYNC_CONCURRENCY) -> None:
        self.app = app
        self.queues = list(queues)
        self.pausing = PausedQueues(app, self.queues, name)  # what to reserve from
        self.prefetch = prefetch or default_prefetch(threads)  # the window's floor
        self.window = Window(self.prefetch, fixed=prefetch is not None)
        self.on_thread_death = on_thread_death
        self.dead_thread: str | None = None  # a thread of this consumer that died
        self.executor = Executor(app, self._post_record, self._ack_now, board)
        self.pools = Pools(self.executor, threads, self.thread_died)
        self.in_flight: dict[tuple[str, int, str], Delivery] = {}
        # The in-flight deliveries of `async def` tasks. They don't take a thread, only
        # memory while they await, so they don't count against the prefetch: a process
        # runs up to `async_concurrency` of them besides its threads' work.
        self.async_concurrency = async_concurrency
        self._async: set[tuple[str, int, str]] = set()
        self.processed = 0
        # The first task that failed for good (`run_until_idle(fail_fast=True)` raises it);
        # only the first: a worker keeps nothing per task it has finished.
        self.first_failure: TaskError | None = None
        self._done: deque[Completion] = deque()
        self._done_cond = threading.Condition(threading.Lock())
        self._records: dict[str, tuple[ResultRecord, float]] = {}
        self._records_lock = threading.Lock()
        self._lock = threading.Lock()  # guards in_flight (main, writer, heartbeat threads)
        self._slots = threading.Condition(self._lock)  # notified when in_flight shrinks
        self._writer: threading.Thread | None = None
        self._writer_stop = threading.Event()
        self.drained = False  # the last reserve, made with nothing running, found nothing
        # Held while reserving and registering what was reserved: another thread that
        # sets `stopping` and takes it knows no reserve is under way or will start.
        self.reserving = threading.Lock()
        # One flush or hand-back at a time: the heartbeat thread hands back (hard time
        # limits) while the writer thread may be flushing the same deliveries.
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
        """Reserve and start more tasks when enough slots are free. Returns how many."""
        if self.stopping.is_set():
            self.wait_for_idle(FULL_POLL)
            return 0
        self.window.observe(self.processed, time.monotonic())
        batch_min = max(1, self.window.size // 2)  # while busy, reserve at least this many
        if self.in_flight and self._free() < batch_min:
            self.wait_for_slots(FULL_POLL, until_free=batch_min)  # batch the reserves
            return 0
        busy = bool(self.in_flight)
        queues = self.pausing.consumable()
        if not queues:  # every queue of this worker is paused: idle until one is resumed
            if busy:
                self.wait_for_idle(FULL_POLL)
            else:
                self.stopping.wait(wait)
            self.drained = not busy
            return 0
        with self.reserving:
            if self.stopping.is_set():
                return 0
            deliveries = self.app.broker.reserve(
                queues, self._free(), BUSY_WAIT if busy else wait)
            for delivery in deliveries:
                self._start(delivery)
        self.drained = not deliveries and not busy
        return len(deliveries)

    def _start(self, delivery: Delivery) -> None:
        key = _key(delivery)
        with self._lock:
            self.in_flight[key] = delivery
        prepared = self.executor.prepare(delivery)
        # Each attempt is one hand-out (brokers that keep the count across retries count
        # those too): more hand-outs than attempts means one was handed back or lost.
        if (delivery.redelivered and isinstance(prepared, Prepared)
                and delivery.deliveries > prepared.message.attempt):
            logger.info("task %s (%s) attempt %d delivered again (hand-out %d): a worker "
                        "that held it stopped or was lost before it finished", delivery.id,
                        prepared.task.name, prepared.message.attempt, delivery.deliveries)
        if isinstance(prepared, Prepared):
            if prepared.task.is_async:
                with self._lock:
                    self._async.add(key)
            self.pools.submit(prepared, self.post_completion)
        else:
            self.post_completion(prepared)

    def _free(self) -> int:
        """How many more tasks to reserve: the window's free slots (async tasks take
        none), or none while `async_concurrency` async tasks are in flight."""
        if len(self._async) >= self.async_concurrency:
            return 0
        return self.window.size - (len(self.in_flight) - len(self._async))

    def wait_for_idle(self, timeout: float) -> None:
        """Sleep until nothing is in flight (the writer frees slots) or `timeout`."""
        with self._slots:
            if self.in_flight:
                self._slots.wait(timeout)

    def wait_for_slots(self, timeout: float, until_free: int) -> None:
        """Sleep until `until_free` slots are free (the writer frees them) or `timeout`."""
        with self._slots:
            if self._free() < until_free:
                self._slots.wait(timeout)

    # -- the writer ------------------------------------------------------------------

    def thread_died(self, name: str) -> None:
        """A thread of this worker process died (see `threads.start`): stop taking work,
        and let the worker decide how to go (`on_thread_death`)."""
        self.dead_thread = name
        self.stopping.set()
        if self.on_thread_death is not None:
            self.on_thread_death(name)

    def start_writer(self) -> None:
        self._writer_stop.clear()
        self._writer = worker_threads.start("conveyor-writer", self._write_loop,
                                            self.thread_died)

    def stop_writer(self) -> None:
        self._writer_stop.set()
        with self._done_cond:
            self._done_cond.notify_all()
        if self._writer is not None and self._writer is not threading.current_thread():
            self._writer.join(timeout=30)

    def _write_loop(self) -> None:
        while not self._writer_stop.is_set():
            with self._done_cond:
                if not self._done:
                    self._done_cond.wait(FULL_POLL)
            try:
                self.flush()
            except ConveyorError as exc:  # the store is unreachable: keep it all, try again
                logger.error("can't write results and acks, retrying in 1 s: %s", exc)
                self._writer_stop.wait(1.0)

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
            if needed(live):
                Followups(self.app).run(live)
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
        log_ends(completions)
        acks = [c.delivery for c in completions if c.action == "ack" and not c.acked]
        if acks:
            broker.ack(acks)
        for c in completions:
            if c.action == "retry" and c.acked:
                broker.publish([Envelope(c.delivery.id, c.delivery.queue, c.delivery.priority,
                                         c.at, c.body or c.delivery.body)])
            elif c.action == "retry":
                broker.retry(c.delivery, c.body or c.delivery.body, c.at)
            if (c.action == "dead" and self.first_failure is None and c.record is not None
                    and c.record.error is not None):
                self.first_failure = c.record.error.to_exception()
            if c.action == "dead" and not c.acked:
                broker.dead_letter(c.delivery, c.reason)
                self.app.middleware.notify("on_dead_letter", c.message, c.reason)
        self._release(completions)

    def _release(self, completions: list[Completion]) -> None:
        """Their deliveries are done with: free their slots, count them."""
        with self._slots:
            for c in completions:
                self.in_flight.pop(_key(c.delivery), None)
                if self._async:
                    self._async.discard(_key(c.delivery))
            self._slots.notify_all()
        if self.executor.stopper.asked:  # a request read again while it was finishing
            for c in completions:
                self.executor.stopper.finished(c.delivery.id)
        self.processed += processed(completions)

    # -- leases and shutdown ---------------------------------------------------------

    def running_by_queue(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(delivery.queue for delivery in self.in_flight.values()))

    def renew_leases(self) -> None:
        with self._lock:
            running = list(self.in_flight.values())
        if running:
            self.app.broker.extend(running)

    def end_overdue(self) -> list[Prepared]:
        """End every task past its hard deadline: its attempt fails (or retries) with
        TimeLimitExceeded, or, asked to terminate, it ends REVOKED. Its thread goes on;
        only replacing the process stops it."""
        overdue = self.executor.deadlines.overdue()
        for prepared, execution in overdue:
            ran = time.time() - execution.started
            error: BaseException = TimeLimitExceeded(
                f"hard time limit exceeded after {ran:.1f} s: the task was stopped by "
                "replacing its worker process")
            if prepared.message.id in self.executor.stopper.asked:
                error = TaskTerminated()
            self.post_completion(self.executor.finish(prepared, execution, Outcome(error=error)))
        return [prepared for prepared, _ in overdue]

    def terminate_requested(self) -> None:
        """Stop the tasks held here that `revoke(terminate=True)` asked to stop (one read
        of the store; the heartbeat calls it every `stopping.POLL` seconds)."""
        with self._lock:
            held = {delivery.id for delivery in self.in_flight.values()}
        if held:
            self.executor.stopper.stop(stopping.termination_requested(self.app.coordination,
                                                                      held))

    def abandon(self) -> None:
        """Before this process is replaced: stop reserving, then hand back at once every
        task that is not finished (what finished is written first)."""
        # Stop reserving first: a reserve woken by our own hand-back would take a task
        # back into this process just before it exits.
        self.stopping.set()
        with self.reserving:
            self.pools.cancel_pending()
            self.hand_back()

    def shut_down(self, grace: float, cancel: threading.Event) -> int:
        """Warm shutdown: tasks not started go back at once, running ones get `grace`
        seconds (unless `cancel` is set: a cold shutdown), then what is still unfinished
        goes back. Returns how many went back at the end."""
        self.pools.cancel_pending()
        running = len(self.executor.stopper.running())
        if running and not cancel.is_set():
            logger.info("waiting for %d running task(s) to finish (up to %g s; a second "
                        "signal hands them back at once)", running, grace)
        self.drain(grace, cancel)
        self.stop_writer()
        handed_back = self.hand_back()  # flushes what finished, returns the rest
        self.pools.shutdown()
        return handed_back

    def hand_back(self) -> int:
        """Return every unfinished delivery to its queue, ready at once. What finished is
        written first; if that fails, it goes back too, to run again (at least once)."""
        with self._flush_lock:
            try:
                self._flush()
            except Exception:  # noqa: BLE001 - handing back matters more; logged
                logger.exception("can't write what finished: handing it back to run again")
            with self._lock:
                pending, self.in_flight = list(self.in_flight.values()), {}
                self._async.clear()
            self._unstart({delivery.id for delivery in pending})
            for delivery in pending:
                self.app.broker.retry(delivery, delivery.body, None)
            return len(pending)

    def _unstart(self, handed_back: set[str]) -> None:
        """The tasks among `handed_back` that had started show as waiting again (PENDING)
        instead of STARTED: they run again from the start, on whichever worker takes them.
        Written before they go back, so it can't overwrite the next run's STARTED."""
        now = time.time()
        records = [(ResultRecord(id=p.message.id, state=State.PENDING, task=p.message.task,
                                 attempt=p.message.attempt, updated=now),
                    p.task.options.result_ttl or self.app.settings.result_ttl)
                   for p in self.executor.stopper.running()
                   if p.message.id in handed_back and not p.task.options.ignore_result]
        if records:
            try:
                self.app.results.store(records)
            except ConveyorError as exc:  # they still go back; they show STARTED meanwhile
                logger.warning("can't mark %d handed-back task(s) as waiting: %s",
                               len(records), exc)

    def drain(self, grace: float, cancel: threading.Event) -> None:
        """Warm shutdown: let running tasks finish for up to `grace` seconds, unless
        `cancel` is set (a cold shutdown) first."""
        deadline = time.monotonic() + grace
        while self.in_flight and not cancel.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.wait_for_idle(min(FULL_POLL, remaining))


def _key(delivery: Delivery) -> tuple[str, int, str]:
    return delivery.key
