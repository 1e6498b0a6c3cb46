"""The retry policy: which failures run again, and when.

- `retries=N`: up to N more attempts after the first, on any exception, or only on
  `retry_on` types when given (`retry_on` alone means retries=3, Celery's default).
  `retries=None`: retry for ever.
- `raise Retry(countdown=...)` / `task.retry()`: retries up to `retries` times; a task
  with retries=0 that asks to retry gets 3, so a task that always asks still ends.
- Delay: `countdown` if the task gave one; else `retry_delay` seconds if set (a fixed
  delay); else `backoff` seconds doubling each attempt, capped at `backoff_max`, with
  `jitter` a random 50-100 % of that, so a burst of failures doesn't retry in lock-step
  (never 0, unlike full jitter, so a retry is never immediate).
- A failure it would have retried on the last allowed attempt ends the task with
  `RetriesExhausted`, which carries the last error; one it never retries (not in
  `retry_on`, or any error with retries=0) ends it with that error itself.
"""

from __future__ import annotations

import random
import time
from typing import Any, Protocol

from conveyor.errors import ConfigurationError, RetriesExhausted, Retry
from conveyor.middleware.base import Execution, Middleware, Outcome

DEFAULT_RETRY_ON_RETRIES = 3
DEFAULT_EXPLICIT_RETRIES = 3
RETRY_OPTIONS = frozenset({"retries", "retry_on", "retry_delay", "backoff", "backoff_max",
                           "jitter"})


class Options(Protocol):
    """Task options by name: a task's (`TaskOptions`) or one call's (`CallOptions`)."""

    def __getitem__(self, name: str) -> Any: ...


class CallOptions:
    """The options one execution sees: the call's overrides, else the task's."""

    def __init__(self, execution: Execution) -> None:
        self.execution = execution

    def __getitem__(self, name: str) -> Any:
        return self.execution.option(name)


def max_retries(options: Options) -> int | None:
    """How many retries a task's options allow for ordinary exceptions (None: no end)."""
    retries = options["retries"]
    if retries is None or retries:
        return retries
    return DEFAULT_RETRY_ON_RETRIES if options["retry_on"] else 0


def explicit_retries(options: Options) -> int | None:
    """How many times `raise Retry()` may run a task again (None: no end)."""
    allowed = max_retries(options)
    return DEFAULT_EXPLICIT_RETRIES if allowed == 0 else allowed


def attempts(options: Options) -> int | None:
    """The last attempt a retry may reach (None: no end)."""
    allowed = explicit_retries(options)
    return None if allowed is None else 1 + allowed


def backoff_delay(attempt: int, backoff: float, backoff_max: float, jitter: bool,
                  rng: random.Random | None = None) -> float:
    """Seconds before retrying after failed attempt number `attempt` (1-based)."""
    delay: float = min(backoff * 2.0 ** min(attempt - 1, 64), backoff_max)
    if jitter:
        delay *= (rng or random).uniform(0.5, 1.0)
    return delay


def _seconds(task_name: str, key: str, value: object, none_ok: bool = False) -> None:
    if value is None and none_ok:
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < 1e9:
        raise ConfigurationError(f"task {task_name!r}: {key} must be seconds >= 0"
                                 f"{' (or None)' if none_ok else ''}, got {value!r}")


class Retries(Middleware):
    options = {"retries": 0, "retry_on": (), "backoff": 1.0, "backoff_max": 600.0,
               "jitter": True, "retry_delay": None}

    def validate_options(self, task_name: str, options: dict[str, Any]) -> None:
        retries = options.get("retries", 0)
        if retries is not None and (not isinstance(retries, int) or isinstance(retries, bool)
                                    or retries < 0):
            raise ConfigurationError(f"task {task_name!r}: retries must be an int >= 0, or "
                                     f"None to retry for ever, got {retries!r}")
        retry_on = options.get("retry_on", ())
        types = retry_on if isinstance(retry_on, tuple) else (retry_on,)
        if "retry_on" in options:
            options["retry_on"] = types
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
            raise ConfigurationError(f"task {task_name!r}: retry_on must be an exception "
                                     f"class or a tuple of them, got {retry_on!r}")
        for key in ("backoff", "backoff_max"):
            _seconds(task_name, key, options.get(key, 1.0))
        _seconds(task_name, "retry_delay", options.get("retry_delay"), none_ok=True)

    def __init__(self) -> None:
        # task name -> its max attempts, None for no end (a task's options are frozen)
        self._attempts: dict[str, int | None] = {}

    def before_execute(self, execution: Execution) -> None:
        task = execution.task
        if RETRY_OPTIONS.isdisjoint(execution.message.options):
            if task.name not in self._attempts:
                self._attempts[task.name] = attempts(task.options)
            execution.context.max_attempts = self._attempts[task.name]
        else:  # this call has retry options of its own
            execution.context.max_attempts = attempts(CallOptions(execution))

    def after_execute(self, execution: Execution, outcome: Outcome) -> None:
        error = outcome.error
        if error is None:
            return
        options = CallOptions(execution)
        attempt = execution.message.attempt
        if isinstance(error, Retry):
            allowed = explicit_retries(options)
            countdown = error.countdown
        else:
            allowed = max_retries(options)
            retry_on = options["retry_on"]
            if allowed == 0 or (retry_on and not isinstance(error, retry_on)):
                return  # not a failure this task retries: it ends with it
            countdown = None
        if allowed is not None and attempt > allowed:
            last = error.exc or error if isinstance(error, Retry) else error
            exhausted = RetriesExhausted(attempt, last)
            exhausted.__cause__ = last
            outcome.error = exhausted
            return
        if countdown is None:
            fixed = options["retry_delay"]
            countdown = fixed if fixed is not None else backoff_delay(
                attempt, options["backoff"], options["backoff_max"], options["jitter"])
        outcome.retry_at = time.time() + countdown
