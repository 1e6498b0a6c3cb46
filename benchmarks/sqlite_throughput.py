"""Conveyor on its embedded SQLite broker: how fast, on this machine, in one run.

    make bench        # or: .venv/bin/python benchmarks/sqlite_throughput.py [--help]

Measures, each on a fresh SQLite file in a temporary directory:
(a) `delay()` called one at a time (each call is one durable commit), in rounds
    interleaved with the same rounds of bare sqlite3 commits, so both see the same disk;
(b) `map()` enqueueing a whole list in one call;
(c) processing: one `conveyor worker -p 2 -t 8` process tree draining pre-enqueued
    no-op tasks with their results stored, timed from when a warm-up task ran (so
    process start-up is excluded) until the last result was written;
(d) enqueue-to-start latency of an idle worker: tasks sent one at a time, ~10 ms
    apart, each returning `time.time()` when it starts;
(e) the floor: bare `sqlite3` loops doing the same kinds of transactions, no Conveyor.

Prints a table and writes benchmarks/RESULTS-sqlite.md. It reports; it asserts nothing.
This file is also the task module the worker imports (`-A sqlite_throughput`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from conveyor import App
from conveyor.task import Task

HERE = Path(__file__).resolve().parent
RESULTS_FILE = HERE / "RESULTS-sqlite.md"
DB = "conveyor.db"  # relative to the working directory, which each phase makes fresh
ROUNDS = 3

# Explicit URLs, so $CONVEYOR_BROKER_URL / $CONVEYOR_RESULTS_URL can't move the benchmark
# off SQLite. The worker imports this module from the same working directory.
app = App("bench", broker=f"sqlite:///{DB}", results=f"sqlite:///{DB}")


@app.task(name="bench.noop")
def noop() -> None:
    """The processing benchmark's task: nothing but Conveyor's own work."""


@app.task(name="bench.started_at")
def started_at() -> float:
    """When the task started, on the same clock as `Message.created`."""
    return time.time()


# -- the report ----------------------------------------------------------------------


@dataclass
class Row:
    section: str
    label: str
    value: str
    target: str = ""
    verdict: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, section: str, label: str, value: str, target: str = "",
            met: bool | None = None) -> None:
        verdict = "" if met is None else ("met" if met else "NOT met")
        self.rows.append(Row(section, label, value, target, verdict))

    def ordered(self) -> list[Row]:
        return sorted(self.rows, key=lambda row: row.section)  # stable: keeps each order

    def table(self) -> str:
        lines = []
        for row in self.ordered():
            label = f"({row.section}) {row.label}" if row.label[0] != " " else f"   {row.label}"
            target = f"  target {row.target}: {row.verdict}" if row.target else ""
            lines.append(f"  {label:<60} {row.value:>26}{target}")
        return "\n".join(lines)


def per_second(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def spread(rates: list[float]) -> str:
    """Median, and the range over the rounds."""
    return f"{statistics.median(rates):,.0f}/s ({min(rates):,.0f}-{max(rates):,.0f})"


def step(text: str) -> None:
    print(f"  ... {text}", flush=True)


@contextmanager
def fresh_directory(root: Path, name: str) -> Iterator[Path]:
    """A new empty working directory, with the App's connections closed and reopened there
    (the App's `sqlite:///conveyor.db` is relative to the working directory)."""
    path = root / name
    path.mkdir()
    previous = Path.cwd()
    app.close()
    os.chdir(path)
    try:
        yield path
    finally:
        app.close()
        os.chdir(previous)


# -- (e) the bare sqlite3 floor (used by (a) too) --------------------------------------


FLOOR_SCHEMA = """
CREATE TABLE IF NOT EXISTS m (seq INTEGER PRIMARY KEY, id TEXT NOT NULL,
    queue TEXT NOT NULL, priority INTEGER NOT NULL, state INTEGER NOT NULL, due REAL NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 0, body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS m_ready ON m (queue, state, priority DESC, seq);
CREATE INDEX IF NOT EXISTS m_due ON m (state, due);
CREATE TABLE IF NOT EXISTS r (id TEXT PRIMARY KEY, state TEXT NOT NULL, expires REAL NOT NULL,
    record BLOB NOT NULL) WITHOUT ROWID;
"""
BODY = b"x" * 200  # about the size of an encoded no-op message
RECORD = b'{"id":"0123456789abcdef0123456789abcdef","state":"SUCCESS","task":"bench.noop"}'
INSERT = "INSERT INTO m (id, queue, priority, state, due, body) VALUES (?, 'default', 0, 0, ?, ?)"
RESERVE = (
    "UPDATE m SET state = 1, due = ?, deliveries = deliveries + 1 WHERE seq IN"
    " (SELECT seq FROM m WHERE queue = 'default' AND state = 0 ORDER BY priority DESC, seq"
    " LIMIT ?) RETURNING seq, id, body"
)


def floor_db(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.executescript(FLOOR_SCHEMA)
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    yield conn
    conn.execute("COMMIT")


def floor_inserts(path: Path, synchronous: str, n: int) -> float:
    """One row per transaction, as `delay()` writes it. Returns rows per second."""
    conn = floor_db(path, synchronous)
    try:
        started = time.perf_counter()
        for i in range(n):
            with transaction(conn):
                conn.execute(INSERT, (str(i), time.time(), BODY))
        return per_second(n, time.perf_counter() - started)
    finally:
        conn.close()


def floor_consume(path: Path, n: int, batch: int, with_results: bool) -> float:
    """Reserve a batch, (store its results,) ack it: one transaction each, synchronous
    NORMAL, as a worker does. Returns messages per second."""
    conn = floor_db(path, "NORMAL")
    try:
        with transaction(conn):
            conn.executemany(INSERT, ((str(i), 0.0, BODY) for i in range(n)))
        started = time.perf_counter()
        while True:
            with transaction(conn):
                rows = conn.execute(RESERVE, (time.time() + 30, batch)).fetchall()
            if not rows:
                break
            if with_results:
                expires = time.time() + 86400
                with transaction(conn):
                    conn.executemany("INSERT OR REPLACE INTO r VALUES (?, 'SUCCESS', ?, ?)",
                                     [(r[1], expires, RECORD) for r in rows])
            with transaction(conn):
                conn.executemany("DELETE FROM m WHERE seq = ?", [(r[0],) for r in rows])
        return per_second(n, time.perf_counter() - started)
    finally:
        conn.close()


def bench_floor_consume(report: Report, root: Path, n: int) -> None:
    step("(e) bare sqlite3 reserve/ack loops")
    floor = root / "floor"
    floor.mkdir()
    value = floor_consume(floor / "consume.db", n, 16, with_results=False)
    report.add("e", "    reserve + ack, batches of 16, NORMAL (msgs)", f"{value:,.0f}/s")
    value = floor_consume(floor / "consume-results.db", n, 16, with_results=True)
    report.add("e", "    reserve + results + ack, batches of 16 (msgs)", f"{value:,.0f}/s")


# -- (a) and (b): producing ----------------------------------------------------------


def time_delays(task: Task[[], Any], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        task.delay()
    return per_second(n, time.perf_counter() - started)


def bench_delay(report: Report, workdir: Path, n: int) -> None:
    """Rounds of: delay() (producer commits use synchronous=FULL, the default), delay()
    on `?synchronous=normal`, and bare sqlite3 single-row commits with FULL and NORMAL.
    Interleaved, because an fsync's cost changes with whatever else the disk is doing."""
    step(f"(a) delay() x {n:,}, and (e) bare inserts, in {ROUNDS} interleaved rounds")
    normal = App("bench-normal", broker="sqlite:///normal.db?synchronous=normal",
                 results="sqlite:///normal.db")
    noop_normal = normal.task(name="bench.noop")(noop.fn)
    noop.delay()  # open the connections and create the schemas: not timed
    noop_normal.delay()
    rates: dict[str, list[float]] = {"full": [], "normal": [], "FULL": [], "NORMAL": []}
    per_round = max(1, n // ROUNDS)
    for _ in range(ROUNDS):
        rates["full"].append(time_delays(noop, per_round))
        rates["normal"].append(time_delays(noop_normal, per_round))
        for sync in ("FULL", "NORMAL"):
            rates[sync].append(floor_inserts(workdir / f"floor-{sync}.db", sync, per_round))
    normal.close()
    full = statistics.median(rates["full"])
    report.add("a", f"delay(), {per_round * ROUNDS:,} calls one at a time",
               spread(rates["full"]), ">= 3,000/s", full >= 3000)
    report.add("a", "    the same on sqlite:///...?synchronous=normal", spread(rates["normal"]))
    report.add("e", "bare sqlite3: 1-row insert transactions, FULL", spread(rates["FULL"]))
    report.add("e", "    the same, NORMAL", spread(rates["NORMAL"]))
    report.notes.append(
        f"(a) delay() commits with synchronous=FULL (one fsync per call): it ran at "
        f"{100 * full / statistics.median(rates['FULL']):.0f} % of the bare FULL-commit "
        "rate measured in the same rounds. Rates are the median of "
        f"{ROUNDS} rounds (min-max in brackets)."
    )


def bench_map(report: Report, n: int) -> None:
    step(f"(b) map() of {n:,} tasks")
    started = time.perf_counter()
    noop.map(() for _ in range(n))
    seconds = time.perf_counter() - started
    report.add("b", f"map(), {n:,} tasks in one call",
               f"{per_second(n, seconds):,.0f}/s ({seconds * 1000:,.0f} ms)")


# -- the worker subprocess -------------------------------------------------------------


def start_worker(workdir: Path, processes: int, threads: int,
                 log: IO[bytes]) -> subprocess.Popen[bytes]:
    """`conveyor worker` in its own session (so it can be killed as a group)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "conveyor", "worker", "-A", "sqlite_throughput",
               "-p", str(processes), "-t", str(threads)]
    return subprocess.Popen(command, cwd=workdir, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """Warm shutdown; if it hangs, kill the whole process group."""
    if worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        print("  (the worker did not stop within 30 s: killed)")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, all its threads, from /proc (Linux); 0 if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """CPU time of a process and its direct children (the supervisor and its workers)."""
    total = cpu_seconds(root)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == root:
            total += cpu_seconds(int(entry.name))
    return total


# -- (c) processing ------------------------------------------------------------------


SUCCESS_SINCE = (
    "SELECT count(*), max(json_extract(record, '$.updated')) FROM conveyor_results"
    " WHERE state = 'SUCCESS' AND json_extract(record, '$.task') = 'bench.noop'"
    " AND json_extract(record, '$.updated') >= ?"
)


def count_done(conn: sqlite3.Connection, since: float = 0.0) -> tuple[int, float]:
    count, last = conn.execute(SUCCESS_SINCE, (since,)).fetchone()
    return int(count), float(last or 0.0)


def wait_until_done(conn: sqlite3.Connection, expected: int, worker: subprocess.Popen[bytes],
                    timeout: float) -> bool:
    """Poll the results table every 50 ms (a read: it doesn't block the worker's writes)."""
    deadline = time.monotonic() + timeout
    while count_done(conn)[0] < expected:
        if worker.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def bench_processing(report: Report, workdir: Path, worker: subprocess.Popen[bytes],
                     launched: float, warm_up_id: str, n: int) -> None:
    step(f"(c) the worker drains {n:,} tasks")
    t0 = app.AsyncResult(warm_up_id).get(timeout=60)  # when the warm-up task started
    cpu_start = tree_cpu_seconds(worker.pid)
    conn = sqlite3.connect(workdir / DB, timeout=60)
    try:
        before = count_done(conn)[0]
        finished = wait_until_done(conn, n, worker, timeout=max(120.0, n / 100))
        cpu = tree_cpu_seconds(worker.pid) - cpu_start
        done, last = count_done(conn, since=t0)
        total = count_done(conn)[0]
    finally:
        conn.close()
    if not finished:
        report.notes.append(f"(c) only {total:,} of {n:,} tasks finished: see the worker log")
    rate = per_second(done, last - t0)
    report.add("c", f"processing: {done:,} no-op tasks, results stored", f"{rate:,.0f}/s",
               ">= 5,000/s", rate >= 5000)
    report.add("c", "    worker CPU per task (supervisor + processes)",
               f"{cpu * 1e6 / max(1, total - before):,.0f} us")
    report.notes.append(
        f"(c) from the warm-up task's start to the last result's `updated` time; the worker "
        f"took {t0 - launched:.2f} s from launch to run the warm-up (excluded), and "
        f"{total - done:,} task(s) that finished before that are not counted"
    )


# -- (d) latency -----------------------------------------------------------------------


def bench_latency(report: Report, n: int, spacing: float) -> None:
    """`Task.message()` + `App.publish()` is exactly what `delay()` does; this way the
    message's own `created` time is known."""
    step(f"(d) {n} tasks, one every {spacing * 1000:.0f} ms, to an idle worker")
    sent: list[tuple[str, float, float]] = []
    for _ in range(n):
        message = started_at.message((), None)
        app.publish([message])
        sent.append((message.id, message.created, time.time()))
        time.sleep(spacing)
    latency, after_return = [], []
    for task_id, created, returned in sent:
        start = float(app.AsyncResult(task_id).get(timeout=30))
        latency.append((start - created) * 1000)
        after_return.append((start - returned) * 1000)
    commits = [(returned - created) * 1000 for _, created, returned in sent]
    for label, values in (
        (f"enqueue-to-start latency p50 / p99, idle worker ({n})", latency),
        ("    of which the enqueue (delay()'s commit)", commits),
        ("    and from delay() returning to the task starting", after_return),
    ):
        report.add("d", label, f"{percentile(values, 0.5):.1f} / "
                               f"{percentile(values, 0.99):.1f} ms")


def bench_worker(report: Report, root: Path, args: argparse.Namespace) -> None:
    """(b), (c) and (d) share one file and one worker: the tasks (b) enqueues are the
    ones (c) processes; (d) runs once the worker is idle again."""
    with fresh_directory(root, "worker") as workdir:
        warm_up = started_at.apply_async(priority=9)  # runs first, before the backlog
        bench_map(report, args.tasks)
        with (workdir / "worker.log").open("wb") as log:
            launched = time.time()
            worker = start_worker(workdir, args.processes, args.threads, log)
            try:
                bench_processing(report, workdir, worker, launched, warm_up.id, args.tasks)
                time.sleep(0.5)  # let it go idle
                bench_latency(report, args.latency_tasks, 0.01)
            finally:
                stop_worker(worker)
        if worker.returncode != 0:
            tail = (workdir / "worker.log").read_text(errors="replace").splitlines()[-10:]
            report.notes.append(f"the worker exited with status {worker.returncode}: "
                                + " / ".join(tail))


# -- the machine and the file --------------------------------------------------------


def filesystem_of(path: Path) -> str:
    """The type of the filesystem holding `path` (fsync costs differ: on tmpfs it's free)."""
    best, kind = "", "?"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    for line in mounts:
        parts = line.split()
        if len(parts) > 2 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
            best, kind = parts[1], parts[2]
    return kind


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def machine(root: Path) -> list[tuple[str, str]]:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return [
        ("nproc", str(os.cpu_count())),
        ("CPU", cpu_model()),
        ("Python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("SQLite", sqlite3.sqlite_version),
        ("OS", platform.platform()),
        ("Database directory", f"{root.parent} ({filesystem_of(root)})"),
        ("Load average at start", load),
        ("Date", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
    ]


def markdown(report: Report, info: list[tuple[str, str]], args: argparse.Namespace) -> str:
    lines = [
        "# Conveyor on SQLite: results",
        "",
        "Written by `make bench` (`benchmarks/sqlite_throughput.py`); [README.md](README.md)",
        "says what each line measures. One run: expect noise between runs, most of all in",
        "anything that waits for fsync.",
        "",
        "| Machine | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in info],
        "",
        f"Worker: one `conveyor worker -p {args.processes} -t {args.threads}` process tree.",
        "",
        "| | Measurement | Result | Target |",
        "|---|---|---|---|",
        *[f"| {r.section} | {r.label.strip()} | {r.value} | "
          f"{f'{r.target}: {r.verdict}' if r.target else ''} |" for r in report.ordered()],
        "",
        *[f"- {note}" for note in report.notes],
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Conveyor's SQLite throughput benchmark.")
    parser.add_argument("--delays", type=int, default=3000, help="(a) delay() calls")
    parser.add_argument("--tasks", type=int, default=10_000, help="(b) and (c) tasks")
    parser.add_argument("--latency-tasks", type=int, default=200, help="(d) tasks")
    parser.add_argument("-p", "--processes", type=int, default=2)
    parser.add_argument("-t", "--threads", type=int, default=8)
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to make the temporary directory (default: the system's)")
    parser.add_argument("--no-write", action="store_true",
                        help=f"print only; don't write {RESULTS_FILE.name}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="conveyor-bench-", dir=args.dir))
    info = machine(root)
    print("Conveyor SQLite benchmark: " + ", ".join(f"{k} {v}" for k, v in info[:4]))
    report = Report()
    try:
        with fresh_directory(root, "delay") as workdir:
            bench_delay(report, workdir, args.delays)
        bench_worker(report, root, args)
        bench_floor_consume(report, root, args.tasks)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("\n" + report.table() + "\n")
    for note in report.notes:
        print(f"  - {note}")
    if not args.no_write:
        RESULTS_FILE.write_text(markdown(report, info, args))
        print(f"\nWrote {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
