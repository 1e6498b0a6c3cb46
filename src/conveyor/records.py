"""What is stored about a task: its `State`, `Progress`, and the `ResultRecord` every
result store keeps (with an `ErrorInfo` when it failed).

Plain data, shared by the producer's `AsyncResult`, the worker and every result store.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

import msgspec

from conveyor.errors import TaskError


class State(enum.StrEnum):
    """Where a task is in its life. PENDING means "nothing recorded yet": queued or unknown."""

    PENDING = "PENDING"
    SCHEDULED = "SCHEDULED"
    STARTED = "STARTED"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({State.SUCCESS, State.FAILURE, State.REVOKED})


class _ProgressFields(NamedTuple):
    current: float
    total: float | None = None
    message: str | None = None


class Progress(_ProgressFields):
    """What `task.progress(current, total, message, meta=...)` last reported. A tuple of
    (current, total, message), as before `meta` existed, so code that unpacks or compares
    it goes on working; `meta` (any plain data the task attached) is an attribute."""

    meta: Any

    def __new__(cls, current: float, total: float | None = None, message: str | None = None,
                meta: Any = None) -> Progress:
        progress = super().__new__(cls, current, total, message)
        progress.meta = meta
        return progress

    def __repr__(self) -> str:
        shown = f", meta={self.meta!r}" if self.meta is not None else ""
        return f"Progress({self.current!r}, {self.total!r}, {self.message!r}{shown})"

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, max(0.0, self.current / self.total))


class ErrorInfo(msgspec.Struct, frozen=True):
    """A failure as stored: the remote exception's type name, message and traceback text."""

    type: str
    message: str
    traceback: str | None = None

    def to_exception(self) -> TaskError:
        return TaskError(self.type, self.message, self.traceback)


class ResultRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Everything stored about one task id. Each write replaces the whole record."""

    id: str
    state: State
    task: str = ""
    result: Any = None
    error: ErrorInfo | None = None
    # int | float: a count reported as 3 of 40 reads back as 3 of 40, not 3.0 of 40.0
    progress: tuple[int | float, int | float | None, str | None] | None = None
    progress_meta: Any = None  # the last progress report's `meta`
    attempt: int = 0
    updated: float = 0.0
    retry_at: float | None = None
