"""arq's side of the async workload (redis_workloads.py): its worker settings and tasks.

    arq arq_tasks.WorkerSettings      (with this folder on PYTHONPATH)

arq's defaults throughout: one process, one event loop, up to 10 jobs at once
(`max_jobs`), results kept an hour, a job stays in the queue's sorted set until done.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from arq.connections import RedisSettings

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


async def async_sleep(ctx: dict[str, Any], i: int) -> None:
    """The async workload's task: awaits 50 ms, as Conveyor's bench.async_sleep does."""
    await asyncio.sleep(0.05)


async def started_at(ctx: dict[str, Any]) -> float:
    """When the task started (the warm-up task)."""
    return time.time()


class WorkerSettings:
    functions = [async_sleep, started_at]
    redis_settings = RedisSettings.from_dsn(URL)
