"""Where a task's time goes in a Conveyor worker on Redis (issue 15): drain N tasks of one
kind through `conveyor worker ARGS`, report tasks/s and the CPU per task of the worker's
processes and of redis-server, and optionally sample the worker process with py-spy.

    .venv/bin/python benchmarks/profile/run.py roundtrip 20000 -- -p 1 -t 8
    .venv/bin/python benchmarks/profile/run.py --py-spy out.txt roundtrip 40000 -- -p 1 -t 8

Uses (and flushes) Redis DB 14. Reports numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import profile_tasks  # noqa: E402 - the task module the worker imports too

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def process_tree(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [pid, *(int(p) for p in out.split())]


def left(app: object) -> int:
    stats = profile_tasks.app.broker.stats()["default"]
    return stats.ready + stats.scheduled + stats.running


def summarize(raw: Path, top: int = 25) -> str:
    """py-spy's folded stacks as the functions holding the GIL most, self and inclusive."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"{total} samples with the GIL held", "", "self:"]
    lines += [f"{n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    lines += ["", "inclusive:"]
    lines += [f"{n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=["noop", "roundtrip"])
    parser.add_argument("n", type=int)
    parser.add_argument("--py-spy", type=Path, help="write a GIL profile summary here")
    parser.add_argument("worker_args", nargs=argparse.REMAINDER,
                        help="after --: conveyor worker options")
    args = parser.parse_args()
    args.worker_args = [a for a in args.worker_args if a != "--"]
    redis.Redis.from_url(profile_tasks.URL).flushdb()
    getattr(profile_tasks, args.task).map([() for _ in range(args.n)])
    server = int(subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True,
                                text=True).stdout.split()[0])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path[1:]])}
    worker = subprocess.Popen([sys.executable, "-m", "conveyor", "worker", "-A",
                               "profile_tasks", *args.worker_args], cwd=HERE, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spy = None
    try:
        while left(profile_tasks.app) == args.n:
            if worker.poll() is not None:  # e.g. an option it doesn't know: say so, don't hang
                raise SystemExit(f"the worker exited ({worker.returncode}) before starting: "
                                 f"conveyor worker {' '.join(args.worker_args)}")
            time.sleep(0.002)
        started, first = time.monotonic(), left(profile_tasks.app)
        pids = process_tree(worker.pid)
        cpu0, server0 = sum(map(cpu_seconds, pids)), cpu_seconds(server)
        if args.py_spy:
            raw = Path(tempfile.mkdtemp()) / "gil.raw"
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(pids[-1]), "--gil",
                                    "--rate", "500", "--duration", "3", "--format", "raw",
                                    "-o", str(raw)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        while left(profile_tasks.app):
            time.sleep(0.005)
        elapsed = time.monotonic() - started
        cpu = sum(map(cpu_seconds, pids)) - cpu0
        server_cpu = cpu_seconds(server) - server0
    finally:
        worker.terminate()
        worker.wait()
    print(f"{args.task} {' '.join(args.worker_args)}: {first / elapsed:.0f} tasks/s, worker CPU "
          f"{cpu / first * 1e6:.0f} us/task ({cpu / elapsed:.0%} of a core), redis-server "
          f"{server_cpu / first * 1e6:.0f} us/task")
    if spy is not None and args.py_spy:
        spy.wait()
        args.py_spy.write_text(summarize(raw) + "\n")


if __name__ == "__main__":
    main()
