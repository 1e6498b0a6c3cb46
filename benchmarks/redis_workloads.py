"""Conveyor against Celery, Dramatiq, RQ and Huey on Redis with real task bodies.

    make bench-workloads     # = benchmarks/.venv-peers/bin/python benchmarks/redis_workloads.py
    make bench-workloads ARGS="--workloads roundtrip --configs 1x8 --rounds 1"

The no-op benchmark (redis_peers.py) measures what a library costs per task; a real task
talks to the network, waits or computes, and then the library's threads, processes and
GIL decide the rate. This runs a matrix: each workload (peers/workloads.py: `noop`, a
Redis `roundtrip`, a 1 ms `sleep`, 1 ms of `cpu`, a `mix`; and Conveyor's `async_sleep`)
at each concurrency (`1x2`, `1x8`, `2x8` processes x threads, the same task slots for
every library, and `best`, each library's own best setting on two cores). In each cell
a backlog is enqueued, then the library's worker drains it (benchmarks/peers/driver.py:
timed from a warm-up task's start to the last task done), with the worker's and
redis-server's CPU time per task. The libraries are interleaved within each cell, the
order rotating each round. Prints the tables and writes benchmarks/RESULTS-workloads.md;
asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis_peers
from redis_peers import LIBRARIES, PEERS, REDIS, good, rotated, run_library, step

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS-workloads.md"

# Tasks per run, chosen so a run's drain takes a second or more at the slowest library's
# rate without making the matrix long: 1 ms of sleep at 2 slots is at most 2,000/s,
# 1 ms of CPU at most about 2,000/s on two cores.
WORKLOADS = {"noop": 3000, "roundtrip": 3000, "sleep": 2000, "cpu": 1000, "mix": 2000,
             "async_sleep": 2000}
# async def tasks: Conveyor's, and the peers for them, arq, SAQ and Taskiq, in
# benchmarks/.venv-async, run by peers/async_driver.py at their defaults: in the `best`
# row only (their default is their setting, whatever the row).
ASYNC_PEERS = ("arq", "saq", "taskiq")
ALL = (*LIBRARIES, *ASYNC_PEERS)
ASYNC = dataclasses.replace(REDIS, broker="workloads", driver=HERE / "peers" / "async_driver.py")
CONFIGS = ("1x2", "1x8", "2x8", "best")
EQUAL_GOAL, BEST_GOAL, ROUNDTRIP_GOAL = 1.5, 2.0, 0.6

Cell = tuple[str, str]  # (workload, config)
Matrix = dict[Cell, dict[str, list[dict[str, Any]]]]  # cell -> library -> each round's result
Goal = tuple[str, str, bool | None]


# -- running the matrix ------------------------------------------------------------------


def libraries_for(cell: Cell, libs: list[str]) -> list[str]:
    """Who runs `cell`: the sync libraries the sync workloads; Conveyor the async one,
    and the async peers too in its `best` row."""
    workload, config = cell
    if workload != "async_sleep":
        return [lib for lib in libs if lib in LIBRARIES]
    return [lib for lib in libs if lib == "conveyor" or (lib in ASYNC_PEERS and
                                                         config == "best")]


def run_one(library: str, sized: argparse.Namespace, workdir: Path,
            cell: Cell) -> dict[str, Any]:
    """One library's run of `cell`: the async peers by their own driver, in their venv."""
    extra = ["--workload", cell[0], "--config", cell[1]]
    if library in ASYNC_PEERS:
        in_venv = argparse.Namespace(**{**vars(sized), "peers_python": sized.async_python})
        return run_library(library, in_venv, workdir, ASYNC, extra=extra)
    return run_library(library, sized, workdir, REDIS, extra=extra)


def cell_args(args: argparse.Namespace, workload: str) -> argparse.Namespace:
    """The driver's sizes for one cell: only the processing phase (no single enqueue
    calls, no latency tasks)."""
    tasks = args.tasks or max(10, round(WORKLOADS[workload] * args.scale))
    return argparse.Namespace(**{**vars(args), "tasks": tasks, "single": 0, "latency_tasks": 0})


def run_cell(cell: Cell, args: argparse.Namespace, workdir: Path, round_no: int,
             matrix: Matrix, skipped: dict[str, str]) -> None:
    """Each library's run of `cell`, in this round's order, into `matrix`."""
    sized = cell_args(args, cell[0])
    for library in rotated(libraries_for(cell, args.libs), round_no):
        if library in skipped:
            continue
        started = time.monotonic()
        result = run_one(library, sized, workdir, cell)
        result["tasks"], result["wall_s"] = sized.tasks, time.monotonic() - started
        matrix.setdefault(cell, {}).setdefault(library, []).append(result)
        if "skipped" in result:
            skipped[library] = result["skipped"]
            print(f"      skipped {library}: {result['skipped']}", flush=True)
        elif "error" in result:
            print(f"      {library} FAILED: {result['error']}", flush=True)
        else:
            print(f"      {library:<9} {result['processing']:>8,.0f} tasks/s  worker "
                  f"{result['worker_cpu_us']:>6,.0f} µs/task  ({result['wall_s']:.0f} s)",
                  flush=True)


def run_matrix(args: argparse.Namespace, workdir: Path) -> tuple[Matrix, dict[str, str]]:
    """Round after round, every cell; in each cell every library once, the order rotating
    by one each round. A library that can't be loaded is skipped from then on."""
    matrix: Matrix = {}
    skipped: dict[str, str] = {}
    cells = [(w, c) for w in args.workloads for c in args.configs]
    for round_no in range(args.rounds):
        for cell in cells:
            step(f"round {round_no + 1}/{args.rounds}: {cell[0]} at {cell[1]}")
            run_cell(cell, args, workdir, round_no, matrix, skipped)
    return matrix, skipped


# -- the numbers -----------------------------------------------------------------------


def values(matrix: Matrix, cell: Cell, library: str, key: str) -> list[float]:
    return [float(r[key]) for r in good(matrix.get(cell, {}).get(library, []))
            if r.get(key) is not None]


def median(matrix: Matrix, cell: Cell, library: str, key: str = "processing") -> float | None:
    found = values(matrix, cell, library, key)
    return statistics.median(found) if found else None


def rate(matrix: Matrix, cell: Cell, library: str) -> str:
    """Tasks/s: the median, (min-max) over several rounds."""
    found = values(matrix, cell, library, "processing")
    if not found:
        return "-"
    text = f"{statistics.median(found):,.0f}"
    return text + (f" ({min(found):,.0f}-{max(found):,.0f})" if len(found) > 1 else "")


def cpu(matrix: Matrix, cell: Cell, library: str) -> str:
    """Worker / redis-server CPU µs per task, medians."""
    worker = median(matrix, cell, library, "worker_cpu_us")
    server = median(matrix, cell, library, "redis_cpu_us")
    return "-" if worker is None or server is None else f"{worker:,.0f} / {server:,.0f}"


def fastest_peer(matrix: Matrix, cell: Cell) -> tuple[float, str] | None:
    peers = ASYNC_PEERS if cell[0] == "async_sleep" else PEERS
    rates = [(median(matrix, cell, peer), peer) for peer in peers]
    return max(((v, p) for v, p in rates if v), default=None)


def versus_fastest(matrix: Matrix, cell: Cell) -> str:
    ours, fastest = median(matrix, cell, "conveyor"), fastest_peer(matrix, cell)
    if ours is None or fastest is None:
        return "-"
    return f"{ours / fastest[0]:.2f}x {fastest[1]}"


def columns(matrix: Matrix, workload: str | None = None) -> list[str]:
    """The libraries that ran (`workload`, or any), in the usual order."""
    present = {lib for (w, _), by_lib in matrix.items() if workload in (None, w)
               for lib in by_lib}
    return [lib for lib in ALL if lib in present]


def workload_rows(matrix: Matrix, args: argparse.Namespace, workload: str,
                  show: Any, ratio: bool) -> list[list[str]]:
    """One row per config of `workload`: `show(matrix, cell, library)` per library, then
    (`ratio`) Conveyor's rate over the fastest peer's."""
    return [[config, *(show(matrix, (workload, config), lib)
                       for lib in columns(matrix, workload)),
             *([versus_fastest(matrix, (workload, config))] if ratio else [])]
            for config in args.configs if (workload, config) in matrix]


def goals(matrix: Matrix, args: argparse.Namespace) -> list[Goal]:
    """The issue's goals, cell by cell (reported, never asserted)."""
    rows: list[Goal] = []
    for workload in args.workloads:
        for config in args.configs:
            cell = (workload, config)
            ours, fastest = median(matrix, cell, "conveyor"), fastest_peer(matrix, cell)
            if ours is not None and fastest is not None:
                goal = BEST_GOAL if config == "best" or workload == "async_sleep" else EQUAL_GOAL
                rows.append((f"{workload} at {config}: >= {goal:g}x the fastest peer",
                             f"{ours / fastest[0]:.2f}x {fastest[1]}", ours >= goal * fastest[0]))
    for config in args.configs:
        trip, noop = (median(matrix, (w, config), "conveyor") for w in ("roundtrip", "noop"))
        if trip is not None and noop is not None:
            rows.append((f"roundtrip at {config}: >= {ROUNDTRIP_GOAL:.0%} of Conveyor's no-op",
                         f"{trip / noop:.0%} ({trip:,.0f} of {noop:,.0f}/s)",
                         trip >= ROUNDTRIP_GOAL * noop))
    return rows


def setups(matrix: Matrix, args: argparse.Namespace) -> list[list[str]]:
    """Library x config: the worker as its driver started it."""
    rows = []
    for lib in columns(matrix):
        described = []
        for config in args.configs:
            results = [r for w in args.workloads for r in good(matrix.get((w, config), {})
                                                                 .get(lib, []))]
            described.append(results[0].get("worker_setup", "?") if results else "-")
        rows.append([lib, *described])
    return rows


def library_versions(matrix: Matrix) -> list[str]:
    found: dict[str, str] = {}
    for by_lib in matrix.values():
        for lib, results in by_lib.items():
            for result in good(results):
                found.setdefault(lib, ", ".join(f"{k} {v}" for k, v in
                                                result.get("versions", {}).items()))
    return [f"{lib}: {found[lib]}" for lib in ALL if lib in found]


def wall_times(matrix: Matrix) -> str:
    """Each library's median wall time per run (driver, enqueue, worker start, drain,
    stop): what the matrix's length is made of."""
    walls: dict[str, list[float]] = {}
    for by_lib in matrix.values():
        for lib, results in by_lib.items():
            walls.setdefault(lib, []).extend(r["wall_s"] for r in good(results))
    return "wall time per run, median: " + ", ".join(
        f"{lib} {statistics.median(walls[lib]):.1f} s" for lib in ALL if walls.get(lib))


def checks(matrix: Matrix) -> list[str]:
    """Runs that failed, and runs that did not store every result."""
    notes = []
    for (workload, config), by_lib in matrix.items():
        for lib, results in by_lib.items():
            for i, result in enumerate(results):
                where = f"{workload} at {config}, {lib}, round {i + 1}"
                if "error" in result:
                    notes.append(f"FAILED: {where}: {result['error']}")
                elif "skipped" not in result and result.get("results_stored") != \
                        result["tasks"] + 1:
                    notes.append(f"{where}: stored {result.get('results_stored')} of "
                                 f"{result['tasks'] + 1} results")
    return notes


# -- the report ----------------------------------------------------------------------------


def md_table(headers: list[str], rows: list[list[str]], align: str = "---:") -> list[str]:
    """Markdown: the first column left-aligned, the others `align`ed (numbers right)."""
    return ["| " + " | ".join(headers) + " |", "|---|" + f"{align}|" * (len(headers) - 1),
            *["| " + " | ".join(row) + " |" for row in rows], ""]


def sections(matrix: Matrix, args: argparse.Namespace) -> list[tuple[str, list[str],
                                                                      list[list[str]]]]:
    """(title, headers, rows) of every table, for the terminal and the file alike."""
    out = []
    for workload in args.workloads:
        sized, heads = cell_args(args, workload).tasks, columns(matrix, workload)
        out.append((f"{workload}, {sized:,} tasks: processing tasks/s",
                    ["config", *heads, "Conveyor ÷ fastest peer"],
                    workload_rows(matrix, args, workload, rate, ratio=True)))
        out.append((f"{workload}: CPU µs per task, worker / redis-server",
                    ["config", *heads], workload_rows(matrix, args, workload, cpu, ratio=False)))
    out.append(("The issue's goals (reported, never asserted)", ["goal", "measured", ""],
                [[g, v, redis_peers.verdict(m)] for g, v, m in goals(matrix, args)]))
    return out


def print_report(matrix: Matrix, args: argparse.Namespace, skipped: dict[str, str]) -> None:
    for title, headers, rows in sections(matrix, args):
        if rows:
            print(f"\n  {title}\n")
            print(redis_peers.text_table(headers, rows))
    for lib, reason in skipped.items():
        print(f"\n  {lib} was skipped: {reason}")
    for note in [wall_times(matrix), *checks(matrix)]:
        print(f"  - {note}")


def markdown(matrix: Matrix, args: argparse.Namespace, info: list[tuple[str, str]],
             minutes: float) -> str:
    lines = [
        "# Conveyor against Celery, Dramatiq, RQ and Huey on Redis: workloads",
        "",
        "Written by `make bench-workloads` (`benchmarks/redis_workloads.py`);",
        "[README.md](README.md#workloads-real-task-bodies-at-equal-concurrency) says what "
        "each workload does, how each library is set up at each configuration, and how to "
        "read the numbers. Compare the columns of one run, not runs of different days.",
        "",
        *([f"> {args.note}", ""] if args.note else []),
        *md_table(["Machine", ""], [[k, v] for k, v in info], align="---"),
        f"{args.rounds} round(s); in each, every cell (workload x configuration) in turn, "
        "its libraries interleaved, the order rotating each round. Tasks/s are the median "
        "of the rounds, (min-max) when there were several; CPU per task is the median. "
        f"The run took {minutes:.1f} minutes.",
        "",
        *[f"- {v}" for v in library_versions(matrix)],
        "",
        *md_table(["Library", *args.configs], setups(matrix, args), align="---"),
    ]
    for title, headers, rows in sections(matrix, args):
        if rows:
            lines += [f"### {title}", "", *md_table(headers, rows)]
    lines += [f"- {note}" for note in [wall_times(matrix), *checks(matrix)]]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated subset of {','.join(WORKLOADS)}")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help="comma-separated PxT (processes x threads) or best")
    parser.add_argument("--libs", default=",".join(ALL),
                        help=f"comma-separated subset of {','.join(ALL)}")
    parser.add_argument("--rounds", type=int, default=1,
                        help="1 takes about 10 minutes on two cores; 3 give medians and ranges")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies every workload's task count (e.g. 0.1 to validate)")
    parser.add_argument("--tasks", type=int, default=0, help="every workload's task count")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/15",
                        help="the Redis DB to use: it is FLUSHED before each run")
    parser.add_argument("--timeout", type=float, default=240.0, help="per library run, s")
    parser.add_argument("--conveyor-python", type=Path, default=ROOT / ".venv/bin/python")
    parser.add_argument("--peers-python", type=Path, default=HERE / ".venv-peers/bin/python")
    parser.add_argument("--async-python", type=Path, default=HERE / ".venv-async/bin/python",
                        help="arq, SAQ and Taskiq's interpreter")
    parser.add_argument("--no-write", action="store_true", help=f"don't write {RESULTS.name}")
    parser.add_argument("--note", default="",
                        help=f"a paragraph put at the top of {RESULTS.name} (e.g. what ran beside)")
    parser.add_argument("--threads", type=int, default=8, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.workloads = [w for w in args.workloads.split(",") if w]
    args.configs = [c for c in args.configs.split(",") if c]
    args.libs = [lib for lib in args.libs.split(",") if lib]
    for kind, given, known in (("workloads", args.workloads, WORKLOADS),
                               ("libraries", args.libs, ALL)):
        if set(given) - set(known):
            parser.error(f"unknown {kind}: {', '.join(sorted(set(given) - set(known)))}")
    bad = [c for c in args.configs if c != "best" and not valid_config(c)]
    if bad:
        parser.error(f"not PxT nor best: {', '.join(bad)}")
    return args


def valid_config(name: str) -> bool:
    processes, _, threads = name.partition("x")
    return processes.isdigit() and threads.isdigit() and int(processes) > 0 < int(threads)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = redis_peers.machine(args)
    print("Conveyor workload benchmark: " + ", ".join(f"{k} {v}" for k, v in info[:4]))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so every `finally` runs
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-workloads-") as workdir:
        matrix, skipped = run_matrix(args, Path(workdir))
    minutes = (time.monotonic() - started) / 60
    print_report(matrix, args, skipped)
    print(f"\n  The run took {minutes:.1f} minutes.")
    if not args.no_write:
        RESULTS.write_text(markdown(matrix, args, info, minutes))
        print(f"\nWrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
