"""`Stopper`: stops the running tasks that `revoke(terminate=True)` asks to stop
(lifecycle/stopping.py has the request side).

A sync task gets `TaskTerminated` raised in its thread at its next Python instruction; an
async task is cancelled at its next `await`. Either ends it REVOKED and its thread or
event loop goes on with the next task. A task that doesn't end within `GRACE` (blocked
in `time.sleep`, in C code, or swallowing the exception) is given that deadline, and the
worker stops it for sure the way it enforces hard time limits: by replacing its process,
after handing the other tasks back (worker/deadlines.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from conveyor.errors import TaskTerminated
from conveyor.message import Message
from conveyor.middleware.base import Execution
from conveyor.middleware.time_limits import raise_in_thread
from conveyor.task import Task
from conveyor.worker.deadlines import Deadlines

if TYPE_CHECKING:
    import asyncio

logger = logging.getLogger("conveyor.worker")

GRACE = 2.0  # seconds a terminated task has to end before its process is replaced


class Held(Protocol):
    """A task a worker holds (the executor's `Prepared`)."""

    @property
    def message(self) -> Message: ...

    @property
    def task(self) -> Task[..., Any]: ...


P = TypeVar("P", bound=Held)


@dataclass
class _Running(Generic[P]):
    prepared: P
    execution: Execution
    thread_id: int | None
    task: asyncio.Task[Any] | None


class Stopper(Generic[P]):
    def __init__(self, deadlines: Deadlines[tuple[P, Execution]]) -> None:
        self.deadlines = deadlines
        self.asked: set[str] = set()  # ids to stop, until their delivery is finished
        self._running: dict[str, _Running[P]] = {}
        # Entering, leaving and stopping exclude each other: a task that just left must
        # not get a deadline (its end is recorded already).
        self._lock = threading.Lock()

    def enter(self, prepared: P, execution: Execution,
              task: asyncio.Task[Any] | None = None) -> None:
        """The task's body starts, in this thread (or in `task`, an asyncio task)."""
        running = _Running(prepared, execution, None if task else threading.get_ident(), task)
        with self._lock:
            self._running[prepared.message.id] = running

    def running(self) -> list[P]:
        """The tasks whose body runs now (not those reserved ahead of a free thread)."""
        with self._lock:
            return [running.prepared for running in self._running.values()]

    def running_by_queue(self) -> dict[str, int]:
        """How many task bodies run now, per queue: what `conveyor status` calls running."""
        with self._lock:
            return dict(Counter(r.prepared.message.queue for r in self._running.values()))

    def leave(self, prepared: P) -> None:
        with self._lock:
            self._running.pop(prepared.message.id, None)

    def stop(self, task_ids: Iterable[str]) -> None:
        """Stop these tasks: running ones now, reserved ones when they would start."""
        with self._lock:
            for task_id in task_ids:
                if task_id in self.asked:
                    continue
                self.asked.add(task_id)
                running = self._running.get(task_id)
                if running is None:
                    continue
                logger.warning("task %s (%s): asked to terminate: stopping it", task_id,
                               running.prepared.task.name)
                self._interrupt(running)
                message = running.prepared.message
                self.deadlines.watch(running.prepared, time.monotonic() + GRACE,
                                     (running.prepared, running.execution), message.id,
                                     message.attempt, "terminate")

    def finished(self, task_id: str) -> None:
        """Its delivery is done with: forget the request."""
        self.asked.discard(task_id)

    @staticmethod
    def _interrupt(running: _Running[P]) -> None:
        if running.thread_id is not None:
            raise_in_thread(running.thread_id, TaskTerminated)
        elif running.task is not None:
            running.task.get_loop().call_soon_threadsafe(running.task.cancel)
