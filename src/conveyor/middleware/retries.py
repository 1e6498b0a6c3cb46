"""The retry policy: which failures run again, and when.

- `retries=N`: up to N more attempts after the first, on any exception, or only on
  `retry_on` types when given (`retry_on` alone means retries=3, Celery's default).
- `raise Retry(countdown=...)` / `task.retry()`: retries even with retries=0, up to
  max(retries, 3) retries, so a task that always asks to retry still ends.
- Delay: `countdown` if the task gave one, else `backoff` seconds doubling each attempt,
  capped at `backoff_max`; with `jitter` a random 50-100 % of that, so a burst of
  failures doesn't retry in lock-step (never 0, unlike full jitter, so a retry is never
  immediate).
"""

from __future__ import annotations

import random
import time
from typing import Any

from conveyor.errors import ConfigurationError, Retry
from conveyor.middleware.base import Execution, Middleware, Outcome
from conveyor.options import TaskOptions

DEFAULT_RETRY_ON_RETRIES = 3
DEFAULT_EXPLICIT_RETRIES = 3


def max_retries(options: TaskOptions) -> int:
    """How many retries a task's options allow for ordinary exceptions."""
    if options["retries"]:
        return int(options["retries"])
    return DEFAULT_RETRY_ON_RETRIES if options["retry_on"] else 0


def backoff_delay(attempt: int, backoff: float, backoff_max: float, jitter: bool,
                  rng: random.Random | None = None) -> float:
    """Seconds before retrying after failed attempt number `attempt` (1-based)."""
    delay: float = min(backoff * 2.0 ** (attempt - 1), backoff_max)
    if jitter:
        delay *= (rng or random).uniform(0.5, 1.0)
    return delay


class Retries(Middleware):
    options = {"retries": 0, "retry_on": (), "backoff": 1.0, "backoff_max": 600.0,
               "jitter": True}

    def validate_options(self, task_name: str, options: dict[str, Any]) -> None:
        retries = options.get("retries", 0)
        if not isinstance(retries, int) or retries < 0:
            raise ConfigurationError(f"task {task_name!r}: retries must be an int >= 0, "
                                     f"got {retries!r}")
        retry_on = options.get("retry_on", ())
        types = retry_on if isinstance(retry_on, tuple) else (retry_on,)
        if "retry_on" in options:
            options["retry_on"] = types
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
            raise ConfigurationError(f"task {task_name!r}: retry_on must be an exception "
                                     f"class or a tuple of them, got {retry_on!r}")
        for key in ("backoff", "backoff_max"):
            value = options.get(key, 1.0)
            if not isinstance(value, int | float) or value < 0:
                raise ConfigurationError(f"task {task_name!r}: {key} must be seconds >= 0, "
                                         f"got {value!r}")

    def __init__(self) -> None:
        self._attempts: dict[str, int] = {}  # task name -> max attempts (options are frozen)

    def before_execute(self, execution: Execution) -> None:
        task = execution.task
        attempts = self._attempts.get(task.name)
        if attempts is None:
            attempts = self._attempts[task.name] = 1 + max_retries(task.options)
        execution.context.max_attempts = attempts

    def after_execute(self, execution: Execution, outcome: Outcome) -> None:
        error = outcome.error
        if error is None:
            return
        options = execution.task.options
        attempt = execution.message.attempt
        if isinstance(error, Retry):
            allowed = max(options["retries"], DEFAULT_EXPLICIT_RETRIES)
            countdown = error.countdown
        else:
            allowed = max_retries(options)
            retry_on = options["retry_on"]
            if retry_on and not isinstance(error, retry_on):
                return
            countdown = None
        if attempt > allowed:
            return
        if countdown is None:
            countdown = backoff_delay(attempt, options["backoff"], options["backoff_max"],
                                      options["jitter"])
        outcome.retry_at = time.time() + countdown
