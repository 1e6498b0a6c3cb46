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

This module is the command line; the rest is in its siblings, imported by name (this
directory is first on sys.path when a driver runs as a script): bench_env.py (paths, the
Redis URL), concurrency.py (--config), adapter.py (what a library's adapter does),
redis_adapters.py (Conveyor, Celery, Dramatiq, RQ, Huey), worker_group.py (the worker's
process group) with procfs.py (/proc), runner.py (the run and its measurements).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adapter import Adapter
from concurrency import Concurrency
from redis_adapters import ADAPTERS
from runner import Run


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
