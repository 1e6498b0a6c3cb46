"""Conveyor against Celery, Dramatiq, RQ and Huey on the same local Redis, in one run.

    make bench-redis            # or: benchmarks/.venv-peers/bin/python benchmarks/redis_peers.py
    make bench-redis ARGS=--quick

Every library gets the same Redis (127.0.0.1:6379, DB 15, flushed before each run), one
worker process (tree) started with its own CLI and 8-way concurrency, the same no-op task
with its result stored, and the same measurements (benchmarks/peers/driver.py does one
library's run, in that library's environment):
- enqueue tasks/s, one call per task and with the library's bulk API;
- processing tasks/s: 10,000 tasks queued before the worker starts, timed from a warm-up
  task's start (worker start-up excluded) until the last one is done;
- enqueue-to-start latency p50 / p99: 200 tasks, 10 ms apart, to the idle worker;
- the worker tree's peak RSS.
The libraries run interleaved (round after round, each library once per round, the order
rotating), and so does the floor: bare redis-py doing an at-least-once queue's round trips
(push; reserve with a lease in a Lua script; store the result; ack), one round trip per
step and pipelined in batches of 100.

Prints a table with Conveyor's ratios and writes benchmarks/RESULTS-redis.md. It reports;
it asserts nothing. Worker processes are killed on any exit (each run is its own session).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

DESCRIPTION = __doc__.splitlines()[0]
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DRIVER = HERE / "peers" / "driver.py"
LIBRARIES = ("conveyor", "celery", "dramatiq", "rq", "huey")
PEERS = LIBRARIES[1:]
FLOOR = "floor"
FLOOR_1 = "redis-py, 1 RTT per step"
FLOOR_100 = "redis-py, pipelined x100"
BATCH = 100

Runs = dict[str, list[dict[str, Any]]]  # library (or FLOOR) -> each round's result
Table = dict[str, dict[str, list[float]]]  # column -> metric -> the good rounds' values
Goal = tuple[str, str, bool | None]  # the goal, the measured value, met? (None: can't tell)


def step(text: str) -> None:
    print(f"  ... {text}", flush=True)


# -- the floor: bare redis-py, an at-least-once queue's round trips ----------------------

# Pop up to ARGV[1] messages (each: a 32-character id, then the JSON body) and lease them:
# the body goes into the in-flight hash, the id into the lease set, with its deadline.
RESERVE = """
local items = redis.call('LPOP', KEYS[1], ARGV[1])
if not items then return {} end
for _, item in ipairs(items) do
    local id = string.sub(item, 1, 32)
    redis.call('HSET', KEYS[2], id, item)
    redis.call('ZADD', KEYS[3], ARGV[2], id)
end
return items
"""
KEYS = ("floor:queue", "floor:inflight", "floor:leases")


def floor_message() -> bytes:
    task_id = uuid.uuid4().hex
    body = {"id": task_id, "task": "bench.noop", "args": [], "kwargs": {}, "queue": "default",
            "priority": 0, "attempt": 1, "created": time.time()}
    return (task_id + json.dumps(body, separators=(",", ":"))).encode()


def floor_noop() -> None:
    """The floor's task."""


class Floor:
    """One connection, one thread: what the worker and producer ask of Redis, no more."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r
        self.reserve_script = r.register_script(RESERVE)

    def push_one_at_a_time(self, n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            self.r.rpush(KEYS[0], floor_message())
        return n / (time.perf_counter() - started)

    def push_batches(self, n: int) -> float:
        started = time.perf_counter()
        for i in range(0, n, BATCH):
            self.r.rpush(KEYS[0], *(floor_message() for _ in range(min(BATCH, n - i))))
        return n / (time.perf_counter() - started)

    def reserve(self, n: int) -> list[tuple[str, dict[str, Any]]]:
        items = self.reserve_script(keys=KEYS, args=[n, time.time() + 30])
        return [(item[:32].decode(), json.loads(item[32:])) for item in items]

    def consume(self, batch: int) -> int:
        """Until the queue is empty: reserve `batch`, run them, then store their results
        and ack them: with batch 1 one round trip each (3 per task); else results and acks
        go in one pipeline (2 round trips per batch)."""
        done = 0
        while messages := self.reserve(batch):
            results = []
            for task_id, body in messages:
                floor_noop()
                results.append((task_id, json.dumps({"id": body["id"], "state": "SUCCESS",
                                                     "result": None, "finished": time.time()})))
            pipe = self.r.pipeline(transaction=False)
            for task_id, record in results:
                pipe.set(f"floor:result:{task_id}", record, ex=86400)
                if batch == 1:
                    pipe.execute()
            ids = [task_id for task_id, _ in results]
            pipe.hdel(KEYS[1], *ids)
            pipe.zrem(KEYS[2], *ids)
            pipe.execute()
            done += len(messages)
        return done

    def time_consume(self, n: int, batch: int) -> tuple[float, float]:
        """Tasks/s, and this process's CPU µs per task."""
        self.push_batches(n)
        cpu, started = time.process_time(), time.perf_counter()
        done = self.consume(batch)
        seconds = time.perf_counter() - started
        return done / seconds, (time.process_time() - cpu) * 1e6 / max(1, done)


def redis_cpu(r: redis.Redis) -> float:
    try:
        pid = int(r.info("server")["process_id"])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, KeyError, ValueError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_floor(url: str, args: argparse.Namespace) -> dict[str, Any]:
    r = redis.Redis.from_url(url)
    try:
        r.flushdb()
        floor = Floor(r)
        out: dict[str, Any] = {"library": FLOOR, "enqueue_single": floor.push_one_at_a_time(
            args.single), "enqueue_bulk": floor.push_batches(args.tasks)}
        r.flushdb()
        redis0 = redis_cpu(r)
        out["processing_1"], out["cpu_1"] = floor.time_consume(args.single, 1)
        out["redis_cpu_1"] = (redis_cpu(r) - redis0) * 1e6 / args.single
        redis0 = redis_cpu(r)
        out["processing"], out["worker_cpu_us"] = floor.time_consume(args.tasks, BATCH)
        out["redis_cpu_us"] = (redis_cpu(r) - redis0) * 1e6 / args.tasks
        r.flushdb()
        return out
    finally:
        r.close()


# -- the libraries: one driver subprocess each, in its own session ----------------------


def session_members(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid:
            pids.append(int(entry.name))
    return pids


def end_session(proc: subprocess.Popen[bytes]) -> None:
    """Let the driver stop its worker (SIGTERM), then SIGKILL all that's left of its session."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
    for pid in session_members(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.poll() is None:
        proc.wait()


def python_for(library: str, args: argparse.Namespace) -> Path:
    return args.conveyor_python if library == "conveyor" else args.peers_python


def run_library(library: str, args: argparse.Namespace, workdir: Path, bench: Bench,
                env: dict[str, str] | None = None,
                around: Callable[[], AbstractContextManager[object]] = nullcontext,
                extra: Sequence[str] = (),
                ) -> dict[str, Any]:
    """`bench`'s driver for one run of `library`, `env` added to its environment, `extra`
    to its arguments, inside `around()` (entered only when the library's Python exists)."""
    python = python_for(library, args)
    if not python.exists():
        return {"library": library, "skipped": f"{python} does not exist (make bench-{bench.name} "
                                               "creates it)"}
    out = workdir / f"{library}.json"
    out.unlink(missing_ok=True)
    command = [str(python), str(bench.driver), library, "--out", str(out),
               "--tasks", str(args.tasks), "--single", str(args.single),
               "--latency-tasks", str(args.latency_tasks), "--threads", str(args.threads),
               "--log-dir", str(workdir), *extra]
    log = workdir / f"{library}.log"
    timed_out = False
    with around(), log.open("ab") as log_file:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                                env={**os.environ, "BENCH_REDIS_URL": args.url, **(env or {})},
                                start_new_session=True)
        try:
            proc.wait(args.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            end_session(proc)
    result: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    result.setdefault("library", library)
    if timed_out:
        result["error"] = f"stopped after --timeout {args.timeout:.0f} s ({result.get('error')})"
    if "skipped" not in result and ("processing" not in result or proc.returncode != 0):
        tail = " / ".join(log.read_text(errors="replace").splitlines()[-6:])
        result["error"] = result.get("error") or f"driver exit {proc.returncode}: {tail}"
    return result


def rotated(items: list[str], by: int) -> list[str]:
    by %= len(items)
    return items[by:] + items[:by]


def run_rounds(args: argparse.Namespace, workdir: Path) -> Runs:
    def run_one(name: str, round_no: int) -> dict[str, Any]:
        return (run_floor(args.url, args) if name == FLOOR
                else run_library(name, args, workdir, REDIS))

    return interleave(args, [*args.libs, FLOOR], run_one)


def interleave(args: argparse.Namespace, names: list[str],
               run_one: Callable[[str, int], dict[str, Any]]) -> Runs:
    """`run_one(name, round number)` for each of `names` once a round, the order rotating,
    `--rounds` rounds; a name skipped once is skipped after."""
    runs: Runs = {name: [] for name in names}
    skipped: set[str] = set()
    for round_no in range(args.rounds):
        for name in rotated(names, round_no):
            if name in skipped:
                continue
            step(f"round {round_no + 1}/{args.rounds}: {name}")
            started = time.monotonic()
            result = run_one(name, round_no)
            runs[name].append(result)
            if "skipped" in result:
                skipped.add(name)
                print(f"      skipped {name}: {result['skipped']}", flush=True)
            elif "error" in result:
                print(f"      {name} FAILED: {result['error']}", flush=True)
            else:
                print(f"      {name}: {summary(result)} ({time.monotonic() - started:.0f} s)",
                      flush=True)
    return runs


def summary(result: dict[str, Any]) -> str:
    latency = (f", p50 {result['latency_p50']:.2f} ms" if "latency_p50" in result else "")
    return f"processing {result['processing']:,.0f}/s{latency}"


# -- aggregation and the table -----------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    fmt: str = "{:,.0f}"


METRICS = (
    Metric("enqueue_single", "enqueue, one call per task", "tasks/s", True),
    Metric("enqueue_bulk", "enqueue, bulk API", "tasks/s", True),
    Metric("processing", "processing", "tasks/s", True),
    Metric("latency_p50", "enqueue-to-start latency p50", "ms", False, "{:,.2f}"),
    Metric("latency_p99", "enqueue-to-start latency p99", "ms", False, "{:,.2f}"),
    Metric("rss_peak_mb", "worker peak RSS (process tree)", "MB", False, "{:,.1f}"),
    Metric("pss_peak_mb", "worker peak PSS (process tree)", "MB", False, "{:,.1f}"),
    Metric("worker_processes", "worker processes", "", False, "{:.0f}"),
    Metric("worker_cpu_us", "worker CPU per task", "µs", False),
    Metric("redis_cpu_us", "redis-server CPU per task", "µs", False),
)
RATIO_METRICS = METRICS[:7]


def good(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if "skipped" not in r and "error" not in r]


def columns(runs: Runs, metrics: tuple[Metric, ...] = METRICS) -> Table:
    """Column name -> metric -> the values of the good rounds."""
    table: dict[str, dict[str, list[float]]] = {}
    for name, results in runs.items():
        for result in good(results):
            if name == FLOOR:
                add_floor(table, result)
                continue
            column = table.setdefault(name, {})
            for metric in metrics:
                if result.get(metric.key) is not None:
                    column.setdefault(metric.key, []).append(float(result[metric.key]))
    return table


def add_floor(table: dict[str, dict[str, list[float]]], result: dict[str, Any]) -> None:
    one = table.setdefault(FLOOR_1, {})
    many = table.setdefault(FLOOR_100, {})
    for column, key, source in (
        (one, "enqueue_single", "enqueue_single"), (one, "processing", "processing_1"),
        (one, "worker_cpu_us", "cpu_1"), (one, "redis_cpu_us", "redis_cpu_1"),
        (many, "enqueue_bulk", "enqueue_bulk"), (many, "processing", "processing"),
        (many, "worker_cpu_us", "worker_cpu_us"), (many, "redis_cpu_us", "redis_cpu_us"),
    ):
        column.setdefault(key, []).append(float(result[source]))


def median(table: dict[str, dict[str, list[float]]], column: str, key: str) -> float | None:
    values = table.get(column, {}).get(key)
    return statistics.median(values) if values else None


def cell(table: dict[str, dict[str, list[float]]], column: str, metric: Metric,
         with_range: bool = False) -> str:
    values = table.get(column, {}).get(metric.key)
    if not values:
        return "n/a" if column in table and metric.key == "enqueue_bulk" else "-"
    text = metric.fmt.format(statistics.median(values))
    if with_range and len(values) > 1:
        text += f" ({metric.fmt.format(min(values))}-{metric.fmt.format(max(values))})"
    return text


def ratio(table: dict[str, dict[str, list[float]]], column: str, metric: Metric) -> str:
    ours, theirs = median(table, "conveyor", metric.key), median(table, column, metric.key)
    if ours is None or not theirs:
        return "-"
    value = ours / theirs
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.3f}x"


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = ["  " + "  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                              for i, (h, w) in enumerate(zip(headers, widths, strict=True)))]
    for row in rows:
        lines.append("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                      for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    return "\n".join(lines)


def label(metric: Metric) -> str:
    return f"{metric.label} ({metric.unit})" if metric.unit else metric.label


def order(table: dict[str, dict[str, list[float]]]) -> list[str]:
    return [c for c in (*LIBRARIES, FLOOR_1, FLOOR_100) if c in table]


def numbers_rows(table: Table, with_range: bool,
                 metrics: tuple[Metric, ...] = METRICS) -> list[list[str]]:
    return [[label(m), *(cell(table, c, m, with_range) for c in order(table))] for m in metrics]


def ratio_rows(table: dict[str, dict[str, list[float]]]) -> list[list[str]]:
    others = [c for c in order(table) if c != "conveyor"]
    rows = []
    for metric in RATIO_METRICS:
        better = "higher" if metric.higher_is_better else "lower"
        rows.append([f"{metric.label} ({better} is better)",
                     *(ratio(table, c, metric) for c in others)])
    return rows


# -- the targets of the issue (reported, never asserted) ----------------------------------


def targets(table: dict[str, dict[str, list[float]]]) -> list[tuple[str, str, bool | None]]:
    """(target, the measured value, met?) for the issue's targets; None = can't tell."""
    ours = median(table, "conveyor", "processing")
    if ours is None:
        return []
    peers = {p: median(table, p, "processing") for p in PEERS}
    fastest = max(((v, p) for p, v in peers.items() if v), default=None)
    celery = peers.get("celery")
    floor = median(table, FLOOR_100, "processing")
    p50, p99 = median(table, "conveyor", "latency_p50"), median(table, "conveyor", "latency_p99")
    rss, celery_rss = median(table, "conveyor", "rss_peak_mb"), median(table, "celery",
                                                                        "rss_peak_mb")
    rows: list[tuple[str, str, bool | None]] = []
    if celery:
        rows.append(("processing >= 10x Celery", f"{ours / celery:.1f}x", ours >= 10 * celery))
    if fastest:
        rows.append((f"processing >= 2x the fastest peer ({fastest[1]})",
                     f"{ours / fastest[0]:.2f}x", ours >= 2 * fastest[0]))
    if floor:
        rows.append(("processing within 3x of the pipelined redis-py floor",
                     f"floor is {floor / ours:.2f}x Conveyor", floor <= 3 * ours))
    if p50 is not None and p99 is not None:
        rows.append(("latency p50 <= 1 ms", f"{p50:.2f} ms", p50 <= 1.0))
        rows.append(("latency p99 < 5 ms", f"{p99:.2f} ms", p99 < 5.0))
    if rss and celery_rss:
        rows.append(("worker RSS <= Celery's", f"{rss:.1f} vs {celery_rss:.1f} MB",
                     rss <= celery_rss))
    return rows


def verdict(met: bool | None) -> str:
    return "?" if met is None else ("met" if met else "NOT met")


# -- the machine, the versions, the file ------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def interpreter(python: Path) -> str:
    try:
        return subprocess.run([str(python), "-c", "import platform; print("
                               "platform.python_version(), platform.python_implementation())"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def revision() -> str:
    """The commit Conveyor was measured at, and whether src/ had uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return f"{head} (+ uncommitted changes in src/)" if dirty else head


def redis_server(url: str) -> dict[str, Any]:
    r = redis.Redis.from_url(url)
    try:
        return r.info("server")
    finally:
        r.close()


def machine(args: argparse.Namespace) -> list[tuple[str, str]]:
    server = redis_server(args.url)
    return machine_rows(args, [
        ("redis-server", f"{server['redis_version']} on {args.url} "
                         f"({server.get('multiplexing_api', '?')}, io-threads "
                         f"{server.get('io_threads_active', 0)})"),
    ])


def machine_rows(args: argparse.Namespace,
                 servers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The machine, with the `servers` (name, what) after the interpreters."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        ("nproc", str(os.cpu_count())),
        ("CPU", cpu_model()),
        ("Python (Conveyor / peers)",
         f"{interpreter(args.conveyor_python)} / {interpreter(args.peers_python)}"),
        *servers,
        ("OS", platform.platform()),
        ("Conveyor revision", revision()),
        ("Load average at start", load),
        ("Date", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
    ]


def first_good(results: list[dict[str, Any]]) -> dict[str, Any]:
    found = good(results)
    return found[0] if found else (results[0] if results else {})


def setups(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Markdown rows: library, versions, worker, semantics, bulk API, as the drivers said."""
    rows = []
    for name in LIBRARIES:
        result = first_good(runs.get(name, []))
        if not result:
            continue
        if "skipped" in result:
            rows.append(f"| {name} | skipped: {result['skipped']} | | | |")
            continue
        versions = ", ".join(f"{k} {v}" for k, v in result.get("versions", {}).items())
        bulk = result.get("bulk_api", "?")
        bulk = "none (n/a)" if bulk == "n/a" else f"`{bulk}`"
        rows.append(f"| {name} | {versions} | {result.get('worker_setup', '?')} | "
                    f"{result.get('semantics', '?')} | {bulk} |")
    return rows


def good_runs(runs: Runs) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Each library that had good rounds, and those rounds' results."""
    for name in LIBRARIES:
        results = good(runs.get(name, []))
        if results:
            yield name, results


def checks(runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> list[str]:
    """Did every run store every result? And where each worker tree's memory was."""
    notes = []
    for name, results in good_runs(runs):
        stored = [int(r.get("results_stored", -1)) for r in results]
        verdict = ("all" if min(stored) == args.tasks + 1 else f"only {min(stored):,}"
                   if min(stored) >= 0 else "?")
        by_process = ", ".join(f"{comm} {mb:.1f}" for comm, mb in
                               results[0].get("rss_by_process_mb", []))
        notes.append(f"{name}: stored {verdict} of the {args.tasks + 1:,} results "
                     f"(backlog + warm-up) in every round; RSS at peak by process (MB), "
                     f"first round: {by_process}")
    return notes


def problems(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    return [f"{name}, round {i + 1}: {result['error']}"
            for name, results in runs.items() for i, result in enumerate(results)
            if "error" in result]


def notes(runs: Runs, args: argparse.Namespace, bench: Bench) -> list[str]:
    return [*checks(runs, args), *bench.notes(runs)]


def markdown(runs: Runs, info: list[tuple[str, str]], args: argparse.Namespace,
             bench: Bench) -> str:
    table = columns(runs, bench.metrics)
    heads = order(table)
    lines = [
        f"# {bench.title}: results",
        "",
        f"Written by `make bench-{bench.name}` (`benchmarks/{bench.name}_peers.py`);",
        f"[README.md](README.md#{bench.anchor}) says how",
        "each number is measured and how each library is set up. One run on a shared",
        "machine: compare the columns of one run, not runs of different days.",
        "",
        "| Machine | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in info],
        "",
        f"{args.rounds} round(s), libraries interleaved; {args.tasks:,} tasks processed, "
        f"{args.single:,} single enqueue calls, {args.latency_tasks} latency tasks per run. "
        "Each cell is the median of the rounds, (min-max) when there were several.",
        "",
        f"| Library | Versions | Worker (8-way) | {bench.semantics_heading} | Bulk enqueue |",
        "|---|---|---|---|---|",
        *setups(runs),
        "",
        "| Measurement | " + " | ".join(heads) + " |",
        "|---|" + "---:|" * len(heads),
        *["| " + " | ".join(row) + " |"
          for row in numbers_rows(table, with_range=True, metrics=bench.metrics)],
        "",
        "Conveyor's ratio to each (Conveyor ÷ column, medians):",
        "",
        "| | " + " | ".join(h for h in heads if h != "conveyor") + " |",
        "|---|" + "---:|" * (len(heads) - 1),
        *["| " + " | ".join(row) + " |" for row in ratio_rows(table)],
        "",
        f"| {bench.goals_heading} | Measured | |",
        "|---|---|---|",
        *[f"| {g} | {v} | {bench.verdict(m)} |" for g, v, m in bench.goals(table)],
        "",
        *[f"- {note}" for note in notes(runs, args, bench)],
        *[f"- FAILED: {p}" for p in problems(runs)],
    ]
    return "\n".join(lines) + "\n"


def print_report(runs: Runs, args: argparse.Namespace, bench: Bench) -> None:
    table = columns(runs, bench.metrics)
    print("\n  Medians of the rounds:\n")
    print(text_table(["", *order(table)],
                     numbers_rows(table, with_range=False, metrics=bench.metrics)))
    if "conveyor" in table:
        print("\n  Conveyor ÷ column:\n")
        print(text_table(["", *[c for c in order(table) if c != "conveyor"]],
                         ratio_rows(table)))
        print()
        wide, wider = bench.goal_widths
        for goal, value, met in bench.goals(table):
            print(f"  {goal:<{wide}} {value:>{wider}}  {bench.verdict(met)}")
    for name, results in runs.items():
        if results and all("skipped" in r for r in results):
            print(f"\n  {name} was skipped: {results[0]['skipped']}")
    print()
    for note in notes(runs, args, bench):
        print(f"  - {note}")
    for problem in problems(runs):
        print(f"  FAILED: {problem}")


def parse_args(argv: list[str] | None, bench: Bench) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=bench.description)
    parser.add_argument("--rounds", type=int, default=bench.rounds)
    parser.add_argument("--tasks", type=int, default=10_000, help="processed, and bulk enqueued")
    parser.add_argument("--single", type=int, default=2_000, help="single enqueue calls")
    parser.add_argument("--latency-tasks", type=int, default=200)
    parser.add_argument("--threads", type=int, default=8, help="each worker's concurrency")
    parser.add_argument("--quick", action="store_true",
                        help="1 round, 2,000 tasks, 500 single calls, 50 latency tasks")
    parser.add_argument("--libs", default=",".join(bench.libraries),
                        help=f"comma-separated subset of {','.join(bench.libraries)}")
    bench.add_options(parser)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/15", help=bench.url_help)
    parser.add_argument("--timeout", type=float, default=240.0, help="per library run, s")
    parser.add_argument("--conveyor-python", type=Path, default=ROOT / ".venv/bin/python")
    parser.add_argument("--peers-python", type=Path,
                        default=HERE / ".venv-peers/bin/python")
    parser.add_argument("--no-write", action="store_true",
                        help=f"print only; don't write {bench.results_file.name}")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.tasks, args.single, args.latency_tasks = 1, 2000, 500, 50
    args.libs = [lib for lib in args.libs.split(",") if lib]
    unknown = set(args.libs) - set(bench.libraries)
    if unknown:
        parser.error(f"unknown libraries: {', '.join(sorted(unknown))}")
    return args


def run_benchmark(bench: Bench, argv: list[str] | None = None) -> int:
    args = parse_args(argv, bench)
    info = bench.machine(args)
    print(f"Conveyor {bench.broker} benchmark: " + ", ".join(f"{k} {v}" for k, v in info[:4]))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so every `finally` runs
    with tempfile.TemporaryDirectory(prefix=f"conveyor-bench-{bench.name}-") as workdir:
        runs = bench.run_rounds(args, Path(workdir))
    print_report(runs, args, bench)
    if not args.no_write:
        bench.results_file.write_text(markdown(runs, info, args, bench))
        print(f"\nWrote {bench.results_file}")
    return 0


# -- what a benchmark has of its own: the Redis one's, unless another says otherwise --------


@dataclass(frozen=True)
class Bench:
    """What a benchmark of Conveyor against its peers has of its own. The defaults are this
    one's (REDIS); rabbitmq_peers.py says what its own are. The rest (the process handling,
    the rounds, the tables, the results file's layout) is this module's, for both."""

    broker: str = "Redis"  # names its make target, script and results file (`name`)
    description: str = DESCRIPTION  # --help's
    driver: Path = DRIVER  # one library's run, in that library's environment
    libraries: tuple[str, ...] = LIBRARIES
    rounds: int = 5  # --rounds' default
    url_help: str = "the Redis DB to use: it is FLUSHED before each run"
    add_options: Callable[[argparse.ArgumentParser], None] = lambda parser: None  # after --libs
    machine: Callable[[argparse.Namespace], list[tuple[str, str]]] = machine
    run_rounds: Callable[[argparse.Namespace, Path], Runs] = run_rounds
    title: str = "Conveyor against Celery, Dramatiq, RQ and Huey on Redis"  # of the results
    anchor: str = "redis-conveyor-against-celery-dramatiq-rq-and-huey"  # README.md's section
    semantics_heading: str = "Acks and results"  # the setups table's fourth column
    metrics: tuple[Metric, ...] = METRICS
    goals_heading: str = "Target (issue 3)"
    goals: Callable[[Table], list[Goal]] = targets
    verdict: Callable[[bool | None], str] = verdict
    goal_widths: tuple[int, int] = (55, 28)  # of the goal and the measured value, printed
    notes: Callable[[Runs], list[str]] = lambda runs: []  # after checks()'s

    @property
    def name(self) -> str:
        """In lower case: `make bench-redis` runs benchmarks/redis_peers.py."""
        return self.broker.lower()

    @property
    def results_file(self) -> Path:
        return HERE / f"RESULTS-{self.name}.md"


REDIS = Bench()


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(REDIS, argv)


if __name__ == "__main__":
    sys.exit(main())
