"""``@django.tasks.task`` functions for the backend tests (module level, as django.tasks
requires; workers import them by their module path)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from django.tasks import TaskContext, task

from conveyor import App
from tests.django.testapp.models import Order

# For a backend with OPTIONS = {"APP": "tests.django.dj_tasks:memory_app"}
memory_app = App("dj-memory", broker="memory://")

RAN: list[str] = []  # what ran in this process, in order (run_worker runs in-process)


class Boom(Exception):
    pass


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def record(label: str) -> str:
    RAN.append(label)
    return label


@task(queue_name="emails")
def send_email(to: str) -> str:
    RAN.append(f"email:{to}")
    return f"sent to {to}"


@task
def fail(message: str) -> None:
    raise Boom(message)


@task
def returns_a_set() -> Any:
    return {1, 2}


@task
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@task(takes_context=True)
def describe(context: TaskContext, x: int) -> dict[str, Any]:
    result = context.task_result
    return {"id": result.id, "attempt": context.attempt, "status": result.status,
            "x": x}


@task(takes_context=True)
async def async_describe(context: TaskContext) -> dict[str, Any]:
    return {"id": context.task_result.id, "attempt": context.attempt}


@task(takes_context=True)
def flaky(context: TaskContext) -> int:
    """Fails on its first attempt."""
    if context.attempt == 1:
        raise Boom(f"attempt {context.attempt}")
    return int(context.attempt)


@task
def enqueue_next(label: str) -> str:
    RAN.append(label)
    record.enqueue(f"{label}-next")
    return label


@task
def count_orders() -> int:
    return int(Order.objects.count())


@task
async def async_count_orders() -> int:
    return int(await Order.objects.acount())


@task
def started_at() -> float:
    return time.time()


@task
def wait_for(path: str) -> str:
    """Runs until `path` exists (so a test can watch it RUNNING)."""
    deadline = time.monotonic() + 30
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return "done"


def _hidden() -> int:
    return 1


exposed = task(_hidden)  # workers would import "..._hidden": the function, not this Task
