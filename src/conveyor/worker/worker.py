"""`Worker`: one worker process's whole life: consumer, task pools, and a heartbeat thread
that renews leases, reports liveness, enforces hard time limits and notices the
supervisor's death. Usable in-process too (`run(burst=True)`, as conveyor.testing does).
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from conveyor.broker import WorkerInfo
from conveyor.errors import ConveyorError
from conveyor.lifecycle import stopping
from conveyor.worker import threads as worker_threads
from conveyor.worker.consumer import DEFAULT_ASYNC_CONCURRENCY, IDLE_WAIT, Consumer
from conveyor.worker.deadlines import EXIT_HARD_LIMIT, Board, Entry
from conveyor.worker.outage import store_outage
from conveyor.worker.threads import EXIT_THREAD_DIED

if TYPE_CHECKING:
    from conveyor.app import App

logger = logging.getLogger("conveyor.worker")

HEARTBEAT_TICK = 0.1
REPORT_SOON = 1.0  # a change in what a worker runs or processed shows in status within this
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
WORKER_TTL = 15.0


class Worker:
    def __init__(
        self,
        app: App,
        queues: Sequence[str] = ("default",),
        threads: int = 8,
        *,
        max_tasks: int | None = None,
        grace: float = 30.0,
        supervised: bool = False,
        prefetch: int | None = None,
        max_memory_mb: int | None = None,
        board: Board | None = None,
        async_concurrency: int = DEFAULT_ASYNC_CONCURRENCY,
        nonce: str | None = None,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if prefetch is not None and prefetch < 1:
            raise ValueError(f"prefetch must be >= 1, got {prefetch}")
        if async_concurrency < 1:
            raise ValueError(f"async_concurrency must be >= 1, got {async_concurrency}")
        if max_memory_mb is not None and max_memory_mb < 1:
            raise ValueError(f"max_memory_mb must be >= 1, got {max_memory_mb}")
        self.app = app
        # host:pid:nonce; a supervisor picks the nonce, so it knows the id of the worker
        # it forked and can drop it from the live workers when that process dies.
        self.id = f"{socket.gethostname()}:{os.getpid()}:{nonce or uuid.uuid4().hex[:6]}"
        self.consumer = Consumer(app, queues, threads, prefetch,
                                 on_thread_death=self._thread_died, name=f"worker {self.id}",
                                 board=board, async_concurrency=async_concurrency)
        self.queues = tuple(queues)
        self.threads = threads
        self.max_tasks = max_tasks
        self.max_memory_mb = max_memory_mb
        self.grace = grace
        self.supervised = supervised
        self.parent_pid = os.getppid()
        self.started = time.time()
        self._cold = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._reserving = store_outage(f"worker {self.id}", "reserving")
        self._beating = store_outage(f"worker {self.id}", "heartbeat")

    def stop(self, cold: bool = False) -> None:
        """Ask the worker to stop (safe from a signal handler): warm finishes running tasks
        within the grace period and hands back the rest; cold hands everything back now."""
        if cold:
            self._cold.set()
        self.consumer.stopping.set()

    def run(self, burst: bool = False) -> None:
        """Work until stopped; with `burst`, until nothing is ready or running."""
        self._heartbeat = worker_threads.start("conveyor-heartbeat", self._heartbeat_loop,
                                               self.consumer.thread_died)
        self.consumer.start_writer()
        self.app.middleware.notify("on_worker_process_start", self.app)
        try:
            self._loop(burst)
        finally:
            self._shut_down()
            self.app.middleware.notify("on_worker_stop", self.app)
            if self.supervised:
                logger.info("worker %s stopped: %d task(s) processed", self.id,
                            self.consumer.processed)
        if self.consumer.dead_thread is not None:
            raise RuntimeError(f"worker thread {self.consumer.dead_thread} died (its error "
                               "is in the log above): this worker stopped")

    def _thread_died(self, name: str) -> None:
        """Supervised, exit at once: nothing renews the leases of the tasks this process
        holds any more, so other workers get them within one lease, and the supervisor
        starts a fresh process. In-process (tests), stop cold; `run` then raises."""
        if self.supervised:
            self._deregister()
            logging.shutdown()
            os._exit(EXIT_THREAD_DIED)
        self.stop(cold=True)

    def _loop(self, burst: bool) -> None:
        consumer = self.consumer
        measured = 0  # tasks finished when the memory was last measured
        if self.max_memory_mb is not None and (rss := resident_mb()) > self.max_memory_mb:
            logger.warning("worker %s starts at %.0f MB (RSS), already over its limit of %d "
                           "MB: it will be replaced after each batch of tasks", self.id, rss,
                           self.max_memory_mb)
        while not consumer.stopping.is_set():
            try:
                consumer.step(IDLE_WAIT if not burst else 0.0)
            except ConveyorError as exc:  # store unreachable: keep trying, don't die
                self._reserving.lost(exc)
                time.sleep(1.0)
                continue
            self._reserving.back()
            if burst and consumer.drained:
                return
            if self.max_tasks is not None and consumer.processed >= self.max_tasks:
                logger.info("worker %s processed %d tasks: recycling", self.id, consumer.processed)
                self.stop()
            elif self.max_memory_mb is not None and consumer.processed != measured:
                measured = consumer.processed  # after tasks finished, not on every idle step
                rss = resident_mb()
                if rss > self.max_memory_mb:
                    logger.info("worker %s uses %.0f MB (RSS), over its limit of %d MB: "
                                "recycling", self.id, rss, self.max_memory_mb)
                    self.stop()

    def _shut_down(self) -> None:
        handed_back = self.consumer.shut_down(self.grace, cancel=self._cold)
        if handed_back:
            logger.warning("worker %s handed %d unfinished task(s) back", self.id, handed_back)
        self._cold.set()  # stops the heartbeat thread
        if self._heartbeat is not None and self._heartbeat is not threading.current_thread():
            self._heartbeat.join(timeout=5)
        self._deregister()

    def _deregister(self) -> None:
        """Leave the list of live workers now (best effort: the entry expires anyway)."""
        try:
            self.app.broker.forget_worker(self.id)
        except Exception:  # noqa: BLE001 - on the way out, whatever the store says
            logger.debug("can't deregister worker %s", self.id, exc_info=True)

    # -- heartbeat thread -----------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        renew_every = self.app.broker.lease_seconds / 3
        next_renew = next_poll = 0.0
        last_report = -WORKER_TTL
        reported: tuple[int, int, int] | None = None
        while not self._cold.wait(HEARTBEAT_TICK):
            now = time.monotonic()
            try:
                self._enforce_deadlines()
                if now >= next_poll and self.consumer.in_flight:
                    next_poll = now + stopping.POLL
                    self.consumer.terminate_requested()
                if now >= next_renew:
                    self.consumer.renew_leases()
                    next_renew = now + renew_every
                # Every WORKER_TTL / 3 to stay listed, and within REPORT_SOON of a change
                # (a task started or ended) so `conveyor status` is current: one small
                # write a second at most, and none while nothing changes.
                counts = self._counts()
                if now >= last_report + WORKER_TTL / 3 or (
                        counts != reported and now >= last_report + REPORT_SOON):
                    self.app.broker.heartbeat(self._info(), WORKER_TTL)
                    reported, last_report = counts, now
                self._beating.back()
            except ConveyorError as exc:
                self._beating.lost(exc)
            if self.supervised and os.getppid() != self.parent_pid:
                logger.error("the supervisor died: handing tasks back and exiting")
                self.stop(cold=True)

    def _counts(self) -> tuple[int, int, int]:
        """What the heartbeat reports that changes as tasks come and go (no I/O)."""
        consumer = self.consumer
        return (consumer.processed, len(consumer.in_flight),
                len(consumer.executor.stopper.running()))

    def _info(self) -> WorkerInfo:
        held = self.consumer.running_by_queue()
        started = self.consumer.executor.stopper.running_by_queue()
        running = sum(started.values())
        return WorkerInfo(
            id=self.id, hostname=socket.gethostname(), pid=os.getpid(), queues=self.queues,
            concurrency=self.threads, started=self.started, seen=time.time(),
            processed=self.consumer.processed, running=running,
            reserved=max(0, sum(held.values()) - running), running_by_queue=held,
            started_by_queue=started,
        )

    def _enforce_deadlines(self) -> None:
        overdue = self.consumer.end_overdue()
        for prepared in overdue:
            if prepared.message.id in self.consumer.executor.stopper.asked:
                logger.error("task %s (%s) didn't stop when asked to terminate",
                             prepared.message.id, prepared.task.name)
            else:
                logger.error("task %s (%s) ran past its hard time limit", prepared.message.id,
                             prepared.task.name)
        if not overdue:
            return
        if not self.supervised:
            logger.error("not supervised: the overdue task's thread can't be stopped; its "
                         "result is recorded and it is otherwise ignored")
            return
        self.consumer.abandon()
        self._deregister()
        logging.shutdown()
        os._exit(EXIT_HARD_LIMIT)


def take_over(app: App, stuck: Sequence[Entry]) -> None:
    """In the process replacing a stuck one, before the supervisor kills it: mark the
    attempts that ran past their hard time limit, so their redelivered messages end
    with TimeLimitExceeded instead of running again (a terminated task's mark is there
    already). Raises ConveyorError when the store can't be reached."""
    for entry in stuck:
        if entry.kind == "limit":
            stopping.mark_overdue(app.coordination, entry.task_id, entry.attempt)


def resident_mb() -> float:
    """This process's resident memory (RSS) now, in MB (2**20 bytes): from
    /proc/self/statm on Linux; elsewhere the peak so far, all `resource` tells."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
        return pages * PAGE_SIZE / 2**20
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB; bytes on macOS
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
