"""Huey's side of the Redis benchmark: the Huey instance and the two tasks its consumer runs.

    huey_consumer huey_tasks.huey -k thread -w 8     (with this folder on PYTHONPATH)

RedisHuey with blocking reads (its default). `store_none=True` so that a task returning
None stores a result too, as every other library here does. Huey has no acknowledgement:
a task is popped off the list, and lost if the consumer dies while running it.
"""

from __future__ import annotations

import os
import time

import workloads
from huey import RedisHuey

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")

huey = RedisHuey("bench", url=URL, store_none=True)


@huey.task(name="bench.noop")
def noop() -> None:
    """The processing benchmark's task: nothing but the library's own work."""


@huey.task(name="bench.started_at")
def started_at() -> float:
    """When the task started (the latency benchmark and the warm-up task)."""
    return time.time()


# -- the workload benchmark's tasks (redis_workloads.py): the bodies are workloads.py's --


@huey.task(name="bench.roundtrip")
def roundtrip(i: int) -> None:
    workloads.roundtrip(i)


@huey.task(name="bench.sleep")
def sleep(i: int) -> None:
    workloads.sleep(i)


@huey.task(name="bench.cpu")
def cpu(i: int) -> None:
    workloads.cpu(i)


@huey.task(name="bench.mix")
def mix(i: int) -> None:
    workloads.mix(i)
