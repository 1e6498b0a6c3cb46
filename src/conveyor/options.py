"""`TaskOptions`: how a task is declared, and the checks of the values every task has.

A task's own options (queue, priority, results...) are fields; the options a middleware
owns (retries, time limits, a user's own) are kept in `middleware`, with the defaults
their middleware declared. Both read the same way: ``task.options["retries"]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from conveyor.errors import ConfigurationError
from conveyor.message import now


@dataclass(frozen=True)
class TaskOptions:
    """The options of one task; see docs/tasks.md for what each one does."""

    name: str
    queue: str = "default"
    priority: int = 0
    ignore_result: bool = False
    result_ttl: float | None = None
    acks_late: bool = True
    bind: bool = False
    unique_for: float | None = None
    middleware: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, option: str) -> Any:
        """Any option by name, the task's own or one a middleware owns."""
        if option in self.middleware:
            return self.middleware[option]
        if option in CORE_OPTIONS:
            return getattr(self, option)
        raise KeyError(f"task {self.name!r} has no option {option!r}")


CORE_OPTIONS = frozenset(f.name for f in fields(TaskOptions)) - {"middleware"}


def build_options(name: str, options: Mapping[str, Any], owned: Mapping[str, Any]
                  ) -> TaskOptions:
    """The `TaskOptions` of checked `options`: the core ones as fields, those a middleware
    owns (`owned`: each with its default) in `middleware`."""
    return TaskOptions(
        name=name, **{k: v for k, v in options.items() if k in CORE_OPTIONS},
        middleware={**owned, **{k: v for k, v in options.items() if k in owned}})


def check_priority(priority: object) -> int:
    if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 9:
        raise ValueError(f"priority must be an int from 0 to 9 (9 runs first), got {priority!r}")
    return priority


def check_queue(queue: object) -> str:
    """A queue name a worker can consume: `-Q a,b` splits on commas and strips spaces,
    so a name with a comma, surrounding spaces or a control character could never be."""
    if not isinstance(queue, str) or not queue or len(queue) > 200:
        raise ValueError(f"queue must be a non-empty name of up to 200 characters, got {queue!r}")
    if "," in queue or queue != queue.strip() or not queue.isprintable():
        raise ValueError(f"queue {queue!r} can't be consumed (conveyor worker -Q takes a "
                         "comma-separated list): use a name without commas, surrounding "
                         "spaces or control characters")
    return queue


def check_task_id(task_id: object) -> str | None:
    """A task id given to `apply_async(task_id=...)`: a non-empty string, or None."""
    if task_id is None:
        return None
    if not isinstance(task_id, str) or not task_id or len(task_id) > 255:
        raise ValueError(f"task_id must be a non-empty string of up to 255 characters, "
                         f"got {task_id!r}")
    if not task_id.isprintable():
        raise ValueError(f"task_id {task_id!r} holds a control character: ids are shown "
                         "in logs and on the command line")
    return task_id


def check_core_options(name: str, options: Mapping[str, Any]) -> None:
    """Raise ConfigurationError for a bad value of an option every task has."""
    try:
        if "queue" in options:
            check_queue(options["queue"])
        if "priority" in options:
            check_priority(options["priority"])
    except ValueError as exc:
        raise ConfigurationError(f"task {name!r}: {exc}") from None
    unique_for = options.get("unique_for")
    if unique_for is not None and (not isinstance(unique_for, int | float)
                                   or isinstance(unique_for, bool) or unique_for <= 0):
        raise ConfigurationError(f"task {name!r}: unique_for must be seconds > 0, "
                                 f"got {unique_for!r}")


def to_timestamp(when: datetime | float | None, what: str, relative: bool) -> float | None:
    """Seconds since the epoch from a datetime (naive means UTC, as in Celery) or, if
    `relative`, from a number of seconds from now."""
    if when is None:
        return None
    if isinstance(when, datetime):
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    if relative and isinstance(when, int | float) and not isinstance(when, bool):
        if math.isnan(when) or math.isinf(when):
            raise ValueError(f"{what} must be a finite number of seconds, got {when}")
        if when < 0:
            raise ValueError(f"{what} must be >= 0 seconds, got {when}")
        return now() + float(when)
    kind = "a datetime or seconds from now" if relative else "a datetime"
    raise TypeError(f"{what} must be {kind}, got {when!r}")
