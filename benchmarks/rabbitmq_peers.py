"""Conveyor against Celery and Dramatiq on the same local RabbitMQ, in one run.

    make bench-rabbitmq
    make bench-rabbitmq ARGS=--quick
    benchmarks/.venv-peers/bin/python benchmarks/rabbitmq_peers.py --help

The sibling of redis_peers.py (whose process handling, rounds and report this runs),
with the same method and measurements, on RabbitMQ: every library gets the same RabbitMQ
(127.0.0.1:5672), in a vhost made for each run and deleted after it (rabbitmqctl, so
no run sees another's queues), results stored in the same Redis DB (127.0.0.1:6379/15,
flushed), acknowledgement after the task, one worker process (tree) started with its
own CLI and 8-way concurrency. benchmarks/peers/amqp_driver.py does one library's run,
in that library's environment. The libraries run interleaved, round after round, the
order rotating.

Prints a table with Conveyor's ratios and the issue's goals, and writes
benchmarks/RESULTS-rabbitmq.md. It reports; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import redis_peers
from redis_peers import (
    METRICS as REDIS_METRICS,
)
from redis_peers import (
    Bench,
    Metric,
    Runs,
    good_runs,
    interleave,
    machine_rows,
    median,
    order,
    redis_server,
    run_benchmark,
    verdict,
)

HERE = Path(__file__).resolve().parent
LIBRARIES = ("conveyor", "celery", "dramatiq")

METRICS = (
    *REDIS_METRICS[:9],  # enqueue, processing, latency, RSS, PSS, processes, worker CPU
    Metric("rabbitmq_cpu_us", "RabbitMQ CPU per task", "µs", False),
    Metric("redis_cpu_us", "redis-server CPU per task (results)", "µs", False),
)


# -- RabbitMQ: a vhost per run -----------------------------------------------------------


def rabbitmqctl(*arguments: str) -> str:
    """About a second a call (an Erlang VM starts): only between runs."""
    return subprocess.run(["rabbitmqctl", "-q", *arguments], capture_output=True, text=True,
                          timeout=120, check=True).stdout


@contextmanager
def fresh_vhost(name: str, user: str) -> Iterator[None]:
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
        yield
    finally:
        rabbitmqctl("delete_vhost", name)


# -- the libraries: redis_peers' driver runs, each in a vhost of its own ----------------


def run_library(library: str, round_no: int, args: argparse.Namespace,
                workdir: Path) -> dict[str, Any]:
    vhost = f"conveyor-bench-{os.getpid()}-{round_no}-{library}"
    user = unquote(urlsplit(args.amqp).username or "guest")
    env = {"BENCH_AMQP_VHOST": vhost,
           "BENCH_AMQP_URL": f"{args.amqp.rstrip('/')}/{quote(vhost, safe='')}"}
    return redis_peers.run_library(library, args, workdir, RABBITMQ, env,
                                   lambda: fresh_vhost(vhost, user))


def run_rounds(args: argparse.Namespace, workdir: Path) -> Runs:
    return interleave(args, list(args.libs),
                      lambda name, round_no: run_library(name, round_no, args, workdir))


# -- the goals, and what RabbitMQ held after each drain ----------------------------------


def goals(table: dict[str, dict[str, list[float]]]) -> list[tuple[str, str, bool | None]]:
    """(goal, the measured value, met?) for the issue's goals, then what it asks to be
    reported beside them (met? None)."""
    rows: list[tuple[str, str, bool | None]] = []
    for key, peer, times, text in (("processing", "dramatiq", 2, "processing >= 2x Dramatiq"),
                                   ("processing", "celery", 4, "processing >= 4x Celery"),
                                   ("enqueue_single", "celery", 2,
                                    "single delay() >= 2x Celery's")):
        ours, theirs = median(table, "conveyor", key), median(table, peer, key)
        if ours is not None and theirs:
            rows.append((text, f"{ours / theirs:.2f}x ({ours:,.0f} vs {theirs:,.0f}/s)",
                         ours >= times * theirs))
    for key, text, fmt in (("latency_p50", "latency p50", "{:.2f} ms"),
                           ("latency_p99", "latency p99", "{:.2f} ms"),
                           ("rss_peak_mb", "worker peak RSS", "{:.1f} MB")):
        values = [(c, median(table, c, key)) for c in order(table)]
        shown = ", ".join(f"{c} {fmt.format(v)}" for c, v in values if v is not None)
        if shown:
            rows.append((f"{text} (reported beside)", shown, None))
    return rows


def goal_verdict(met: bool | None) -> str:
    return "" if met is None else verdict(met)


def rabbitmq_notes(runs: Runs) -> list[str]:
    """What each library's queue still held after its drain, by rabbitmqctl."""
    notes = []
    for name, results in good_runs(runs):
        left = [(r.get("left_ready"), r.get("left_unacked")) for r in results]
        if all(ready == 0 and unacked == 0 for ready, unacked in left):
            notes.append(f"{name}: RabbitMQ held no message of its queue, ready or "
                         "unacknowledged, after the drain in every round (rabbitmqctl)")
        else:
            notes.append(f"{name}: after the drain its queue held (ready, unacknowledged), "
                         f"per round: {left} (rabbitmqctl; None: it couldn't say)")
    return notes


# -- the machine and the options --------------------------------------------------------


def machine(args: argparse.Namespace) -> list[tuple[str, str]]:
    server = redis_server(args.url)
    try:
        rabbitmq = rabbitmqctl("version").strip()
    except (OSError, subprocess.SubprocessError):
        rabbitmq = "?"
    target = urlsplit(args.amqp)
    return machine_rows(args, [
        ("RabbitMQ", f"{rabbitmq} on {target.hostname}:{target.port or 5672}, a fresh vhost "
                     "per library run, classic queues"),
        ("redis-server (results)", f"{server['redis_version']} on {args.url}"),
    ])


def add_amqp_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672",
                        help="RabbitMQ, without a vhost: each run gets a vhost of its own, "
                             "made and deleted with rabbitmqctl (on this machine)")


RABBITMQ = Bench(
    broker="RabbitMQ",
    description=__doc__.splitlines()[0],
    driver=HERE / "peers" / "amqp_driver.py",
    libraries=LIBRARIES,
    rounds=3,
    url_help="the Redis DB for results: it is FLUSHED before each run",
    add_options=add_amqp_option,
    machine=machine,
    run_rounds=run_rounds,
    title="Conveyor against Celery and Dramatiq on RabbitMQ",
    anchor="rabbitmq-conveyor-against-celery-and-dramatiq",
    semantics_heading="Acks, publishes and results",
    metrics=METRICS,
    goals_heading="Goal (the issue)",
    goals=goals,
    verdict=goal_verdict,
    goal_widths=(35, 50),
    notes=rabbitmq_notes,
)


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(RABBITMQ, argv)


if __name__ == "__main__":
    sys.exit(main())
