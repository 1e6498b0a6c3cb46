"""Conveyor's side of the Redis benchmark: the App and the two tasks its worker runs.

    python -m conveyor worker -A conveyor_tasks -p 1 -t 8   (with this folder on PYTHONPATH)

Defaults throughout: results stored, acknowledged after the task ends (acks_late).
"""

from __future__ import annotations

import asyncio
import os
import time

import workloads

from conveyor import App

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")

app = App("bench", broker=URL)


@app.task(name="bench.noop")
def noop() -> None:
    """The processing benchmark's task: nothing but the library's own work."""


@app.task(name="bench.started_at")
def started_at() -> float:
    """When the task started (the latency benchmark and the warm-up task)."""
    return time.time()


# -- the workload benchmark's tasks (redis_workloads.py): the bodies are workloads.py's --


@app.task(name="bench.roundtrip")
def roundtrip(i: int) -> None:
    workloads.roundtrip(i)


@app.task(name="bench.sleep")
def sleep(i: int) -> None:
    workloads.sleep(i)


@app.task(name="bench.cpu")
def cpu(i: int) -> None:
    workloads.cpu(i)


@app.task(name="bench.mix")
def mix(i: int) -> None:
    workloads.mix(i)


@app.task(name="bench.async_sleep")
async def async_sleep(i: int) -> None:
    """An async task awaiting the network, as it were: 50 ms of asyncio.sleep."""
    await asyncio.sleep(0.05)
