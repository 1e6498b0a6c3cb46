"""Every exception Conveyor raises, under one root, each with a message that says what to do.

Driver errors (sqlite3, redis, ...) are translated into these where they enter our code,
so callers only ever need to catch `ConveyorError` subclasses.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(key: object, known: Iterable[str]) -> str:
    """"; did you mean 'x'?" naming the closest known key, or "" when none is close:
    the tail of every unknown-option and unknown-setting message."""
    close = difflib.get_close_matches(str(key), sorted(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class ConveyorError(Exception):
    """Root of every error Conveyor raises."""


class ConfigurationError(ConveyorError):
    """The App, a task or a URL is configured in a way that cannot work."""


class NotRegistered(ConveyorError):
    """A task name that no `@app.task` registered in this process."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"no task named {name!r} is registered: check the name, and that the worker "
            "imports the module that defines it (conveyor worker -A pkg.module)"
        )
        self.name = name


class ScheduleNotFound(ConveyorError):
    """`app.schedules` was asked about a schedule name that no one declared or added."""


class SerializationError(ConveyorError):
    """A value that JSON cannot carry: raised by `delay()` before anything is sent."""


class MessageTooLarge(ConveyorError):
    """An encoded message over `max_message_size`: raised before anything is sent."""


class BrokerUnavailable(ConveyorError):
    """The broker or result store cannot be reached (the URL in the message is masked)."""


class TimeLimitExceeded(ConveyorError):
    """A task ran past its `soft_time_limit` or `time_limit`."""


class TaskTerminated(BaseException):  # noqa: N818 - says what happened, as TimeLimitExceeded
    """Raised inside a running task that `revoke(terminate=True)` stops, at its next Python
    instruction (an async task is cancelled instead). A BaseException, as KeyboardInterrupt
    is: an ``except Exception`` meant for the task's own errors doesn't swallow it, while
    ``finally`` blocks and context managers still clean up. The task ends REVOKED.
    """


class TaskError(ConveyorError):
    """A task failed on a worker: carries the remote exception's type, message and traceback.

    Raised by `AsyncResult.get()`. The original exception is not re-created (that would
    need pickle); compare `exc.type` instead, e.g. ``exc.type == "ValueError"``.
    """

    def __init__(self, type: str, message: str, traceback: str | None = None) -> None:
        super().__init__(f"{type}: {message}" if message else type)
        self.type = type
        self.message = message
        self.traceback = traceback


class RetriesExhausted(ConveyorError):
    """A task failed on its last allowed attempt with an error it would have retried:
    what the result store records (type `RetriesExhausted`), carrying the last error, its
    type and text in the message and its traceback."""

    def __init__(self, attempts: int, last: BaseException) -> None:
        try:
            said = str(last)
        except Exception:  # noqa: BLE001 - an exception whose __str__ raises
            said = "<str() failed>"
        noun = "attempt" if attempts == 1 else "attempts"
        super().__init__(f"gave up after {attempts} {noun}: {type(last).__name__}: {said}"
                         if said else f"gave up after {attempts} {noun}: "
                         f"{type(last).__name__}")
        self.attempts = attempts
        self.last = last


class Retry(Exception):  # noqa: N818 - the public name users know from Celery
    """Raise inside a task to run it again later: ``raise Retry(countdown=30)``.

    Not a `ConveyorError`: it is control flow, not a failure. It counts as an attempt, so
    a task that always raises `Retry` ends FAILURE once its `retries` are used up.
    """

    def __init__(
        self, countdown: float | None = None, *, exc: BaseException | None = None
    ) -> None:
        if countdown is not None and countdown < 0:
            raise ValueError(f"Retry countdown must be >= 0 seconds, got {countdown}")
        super().__init__(f"retry in {countdown}s" if countdown is not None else "retry")
        self.countdown = countdown
        self.exc = exc
