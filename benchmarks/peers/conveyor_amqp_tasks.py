"""Conveyor's side of the RabbitMQ benchmark: the App and the two tasks its worker runs.

    python -m conveyor worker -A conveyor_amqp_tasks -p 1 -t 8   (with this folder on PYTHONPATH)

RabbitMQ as the broker (the vhost of $BENCH_AMQP_URL, queues named `bench.*`), results in
Redis ($BENCH_REDIS_URL): RabbitMQ keeps none. Defaults otherwise: acknowledged after the
task ends, every publish confirmed by RabbitMQ.
"""

from __future__ import annotations

import os
import time

from conveyor import App

AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")

app = App("bench", broker=f"{AMQP_URL}?namespace=bench", results=REDIS_URL)


@app.task(name="bench.noop")
def noop() -> None:
    """The processing benchmark's task: nothing but the library's own work."""


@app.task(name="bench.started_at")
def started_at() -> float:
    """When the task started (the latency benchmark and the warm-up task)."""
    return time.time()
