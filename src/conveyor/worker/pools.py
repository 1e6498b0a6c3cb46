"""Where tasks run inside one worker process: `def` tasks on a small thread pool, `async
def` tasks on one event-loop thread. The choice was made once, at registration
(`Task.is_async`); `submit()` hides it from the consumer.

The thread pool is a queue and N threads, not `concurrent.futures`: a task is a
function call that reports its own completion, so futures, work items and done
callbacks would only add cost to every task.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from conveyor.lifecycle.completion import Completion
from conveyor.records import ErrorInfo, ResultRecord, State
from conveyor.worker import threads as worker_threads
from conveyor.worker.executor import Executor, Prepared, text

if TYPE_CHECKING:  # imported when the first async task arrives: asyncio costs MBs
    import asyncio
    from concurrent.futures import Future

Done = Callable[[Completion], None]
logger = logging.getLogger("conveyor.worker")


class Pools:
    def __init__(self, executor: Executor, threads: int,
                 on_death: Callable[[str], None]) -> None:
        self.executor = executor
        self.on_death = on_death
        self._work: queue.SimpleQueue[tuple[Prepared, Done] | None] = queue.SimpleQueue()
        self._size = threads
        self._threads: list[threading.Thread] = []
        self._accepting = True
        self._started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None

    def submit(self, prepared: Prepared, done: Done) -> None:
        if prepared.task.is_async:
            import asyncio

            future = asyncio.run_coroutine_threadsafe(
                self.executor.run_async(prepared), self._event_loop()
            )
            ttl = self.executor.default_ttl
            future.add_done_callback(lambda f: _deliver(f, prepared, done, ttl))
            return
        if not self._started:
            self._started = True
            self._threads = [worker_threads.start(f"conveyor-task-{i}", self._run,
                                                       self.on_death)
                             for i in range(self._size)]
        self._work.put((prepared, done))

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            prepared, done = item
            if not self._accepting:  # warm shutdown before it started: hand it back
                done(Completion(prepared.delivery, "retry", body=prepared.delivery.body))
                continue
            try:
                completion = self.executor.run_sync(prepared)
            except Exception as exc:  # noqa: BLE001 - the executor itself broke
                completion = broken(prepared, exc, self.executor.default_ttl)
            done(completion)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            import asyncio

            loop = asyncio.new_event_loop()
            thread = worker_threads.start("conveyor-asyncio", loop.run_forever,
                                          self.on_death)
            self._loop, self._loop_thread = loop, thread
        return self._loop

    def cancel_pending(self) -> None:
        """Hand back, at once, the tasks that haven't started; running ones go on."""
        self._accepting = False
        while True:
            try:
                item = self._work.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                prepared, done = item
                done(Completion(prepared.delivery, "retry", body=prepared.delivery.body))

    def shutdown(self) -> None:
        """Stop the threads once they are free, and close the event loop (tasks still
        running are abandoned: the consumer has handed their messages back)."""
        self._accepting = False
        for _ in range(self._size):
            self._work.put(None)
        loop, thread = self._loop, self._loop_thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            if not thread.is_alive():
                loop.close()
            self._loop = self._loop_thread = None


def _deliver(future: Future[Completion], prepared: Prepared, done: Done, ttl: float) -> None:
    if future.cancelled():
        done(Completion(prepared.delivery, "retry", body=prepared.delivery.body))
        return
    error = future.exception()
    done(future.result() if error is None else broken(prepared, error, ttl))


def broken(prepared: Prepared, error: BaseException, ttl: float) -> Completion:
    """The executor itself failed on a task (it never should): the task fails for good,
    dead-lettered with the error, instead of running again and again."""
    logger.error("the executor failed on task %s", prepared.message.id, exc_info=error)
    message = prepared.message
    reason = f"the worker failed on this task: {type(error).__name__}: {text(str(error))}"
    record = ResultRecord(id=message.id, state=State.FAILURE, task=message.task,
                          attempt=message.attempt, updated=time.time(),
                          error=ErrorInfo("WorkerError", reason))
    return Completion(prepared.delivery, "dead", record, ttl,
                      reason=reason, message=message)
