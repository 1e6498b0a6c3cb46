"""Where tasks run inside one worker process: `def` tasks on a thread pool, `async def`
tasks on one event-loop thread. The choice was made once, at registration
(`Task.is_async`); `submit()` hides it from the consumer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from conveyor.worker.executor import Completion, Executor, Prepared

Done = Callable[[Completion], None]


class Pools:
    def __init__(self, executor: Executor, threads: int) -> None:
        self.executor = executor
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="conveyor-task")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None

    def submit(self, prepared: Prepared, done: Done) -> None:
        future: Future[Completion]
        if prepared.task.is_async:
            future = asyncio.run_coroutine_threadsafe(
                self.executor.run_async(prepared), self._event_loop()
            )
        else:
            future = self._threads.submit(self.executor.run_sync, prepared)
        future.add_done_callback(lambda f: _deliver(f, prepared, done))

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="conveyor-asyncio",
                                      daemon=True)
            thread.start()
            self._loop, self._loop_thread = loop, thread
        return self._loop

    def cancel_pending(self) -> None:
        """Cancel tasks that haven't started; running ones go on."""
        self._threads.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        """Stop taking tasks and close the event loop (tasks still running are abandoned:
        the consumer has handed their messages back)."""
        self._threads.shutdown(wait=False, cancel_futures=True)
        loop, thread = self._loop, self._loop_thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            if not thread.is_alive():
                loop.close()
            self._loop = self._loop_thread = None


def _deliver(future: Future[Completion], prepared: Prepared, done: Done) -> None:
    if future.cancelled():  # warm shutdown before it started: hand it back at once
        done(Completion(prepared.delivery, "retry", body=prepared.delivery.body))
        return
    error = future.exception()
    if error is not None:  # the executor itself broke: keep the message, retry soon
        done(Completion(prepared.delivery, "retry", body=prepared.delivery.body,
                        reason=f"executor error: {error!r}"))
        return
    done(future.result())
