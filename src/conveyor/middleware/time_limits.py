"""Time limits: `TimeLimitExceeded` raised inside a task that runs too long, or the task
stopped for sure.

`soft_time_limit=50`: after 50 s a sync task gets `TimeLimitExceeded` raised in its
thread at its next Python instruction (a blocking C call, like a long `time.sleep`, is
not interrupted); an async task is cancelled at its next `await` and fails with
`TimeLimitExceeded`. The task may catch it to clean up.

`time_limit=60` (the hard limit) sets the execution's `deadline`: the worker stops a
task past it by replacing the process it runs in (`conveyor.worker.deadlines`).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConfigurationError, TimeLimitExceeded
from conveyor.middleware.base import Execution, Middleware, Outcome

if TYPE_CHECKING:
    import asyncio

logger = logging.getLogger("conveyor.middleware")


@dataclass
class _Watched:
    deadline: float
    thread_id: int | None
    task: asyncio.Task[Any] | None
    loop: asyncio.AbstractEventLoop | None
    fired: bool = False


def current_asyncio_task() -> asyncio.Task[Any] | None:
    """The running asyncio task, if any (without importing asyncio: no loop can run
    in a process that never imported it)."""
    module = sys.modules.get("asyncio")
    if module is None:
        return None
    try:
        task: asyncio.Task[Any] | None = module.current_task()
    except RuntimeError:
        return None
    return task


def raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> bool:
    """Schedule `exc_type` to be raised in another thread at its next bytecode."""
    import ctypes  # only when a soft limit fires

    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type)
    )
    return bool(done == 1)


class TimeLimits(Middleware):
    options = {"time_limit": None, "soft_time_limit": None}
    TICK = 0.05

    def __init__(self) -> None:
        self._watched: dict[int, _Watched] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def validate_options(self, task_name: str, options: dict[str, Any]) -> None:
        for key in ("time_limit", "soft_time_limit"):
            value = options.get(key)
            if value is not None and (not isinstance(value, int | float) or value <= 0):
                raise ConfigurationError(f"task {task_name!r}: {key} must be seconds > 0, "
                                         f"got {value!r}")
        soft, hard = options.get("soft_time_limit"), options.get("time_limit")
        if soft is not None and hard is not None and soft >= hard:
            raise ConfigurationError(
                f"task {task_name!r}: soft_time_limit ({soft}) must be below time_limit "
                f"({hard}), or the soft one never fires"
            )

    def before_execute(self, execution: Execution) -> None:
        hard = execution.option("time_limit")
        if hard is not None:
            execution.deadline = time.monotonic() + hard
        limit = execution.option("soft_time_limit")
        if limit is None:
            return
        task = current_asyncio_task()
        watched = _Watched(
            deadline=time.monotonic() + limit,
            thread_id=None if task else threading.get_ident(),
            task=task,
            loop=task.get_loop() if task else None,
        )
        with self._lock:
            self._watched[id(execution)] = watched
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._watch, name="conveyor-soft-limit",
                                                daemon=True)
                self._thread.start()

    def after_execute(self, execution: Execution, outcome: Outcome) -> None:
        with self._lock:
            watched = self._watched.pop(id(execution), None)
        cancelled = sys.modules["asyncio"].CancelledError if "asyncio" in sys.modules else ()
        if watched is not None and watched.fired and isinstance(outcome.error, cancelled):
            limit = execution.option("soft_time_limit")
            outcome.error = TimeLimitExceeded(f"soft time limit of {limit} s exceeded")

    def _watch(self) -> None:
        while True:
            time.sleep(self.TICK)
            try:
                self._fire(time.monotonic())
            except Exception:  # noqa: BLE001 - a limit that can't fire must not stop the rest
                logger.exception("soft time limits: can't interrupt a task")

    def _fire(self, now: float) -> None:
        with self._lock:
            due = [w for w in self._watched.values() if not w.fired and w.deadline <= now]
            for w in due:
                w.fired = True
        for w in due:
            if w.thread_id is not None:
                raise_in_thread(w.thread_id, TimeLimitExceeded)
            elif w.task is not None and w.loop is not None:
                w.loop.call_soon_threadsafe(w.task.cancel)
