"""RQ's side of the Redis benchmark: plain functions, enqueued by reference.

    rq worker-pool -u redis://127.0.0.1:6379/15 -n 8 -w rq.worker.SimpleWorker default

RQ keeps every job's result (500 s by default) and moves a job to the finished registry
once it has run. `SimpleWorker` runs jobs in the worker process itself; RQ's default
`Worker` forks a child per job, which costs milliseconds each.
"""

from __future__ import annotations

import time

import workloads


def noop() -> None:
    """The processing benchmark's task: nothing but the library's own work."""


def started_at() -> float:
    """When the task started (the latency benchmark and the warm-up task)."""
    return time.time()


# -- the workload benchmark's tasks (redis_workloads.py): the bodies are workloads.py's --


def roundtrip(i: int) -> None:
    workloads.roundtrip(i)


def sleep(i: int) -> None:
    workloads.sleep(i)


def cpu(i: int) -> None:
    workloads.cpu(i)


def mix(i: int) -> None:
    workloads.mix(i)
