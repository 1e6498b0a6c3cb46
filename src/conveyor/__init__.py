"""Conveyor: a distributed task queue for Python that loses nothing.

    from conveyor import App
    app = App("shop")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    add.delay(2, 3).get(timeout=10)

The names below are imported on first use, so a process that only needs part of
Conveyor (the worker's supervisor) doesn't load the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.app import App
    from conveyor.canvas import Signature, chain, chord, group
    from conveyor.context import TaskContext
    from conveyor.errors import (
        BrokerUnavailable,
        ConfigurationError,
        ConveyorError,
        MessageTooLarge,
        NotRegistered,
        Retry,
        SerializationError,
        TaskError,
        TaskTerminated,
        TimeLimitExceeded,
    )
    from conveyor.middleware import Defer, Execution, Middleware, Outcome
    from conveyor.records import Progress, State
    from conveyor.result import AsyncResult, GroupResult, Snapshot
    from conveyor.schedules import cron, every
    from conveyor.task import Task

_HOMES = {
    "App": "conveyor.app",
    "AsyncResult": "conveyor.result",
    "GroupResult": "conveyor.result",
    "Snapshot": "conveyor.result",
    "Progress": "conveyor.records",
    "State": "conveyor.records",
    "Signature": "conveyor.canvas",
    "chain": "conveyor.canvas",
    "chord": "conveyor.canvas",
    "group": "conveyor.canvas",
    "TaskContext": "conveyor.context",
    "Task": "conveyor.task",
    "Middleware": "conveyor.middleware",
    "Defer": "conveyor.middleware",
    "Execution": "conveyor.middleware",
    "Outcome": "conveyor.middleware",
    "cron": "conveyor.schedules",
    "every": "conveyor.schedules",
    **dict.fromkeys(
        ["BrokerUnavailable", "ConfigurationError", "ConveyorError", "MessageTooLarge",
         "NotRegistered", "RetriesExhausted", "Retry", "SerializationError", "TaskError",
         "TaskTerminated", "TimeLimitExceeded"],
        "conveyor.errors"),
}

__all__ = [
    "App", "AsyncResult", "BrokerUnavailable", "ConfigurationError", "ConveyorError",
    "Defer", "Execution", "GroupResult", "MessageTooLarge", "Middleware", "NotRegistered",
    "Outcome", "Progress", "RetriesExhausted", "Retry", "SerializationError", "Signature",
    "Snapshot", "State", "Task", "TaskContext", "TaskError", "TaskTerminated",
    "TimeLimitExceeded", "chain", "chord", "cron", "every", "group",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
