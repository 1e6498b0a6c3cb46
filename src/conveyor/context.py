"""What a running task can see of itself (`bind=True`): id, attempt, progress(), retry().

The one contextvar in the package: it tells `task.progress()` called from helper code
which task is running on this thread or asyncio task.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable
from typing import Any, NoReturn

from conveyor.errors import Retry
from conveyor.plain import problem
from conveyor.records import Progress

ProgressSink = Callable[[Progress], None]


class TaskContext:
    """Handed to `bind=True` tasks as their first argument."""

    __slots__ = ("id", "name", "attempt", "max_attempts", "queue", "headers", "last_progress",
                 "_sink")

    def __init__(
        self,
        id: str,
        name: str,
        attempt: int = 1,
        max_attempts: int | None = 1,
        queue: str = "default",
        headers: dict[str, str] | None = None,
        sink: ProgressSink | None = None,
    ) -> None:
        self.id = id
        self.name = name
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.queue = queue
        self.headers = headers or {}
        self.last_progress: Progress | None = None
        self._sink = sink

    def __repr__(self) -> str:
        return f"<TaskContext {self.name} id={self.id} attempt={self.attempt}>"

    @property
    def is_last_attempt(self) -> bool:
        """Whether a retry now would be refused (never, with `retries=None`). For a task
        with retries=0 it answers for `task.retry()`, which may run it 3 more times: an
        exception fails such a task at once whatever this says."""
        return self.max_attempts is not None and self.attempt >= self.max_attempts

    def progress(self, current: float, total: float | None = None,
                 message: str | None = None, meta: Any = None) -> None:
        """Report progress: visible in `AsyncResult.progress`, `conveyor result` and the
        dashboard. `meta`: any plain data besides (`{"file": "a.csv"}`), as
        `progress.meta`. Cheap to call often: the worker writes only the latest value, in
        batches."""
        check_progress(current, total, message)
        if meta is not None and (found := problem(meta)) is not None:
            raise ValueError(f"progress meta can't be stored: {found}")
        self.last_progress = Progress(current, total, message, meta)
        if self._sink is not None:
            self._sink(self.last_progress)

    def retry(self, countdown: float | None = None, exc: BaseException | None = None) -> NoReturn:
        """Stop this attempt and run again after `countdown` seconds (default: the backoff)."""
        raise Retry(countdown, exc=exc)


current_task: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "conveyor_current_task", default=None
)


def check_progress(current: object, total: object, message: object) -> None:
    """Raise, in the task, for progress no store could keep: a worker writes progress
    later, in batches, where a bad value could no longer be told to the task."""
    for name, value in (("current", current), ("total", total)):
        if value is None and name == "total":
            continue
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise TypeError(f"progress {name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"progress {name} must be a finite number, got {value!r}")
    if total is not None and total < 0:  # type: ignore[operator]
        raise ValueError(f"progress total must be >= 0, got {total}")
    if message is not None:
        if not isinstance(message, str):
            raise TypeError(f"progress message must be a str, got {message!r}: "
                            "pass str(value)")
        found = problem(message)
        if found is not None:
            raise ValueError(f"progress message can't be stored: {found}")
