"""Conveyor's side of the Redis benchmark: the App and the two tasks its worker runs.

    python -m conveyor worker -A conveyor_tasks -p 1 -t 8   (with this folder on PYTHONPATH)

Defaults throughout: results stored, acknowledged after the task ends (acks_late).
"""

from __future__ import annotations

import os
import time

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
