"""The task bodies of the workload benchmark, one module imported by every library's tasks.

    benchmarks/redis_workloads.py --workloads noop,roundtrip,sleep,cpu,mix

Every library's task module (`<library>_tasks.py`) wraps these same functions in its own
task decorator, so the work inside a task is the same code, byte for byte, in every venv;
only the library around it differs. Each task takes the task's index `i` (only `mix` uses
it) and returns None, so every library stores the same small result.

    python benchmarks/peers/workloads.py     # how long CPU_LOOPS takes on this machine
"""

from __future__ import annotations

import os
import threading
import time

import redis

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
COUNTER = "bench:counter"

# Iterations of `spin` that take about 1 ms of CPU on the benchmark machine (AMD EPYC,
# CPython 3.13: 16,000 took 0.98-1.05 ms, the best of 200 calls). Fixed, not measured at
# start-up, so every library's workers run exactly the same loop whatever the load.
CPU_LOOPS = 16_000

# mix: of every 10 consecutive task indices, 7 do a round trip, 2 sleep, 1 spins.
MIX = ("roundtrip",) * 7 + ("sleep",) * 2 + ("cpu",)

_local = threading.local()


def client() -> redis.Redis:
    """This thread's own Redis client, made on first use: a task's connection is its own,
    never the library's. Keyed by pid too, so a client made before a fork is not shared
    with the children (Celery's prefork, Huey's processes)."""
    pid = os.getpid()
    if getattr(_local, "pid", None) != pid:
        _local.pid, _local.client = pid, redis.Redis.from_url(URL)
    return _local.client


def roundtrip(i: int = 0) -> None:
    """One network round trip: INCR on the benchmark DB, over this thread's connection."""
    client().incr(COUNTER)


def sleep(i: int = 0) -> None:
    """1 ms of waiting (I/O-bound): the GIL is free, so the rate is set by concurrency."""
    time.sleep(0.001)


def spin(n: int) -> int:
    """Pure-Python arithmetic holding the GIL: `n` iterations."""
    total = 0
    for k in range(n):
        total += k * k % 7
    return total


def cpu(i: int = 0) -> None:
    """About 1 ms of pure-Python CPU (CPU_LOOPS iterations): threads of one process take
    turns at the GIL, so only processes add throughput."""
    spin(CPU_LOOPS)


BODIES = {"roundtrip": roundtrip, "sleep": sleep, "cpu": cpu}


def mix(i: int) -> None:
    """70 % round trips, 20 % sleeps, 10 % CPU, chosen by the task's index: the same tasks
    in the same order for every library."""
    BODIES[MIX[i % len(MIX)]](i)


def calibrate(calls: int = 200) -> float:
    """The fastest of `calls` runs of `spin(CPU_LOOPS)`, in ms."""
    best = float("inf")
    for _ in range(calls):
        started = time.perf_counter()
        spin(CPU_LOOPS)
        best = min(best, time.perf_counter() - started)
    return best * 1e3


if __name__ == "__main__":
    print(f"spin({CPU_LOOPS:,}): {calibrate():.3f} ms (best of 200); aim for about 1 ms")
