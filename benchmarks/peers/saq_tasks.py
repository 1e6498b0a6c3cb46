"""SAQ's side of the async workload (redis_workloads.py): its queue, settings and tasks.

    saq saq_tasks.settings      (with this folder on PYTHONPATH)

SAQ's defaults throughout: one worker process, one event loop, 10 jobs at once
(`concurrency`); a job stays in the queue's `incomplete` set until it is done.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from saq import Queue

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")

queue = Queue.from_url(URL)


async def async_sleep(ctx: dict[str, Any], *, i: int) -> None:
    """The async workload's task: awaits 50 ms, as Conveyor's bench.async_sleep does."""
    await asyncio.sleep(0.05)


async def started_at(ctx: dict[str, Any]) -> float:
    """When the task started (the warm-up task)."""
    return time.time()


settings = {"queue": queue, "functions": [async_sleep, started_at]}
