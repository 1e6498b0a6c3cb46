"""Taskiq's side of the async workload (redis_workloads.py): its broker and tasks.

    taskiq worker taskiq_tasks:broker      (with this folder on PYTHONPATH)

taskiq-redis's RedisStreamBroker (a Redis stream read by a consumer group: messages are
acknowledged after the task) with a RedisAsyncResultBackend; Taskiq's defaults
otherwise: 2 worker processes, up to 100 tasks at once in each. `consumer_id="0"`: the
consumer group the worker creates reads the stream from its start, not only messages
added after the worker started (the default, "$", would skip the backlog).
"""

from __future__ import annotations

import asyncio
import os
import time

from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
RESULT_PREFIX = "taskiq-result"

broker = RedisStreamBroker(URL, consumer_id="0").with_result_backend(
    RedisAsyncResultBackend(URL, prefix_str=RESULT_PREFIX))


@broker.task(task_name="bench.async_sleep")
async def async_sleep(i: int) -> None:
    """The async workload's task: awaits 50 ms, as Conveyor's bench.async_sleep does."""
    await asyncio.sleep(0.05)


@broker.task(task_name="bench.started_at")
async def started_at() -> float:
    """When the task started (the warm-up task)."""
    return time.time()
