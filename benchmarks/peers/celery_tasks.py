"""Celery's side of the Redis benchmark: the app and the two tasks its worker runs.

    celery -A celery_tasks worker -P threads -c 8 --without-gossip --without-mingle
           --without-heartbeat -l WARNING       (with this folder on PYTHONPATH)

Redis as broker and result backend. `task_acks_late`: acknowledged after the task ends
(Celery's default acks before it runs). Results stored (Celery's default). Everything
else is Celery's default, e.g. a prefetch multiplier of 4.
"""

from __future__ import annotations

import os
import time

import workloads
from celery import Celery

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")

app = Celery("bench", broker=URL, backend=URL)
app.conf.update(
    task_acks_late=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


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
