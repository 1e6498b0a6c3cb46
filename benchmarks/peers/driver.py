"""One library's run of the Redis benchmark, in that library's own environment.

    <venv>/bin/python benchmarks/peers/driver.py LIBRARY --out result.json [--help]

`benchmarks/redis_peers.py` runs this once per library per round: Conveyor with the
project's .venv, the peers with benchmarks/.venv-peers. Each run, on a flushed Redis DB:
1. enqueue: `--single` calls one task at a time, no worker running; then the DB is
   flushed, a warm-up task is enqueued, then `--tasks` no-op tasks with the library's bulk
   API (or one at a time where it has none);
2. processing: the library's worker is started (its own CLI, in its own process group);
   the clock starts when the warm-up task starts (start-up excluded) and stops when the
   queue's pending count, polled every 5 ms, reaches 0;
3. latency: the now idle worker gets `--latency-tasks` tasks, one every 10 ms, each
   returning `time.time()` when it starts; latency = that minus the time just before the
   enqueue call;
4. the worker's process group is stopped (SIGTERM, then SIGKILL), always.
The worker tree's RSS is sampled every 50 ms from /proc while it runs. The numbers go
to `--out` as JSON; a library that can't be loaded writes {"skipped": reason}.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
URL = os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
BIN = Path(sys.executable).parent


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


# -- the concurrency: equal for all (processes x threads), or each library's best --------


@dataclass(frozen=True)
class Concurrency:
    """One row of the workload matrix (redis_workloads.py): `processes` x `threads` task
    slots, the same for every library, or (`best`) each library's own best setting."""

    name: str  # "1x8", "2x8", "best"
    processes: int = 1
    threads: int = 8

    @property
    def best(self) -> bool:
        return self.name == "best"

    @classmethod
    def parse(cls, name: str) -> Concurrency:
        """"PxT" (e.g. "2x8") or "best"; ValueError otherwise."""
        if name == "best":
            return cls(name)
        processes, _, threads = name.partition("x")
        if not (processes.isdigit() and threads.isdigit() and int(processes) and int(threads)):
            raise ValueError(f"not PxT (e.g. 2x8) nor best: {name!r}")
        return cls(name, int(processes), int(threads))


Setting = tuple[list[list[str]], str]  # the worker commands (all started), what they are


# -- the libraries ---------------------------------------------------------------------
# Each adapter does what a user of that library would: its own enqueue calls, its own
# result API, its own worker CLI. `pending` reads the library's own Redis keys.


class Adapter:
    name = ""
    dist = ""  # the distribution whose version is reported
    bulk_api = "n/a"
    worker_setup = ""
    semantics = ""  # when it acknowledges, where results go
    clients: tuple[str, ...] = ("redis", "hiredis")  # the client distributions reported
    term_group = True  # the SIGTERM that stops the worker goes to its whole process group
    tasks: Any = None

    def load(self) -> None:
        self.tasks = importlib.import_module(f"{self.name}_tasks")

    def worker_command(self, threads: int) -> list[str]:
        raise NotImplementedError

    def setting(self, concurrency: Concurrency) -> Setting:
        """How this library's worker runs at `concurrency`. Here only 1 x threads, with
        `worker_command`; the Redis adapters know the rest."""
        if concurrency.best or concurrency.processes != 1:
            raise NotImplementedError(f"{self.name} has no setting for {concurrency.name}")
        threads = concurrency.threads
        return [self.worker_command(threads)], self.worker_setup.format(threads=threads)

    def enqueue_one(self) -> Any:
        raise NotImplementedError

    def enqueue_bulk(self, n: int) -> bool:
        """Enqueue `n` no-op tasks with the bulk API; False when the library has none."""
        return False

    def enqueue_workload(self, workload: str, n: int) -> bool:
        """Enqueue `n` tasks of `workload` (each given its index), with the bulk API where
        there is one (False where there is none: then one call each). "noop" is the no-op
        without arguments, as in the processing benchmark."""
        if workload == "noop":
            if self.enqueue_bulk(n):
                return True
            for _ in range(n):
                self.enqueue_one()
            return False
        task = getattr(self.tasks, workload, None)
        if task is None:
            raise RuntimeError(f"{self.name} has no {workload} task")
        return self.enqueue_many(task, n)

    def enqueue_many(self, task: Any, n: int) -> bool:
        """`task(i)` for i in range(n): the bulk API, or False after one call each."""
        for i in range(n):
            task(i)
        return False

    def send_started_at(self) -> Any:
        return self.tasks.started_at.delay()

    def send_warm_up(self) -> Any:
        """The first task the worker runs: enqueued before the backlog (FIFO)."""
        return self.send_started_at()

    def peek(self, handle: Any) -> float | None:
        """The started_at task's value if it has finished, else None (no blocking)."""
        raise NotImplementedError

    def pending(self, r: redis.Redis, expected: int) -> int:
        """Tasks not finished yet (of `expected` enqueued since the flush)."""
        raise NotImplementedError

    def is_result(self, key: bytes) -> bool:
        """Whether `key` is a stored task result."""
        raise NotImplementedError

    def stored(self, r: redis.Redis) -> int:
        """How many results are stored (counted once, after processing, untimed)."""
        return sum(1 for key in r.scan_iter(count=1000) if self.is_result(key))

    def close(self) -> None:
        pass


class ConveyorAdapter(Adapter):
    name = dist = "conveyor"
    bulk_api = "noop.map(...)"
    semantics = "acks after the task (default); results in Redis (default)"
    worker_setup = ("python -m conveyor worker -p 1 -t {threads}: a supervisor and 1 worker "
                    "process, {threads} threads")

    def load(self) -> None:
        super().load()
        self.tasks.app.broker.stats()  # fails here, with the reason, if Redis isn't supported

    def worker_command(self, threads: int, processes: int = 1) -> list[str]:
        return [sys.executable, "-m", "conveyor", "worker", "-A", "conveyor_tasks",
                "-p", str(processes), "-t", str(threads)]

    def setting(self, concurrency: Concurrency) -> Setting:
        """`-p` processes of `-t` threads; at its best, -p 2 -t 8 (a process per core)."""
        if not concurrency.best and concurrency.processes == 1:
            return super().setting(concurrency)  # as in the processing benchmark
        c = Concurrency("2x8", 2, 8) if concurrency.best else concurrency
        return ([self.worker_command(c.threads, c.processes)],
                f"python -m conveyor worker -p {c.processes} -t {c.threads}: a supervisor "
                f"and {c.processes} worker processes, {c.threads} threads each")

    def enqueue_one(self) -> Any:
        return self.tasks.noop.delay()

    def enqueue_many(self, task: Any, n: int) -> bool:
        task.map((i,) for i in range(n))
        return True

    def enqueue_bulk(self, n: int) -> bool:
        self.tasks.noop.map(() for _ in range(n))
        return True

    def send_warm_up(self) -> Any:
        return self.tasks.started_at.apply_async(priority=9)  # 9 runs first

    def peek(self, handle: Any) -> float | None:
        return float(handle.result) if handle.ready() else None

    def pending(self, r: redis.Redis, expected: int) -> int:
        stats = self.tasks.app.broker.stats()["default"]
        return int(stats.ready + stats.scheduled + stats.running)

    def is_result(self, key: bytes) -> bool:
        return b":result:" in key

    def close(self) -> None:
        self.tasks.app.close()


class CeleryAdapter(Adapter):
    name = dist = "celery"
    bulk_api = "group(noop.s() ...).apply_async()"
    semantics = "acks after the task (task_acks_late=True); results in the Redis backend"
    worker_setup = ("celery worker -P threads -c {threads}: 1 process, {threads} threads; "
                    "acks_late, prefetch multiplier 4 (default)")

    def worker_command(self, threads: int, pool: str = "threads", node: str = "") -> list[str]:
        return [str(BIN / "celery"), "-A", "celery_tasks", "worker", "-P", pool,
                "-c", str(threads), "--without-gossip", "--without-mingle",
                "--without-heartbeat", "-l", "WARNING", *(["-n", node] if node else [])]

    def setting(self, concurrency: Concurrency) -> Setting:
        """Celery's thread pool lives in one process, so P x T is P workers of T threads
        (each its own node name). Its best here: prefork, 2 processes (one per core)."""
        if not concurrency.best and concurrency.processes == 1:
            return super().setting(concurrency)  # as in the processing benchmark
        if concurrency.best:
            return ([self.worker_command(2, pool="prefork")],
                    "celery worker -P prefork -c 2: a parent and 2 pool processes; acks_late, "
                    "prefetch multiplier 4 (default)")
        p, t = concurrency.processes, concurrency.threads
        commands = [self.worker_command(t, node=f"bench{k}@%h" if p > 1 else "")
                    for k in range(p)]
        return commands, (f"{p} x celery worker -P threads -c {t} -n benchK@%h: {p} "
                          f"processes, {t} threads each; acks_late, prefetch multiplier 4 "
                          "(default)")

    def enqueue_one(self) -> Any:
        return self.tasks.noop.delay()

    def enqueue_bulk(self, n: int) -> bool:
        from celery import group

        group(self.tasks.noop.s() for _ in range(n)).apply_async()
        return True

    def enqueue_many(self, task: Any, n: int) -> bool:
        from celery import group

        group(task.s(i) for i in range(n)).apply_async()
        return True

    def peek(self, handle: Any) -> float | None:
        return float(handle.result) if handle.ready() else None

    def pending(self, r: redis.Redis, expected: int) -> int:
        # kombu's Redis transport: the queue list, and the hash of reserved, unacked messages
        return int(r.llen("celery")) + int(r.hlen("unacked"))

    def is_result(self, key: bytes) -> bool:
        return key.startswith(b"celery-task-meta-")


class DramatiqAdapter(Adapter):
    name = dist = "dramatiq"
    bulk_api = "group(noop.message() ...).run()"
    semantics = ("acks after the actor (default); results: Results middleware, "
                 "RedisBackend, store_results=True")
    worker_setup = ("dramatiq -p 1 -t {threads}: a parent and 1 worker process, "
                    "{threads} worker threads")

    def worker_command(self, threads: int, processes: int = 1) -> list[str]:
        return [str(BIN / "dramatiq"), "dramatiq_tasks", "-p", str(processes),
                "-t", str(threads)]

    def setting(self, concurrency: Concurrency) -> Setting:
        """`-p` processes of `-t` threads; at its best, -p 2 -t 8 (a process per core)."""
        if not concurrency.best and concurrency.processes == 1:
            return super().setting(concurrency)  # as in the processing benchmark
        c = Concurrency("2x8", 2, 8) if concurrency.best else concurrency
        return ([self.worker_command(c.threads, c.processes)],
                f"dramatiq -p {c.processes} -t {c.threads}: a parent and {c.processes} "
                f"worker processes, {c.threads} worker threads each")

    def enqueue_one(self) -> Any:
        return self.tasks.noop.send()

    def enqueue_bulk(self, n: int) -> bool:
        from dramatiq import group

        group(self.tasks.noop.message() for _ in range(n)).run()
        return True

    def enqueue_many(self, task: Any, n: int) -> bool:
        from dramatiq import group

        group(task.message(i) for i in range(n)).run()
        return True

    def send_started_at(self) -> Any:
        return self.tasks.started_at.send()

    def peek(self, handle: Any) -> float | None:
        from dramatiq.results import ResultMissing

        try:
            return float(handle.get_result())
        except ResultMissing:
            return None

    def pending(self, r: redis.Redis, expected: int) -> int:
        # a message stays in the queue's .msgs hash until it is acked
        return int(r.hlen("dramatiq:default.msgs"))

    def is_result(self, key: bytes) -> bool:
        # result keys are MD5 hex digests; bench:counter is the roundtrip workload's
        return not key.startswith((b"dramatiq:", b"bench:"))


class RQAdapter(Adapter):
    name = "rq"
    dist = "rq"
    bulk_api = "queue.enqueue_many([...])"
    semantics = ("the job moves to the finished registry when done; "
                 "results kept 500 s (default)")
    worker_setup = ("rq worker-pool -n {threads} -w rq.worker.SimpleWorker: a pool parent "
                    "and {threads} worker processes, no fork per job")
    queue: Any = None

    def load(self) -> None:
        super().load()
        from rq import Queue

        self.queue = Queue("default", connection=redis.Redis.from_url(URL))

    # the pool's size at its best: 8 did 1,800-2,200 no-op tasks/s here, 1 about 1,000
    best_pool = 8
    # The pool stops its workers itself (SIGINT each): a SIGTERM to the whole group as
    # well left a pool of 8 running until the SIGKILL 15 s later (a pool of 2 did not).
    term_group = False

    def worker_command(self, threads: int) -> list[str]:
        return [str(BIN / "rq"), "worker-pool", "-u", URL, "-n", str(threads),
                "-w", "rq.worker.SimpleWorker", "-q", "default"]

    def setting(self, concurrency: Concurrency) -> Setting:
        """RQ has no threads: P x T is a pool of P x T single-job SimpleWorker processes,
        the same number of task slots."""
        if not concurrency.best and concurrency.processes == 1:
            return super().setting(concurrency)  # as in the processing benchmark
        n = self.best_pool if concurrency.best else concurrency.processes * concurrency.threads
        return [self.worker_command(n)], self.worker_setup.format(threads=n)

    def enqueue_one(self) -> Any:
        return self.queue.enqueue(self.tasks.noop)

    def enqueue_bulk(self, n: int) -> bool:
        from rq import Queue

        self.queue.enqueue_many([Queue.prepare_data(self.tasks.noop) for _ in range(n)])
        return True

    def enqueue_many(self, task: Any, n: int) -> bool:
        from rq import Queue

        self.queue.enqueue_many([Queue.prepare_data(task, args=(i,)) for i in range(n)])
        return True

    def send_started_at(self) -> Any:
        return self.queue.enqueue(self.tasks.started_at)

    def peek(self, handle: Any) -> float | None:
        result = handle.latest_result()
        return None if result is None else float(result.return_value)

    def pending(self, r: redis.Redis, expected: int) -> int:
        from rq.registry import FinishedJobRegistry

        return expected - int(r.zcard(FinishedJobRegistry(queue=self.queue).key))

    def is_result(self, key: bytes) -> bool:
        return key.startswith(b"rq:results:")


class HueyAdapter(Adapter):
    name = dist = "huey"
    semantics = ("no acknowledgement: a task is popped, and lost if the consumer dies; "
                 "results in a hash, store_none=True")
    worker_setup = "huey_consumer -k thread -w {threads}: 1 process, {threads} worker threads"

    def worker_command(self, threads: int, kind: str = "thread") -> list[str]:
        return [str(BIN / "huey_consumer"), "huey_tasks.huey", "-k", kind,
                "-w", str(threads), "-q"]

    def setting(self, concurrency: Concurrency) -> Setting:
        """A consumer's workers are threads or processes, not both, so P x T is P
        consumers of T threads. Its best here: one consumer of 2 worker processes."""
        if not concurrency.best and concurrency.processes == 1:
            return super().setting(concurrency)  # as in the processing benchmark
        if concurrency.best:
            return ([self.worker_command(2, kind="process")],
                    "huey_consumer -k process -w 2: 1 consumer, 2 worker processes")
        p, t = concurrency.processes, concurrency.threads
        return ([self.worker_command(t) for _ in range(p)],
                f"{p} x huey_consumer -k thread -w {t}: {p} processes, "
                f"{t} worker threads each")

    def enqueue_one(self) -> Any:
        return self.tasks.noop()

    def send_started_at(self) -> Any:
        return self.tasks.started_at()

    def peek(self, handle: Any) -> float | None:
        value = handle.get(preserve=True)  # keep it: `pending` counts stored results
        return None if value is None else float(value)

    def pending(self, r: redis.Redis, expected: int) -> int:
        return expected - int(r.hlen(self.tasks.huey.storage.result_key))

    def stored(self, r: redis.Redis) -> int:
        return int(r.hlen(self.tasks.huey.storage.result_key))


ADAPTERS: dict[str, type[Adapter]] = {
    a.name: a for a in (ConveyorAdapter, CeleryAdapter, DramatiqAdapter, RQAdapter, HueyAdapter)
}


# -- the worker process group, read from /proc -----------------------------------------


def proc_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: [state, ppid, pgrp, session, ...]."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def group_members(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = proc_fields(int(entry.name))
            if fields and int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def proc_kb(path: str, field: str) -> int:
    """A "Field:   123 kB" line of a /proc file, in bytes; 0 if the process is gone."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss_bytes(pid: int) -> int:
    return proc_kb(f"/proc/{pid}/status", "VmRSS:")


def pss_bytes(pid: int) -> int:
    """Proportional set size: pages shared between forked processes counted once."""
    return proc_kb(f"/proc/{pid}/smaps_rollup", "Pss:")


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def cpu_seconds(pid: int) -> float:
    fields = proc_fields(pid)
    if not fields:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Worker:
    """The library's worker CLI in its own process group; RSS sampled while it runs.
    Several `commands` (a library run as P separate worker processes) share the first
    one's group, so they are measured and stopped as one."""

    def __init__(self, commands: list[list[str]], log: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
        self.log = log.open("wb")
        self.launched = time.time()
        self.procs: list[subprocess.Popen[bytes]] = []
        for command in commands:
            group = self.procs[0].pid if self.procs else 0
            self.procs.append(subprocess.Popen(command, cwd=HERE, env=env, stdout=self.log,
                                               stderr=subprocess.STDOUT, process_group=group))
        self.proc = self.procs[0]  # the group's leader
        self.peak_rss = self.peak_pss = 0
        self.peak_rss_by_process: list[tuple[str, float]] = []
        self.processes = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        """RSS every 50 ms; PSS (costlier to read) every 250 ms."""
        ticks = 0
        while not self._stop.wait(0.05):
            members = group_members(self.proc.pid)
            ticks += 1
            if ticks % 5 == 0:
                self.peak_pss = max(self.peak_pss, sum(pss_bytes(pid) for pid in members))
            self.processes = max(self.processes, len(members))
            sizes = [(pid, rss_bytes(pid)) for pid in members]
            if sum(size for _, size in sizes) > self.peak_rss:
                self.peak_rss = sum(size for _, size in sizes)
                self.peak_rss_by_process = [(command_name(pid), size / 2**20)
                                            for pid, size in sizes]

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in group_members(self.proc.pid))

    def check(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited with status {proc.returncode}")

    def stop(self, term_group: bool = True) -> None:
        """SIGTERM to the group (or, not `term_group`, to the commands' own processes, which
        stop their children), SIGKILL after 15 s; then SIGKILL whatever is left."""
        self._stop.set()
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                if sig == signal.SIGTERM and not term_group:
                    for proc in self.procs:
                        proc.send_signal(sig)
                else:
                    os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                for proc in self.procs:
                    proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
            if not group_members(self.proc.pid):
                break
        self.log.close()


# -- the run ---------------------------------------------------------------------------


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


def log_tail(out: dict[str, Any]) -> str:
    try:
        lines = Path(out["worker_log"]).read_text(errors="replace").splitlines()
    except (KeyError, OSError):
        return ""
    return " (worker log: " + " / ".join(lines[-5:]) + ")" if lines else ""


def versions(adapter: Adapter) -> dict[str, str]:
    found = {}
    for dist in (adapter.dist, *adapter.clients):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def parse_args(argv: list[str] | None, adapters: Mapping[str, type[Adapter]],
               description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("library", choices=sorted(adapters))
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--single", type=int, default=2_000)
    parser.add_argument("--latency-tasks", type=int, default=200)
    parser.add_argument("--threads", type=int, default=8,
                        help="the worker's concurrency: 1 process x THREADS (unless --config)")
    parser.add_argument("--config", type=Concurrency.parse, default=None, dest="concurrency",
                        help="PxT (processes x threads, e.g. 2x8) or best (the library's own)")
    parser.add_argument("--workload", default="noop",
                        help="the processed tasks: noop, or a task of the workload benchmark "
                             "(roundtrip, sleep, cpu, mix, async_sleep)")
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="where the worker's log goes (default: a new temporary directory)")
    args = parser.parse_args(argv)
    args.concurrency = args.concurrency or Concurrency(f"1x{args.threads}", 1, args.threads)
    return args


def main(argv: list[str] | None = None, adapters: Mapping[str, type[Adapter]] = ADAPTERS,
         runner: type[Run] = Run, description: str = __doc__.splitlines()[0]) -> int:
    """One run of `adapters[library]` by `runner`; amqp_driver.py's main is this, with its
    adapters and its Run."""
    args = parse_args(argv, adapters, description)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the worker
    adapter = adapters[args.library]()
    out: dict[str, Any] = {"library": adapter.name}
    try:
        adapter.load()
    except Exception as exc:  # noqa: BLE001 - any reason not to run is reported, not raised
        out["skipped"] = f"{type(exc).__name__}: {exc}"
        args.out.write_text(json.dumps(out))
        return 0
    out.update(versions=versions(adapter), bulk_api=adapter.bulk_api, semantics=adapter.semantics,
               worker_setup=adapter.worker_setup.format(threads=args.threads),
               workload=args.workload, config=args.concurrency.name)
    try:
        runner(adapter, args, out).run()
    except BaseException as exc:
        out["error"] = f"{type(exc).__name__}: {exc}{log_tail(out)}"
        raise
    finally:
        args.out.write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
