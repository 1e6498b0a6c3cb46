"""One library's run, measured: the enqueue, the processing and the latency, with the
worker running (driver.py's docstring says what each step measures)."""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from adapter import Adapter
from bench_env import URL
from procfs import cpu_seconds
from worker_group import Worker


def wait_for(probe: Callable[[], Any], timeout: float, period: float = 0.005) -> Any:
    """Call `probe` every `period` s until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing after {timeout:.0f} s")
        time.sleep(period)


def redis_cpu(r: redis.Redis) -> float:
    """CPU seconds of the redis-server process so far (it runs on the same machine)."""
    return cpu_seconds(int(r.info("server")["process_id"]))


def time_enqueue(adapter: Adapter, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        adapter.enqueue_one()
    return n / (time.perf_counter() - started)


class Run:
    """One library's run, on a flushed Redis DB: enqueue, then processing and latency with
    the worker running. amqp_driver.py's runs are these, on RabbitMQ: their own enqueue,
    pending count and servers."""

    log_name = "{library}-worker.log"  # in --log-dir

    def __init__(self, adapter: Adapter, args: argparse.Namespace,
                 out: dict[str, Any]) -> None:
        self.adapter, self.args, self.out = adapter, args, out
        self.r = redis.Redis.from_url(URL)

    def enqueue(self) -> Any:
        """Single (unless --single 0), then (on a flushed DB) the warm-up task and the
        bulk of --workload. Returns the warm-up."""
        adapter, args, out = self.adapter, self.args, self.out
        adapter.enqueue_one()  # connect, load scripts: not timed
        self.r.flushdb()
        if args.single:
            out["enqueue_single"] = time_enqueue(adapter, args.single)
            self.r.flushdb()
        warm_up = adapter.send_warm_up()
        started = time.perf_counter()
        bulk = adapter.enqueue_workload(args.workload, args.tasks)
        rate = args.tasks / (time.perf_counter() - started)
        out["enqueue_bulk"] = rate if bulk else None
        if not bulk:
            out["fill_single"] = rate
        return warm_up

    def pending(self, expected: int) -> int:
        """Tasks not finished yet (of `expected` enqueued since the flush)."""
        return self.adapter.pending(self.r, expected)

    def server_cpu(self) -> dict[str, float]:
        """The servers' CPU seconds so far, by the key of their CPU per task in `out`."""
        return {"redis_cpu_us": redis_cpu(self.r)}

    def processing(self, worker: Worker, warm_up: Any) -> None:
        adapter, args, out = self.adapter, self.args, self.out

        def warm_up_started() -> float | None:
            worker.check()
            return adapter.peek(warm_up)

        t0 = wait_for(warm_up_started, timeout=120)  # when the warm-up task started
        out["startup_s"] = t0 - worker.launched
        cpu0, servers0 = worker.cpu(), self.server_cpu()
        expected = args.tasks + 1

        def drained() -> float | None:
            worker.check()
            return time.time() if self.pending(expected) == 0 else None

        t1 = wait_for(drained, timeout=max(120.0, args.tasks / 50))
        out["processing"] = args.tasks / (t1 - t0)
        out["worker_cpu_us"] = (worker.cpu() - cpu0) * 1e6 / args.tasks
        for key, seconds in self.server_cpu().items():
            out[key] = (seconds - servers0[key]) * 1e6 / args.tasks
        out["results_stored"] = adapter.stored(self.r)  # of args.tasks + 1 (the warm-up's)

    def run(self) -> None:
        adapter, args, out = self.adapter, self.args, self.out
        self.r.flushdb()
        warm_up = self.enqueue()
        log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix=f"bench-{adapter.name}-"))
        log = log_dir / self.log_name.format(library=adapter.name)
        out["worker_log"] = str(log)
        commands, out["worker_setup"] = adapter.setting(args.concurrency)
        worker = Worker(commands, log)
        try:
            self.processing(worker, warm_up)
            if args.latency_tasks:
                time.sleep(1.0)  # let it go idle
                measure_latency(adapter, args.latency_tasks, out)
        finally:
            worker.stop(adapter.term_group)
            out["worker_processes"] = worker.processes
            out["rss_peak_mb"] = worker.peak_rss / 2**20
            out["rss_by_process_mb"] = worker.peak_rss_by_process
            out["pss_peak_mb"] = worker.peak_pss / 2**20
            adapter.close()
            self.r.flushdb()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure_latency(adapter: Adapter, n: int, out: dict[str, Any]) -> None:
    sent = []
    for _ in range(n):
        before = time.time()
        sent.append((adapter.send_started_at(), before))
        time.sleep(0.01)
    latency = []
    for handle, before in sent:
        started = wait_for(lambda h=handle: adapter.peek(h), timeout=30, period=0.01)
        latency.append((started - before) * 1000)
    out["latency_p50"] = percentile(latency, 0.5)
    out["latency_p99"] = percentile(latency, 0.99)
