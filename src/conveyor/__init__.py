"""Conveyor: a distributed task queue for Python that loses nothing.

    from conveyor import App
    app = App("shop")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    add.delay(2, 3).get(timeout=10)
"""

from conveyor.app import App
from conveyor.context import TaskContext
from conveyor.errors import Retry, TaskError
from conveyor.result import AsyncResult, Progress, State

__all__ = ["App", "AsyncResult", "Progress", "Retry", "State", "TaskContext", "TaskError"]
