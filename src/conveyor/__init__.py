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
    from conveyor.beat.schedules import cron, every
    from conveyor.canvas import Signature, chain, chord, group
    from conveyor.context import TaskContext
    from conveyor.errors import Retry, TaskError
    from conveyor.result import AsyncResult, GroupResult, Progress, Snapshot, State

__all__ = ["App", "AsyncResult", "GroupResult", "Progress", "Retry", "Signature", "Snapshot",
           "State", "TaskContext", "TaskError", "chain", "chord", "cron", "every", "group"]

_HOMES = {
    "App": "conveyor.app",
    "AsyncResult": "conveyor.result",
    "GroupResult": "conveyor.result",
    "Signature": "conveyor.canvas",
    "chain": "conveyor.canvas",
    "chord": "conveyor.canvas",
    "group": "conveyor.canvas",
    "Progress": "conveyor.result",
    "Snapshot": "conveyor.result",
    "Retry": "conveyor.errors",
    "State": "conveyor.result",
    "TaskContext": "conveyor.context",
    "TaskError": "conveyor.errors",
    "cron": "conveyor.beat.schedules",
    "every": "conveyor.beat.schedules",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
