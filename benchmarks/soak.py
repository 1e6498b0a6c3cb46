"""A soak run: a million tasks through one worker, watching for anything that grows.

    .venv/bin/python benchmarks/soak.py --broker sqlite            # or redis; --help
    .venv/bin/python benchmarks/soak.py --broker redis --tasks 200000 --no-write

A `conveyor worker -p 2 -t 8` runs the whole time. The producer keeps a backlog of about
20,000 tasks queued: 94 % succeed, 3 % fail for good, 3 % fail once and succeed on their
retry, and one message in a thousand is poison (bytes that are no message). Every few
seconds it samples the worker's process tree (RSS, open file descriptors), the store
(SQLite: the file and its WAL; Redis: used memory and keys) and the throughput. Results
live 60 s (`result_ttl`), and the dead letters are purged each sample, as an operator
would, so a store that stays flat means nothing leaks; a store that grows means
something does. Not part of `make test`: it takes minutes. Writes RESULTS-soak-<broker>.md.

The script is also the task module its worker imports (`conveyor worker -A soak`).
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import ModuleType

from conveyor import App, TaskContext
from conveyor.message import Envelope

HERE = Path(__file__).resolve().parent
app = App("soak", result_ttl=60.0)


@app.task
def ok(n: int) -> int:
    return n


@app.task
def fail(n: int) -> None:
    raise ValueError(f"task {n} fails for good")


@app.task(bind=True, retries=1, backoff=0.05, jitter=False)
def flaky(task: TaskContext, n: int) -> int:
    if task.attempt == 1:
        raise ConnectionError(f"task {n}: the first attempt fails")
    return n


def tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        todo += [int(c) for c in children]
    return pids


def rss_and_fds(pid: int) -> tuple[float, int]:
    rss_kb, fds = 0, 0
    for p in tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
            rss_kb += int(next(line.split()[1] for line in status.splitlines()
                               if line.startswith("VmRSS:")))
            fds += len(os.listdir(f"/proc/{p}/fd"))
        except (OSError, StopIteration):
            continue
    return rss_kb / 1024, fds


def store_size(url: str) -> tuple[float, int]:
    """(MB, entries): the SQLite file and WAL, or Redis used memory and keys."""
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        return size / 2**20, 0
    import redis

    client = redis.Redis.from_url(url.split("?")[0])
    try:
        return int(client.info("memory")["used_memory"]) / 2**20, int(client.dbsize())
    finally:
        client.close()


def enqueue(tasks: ModuleType, count: int, start: int) -> None:
    """`count` tasks: 94 % ok, 3 % fail, 3 % flaky, and one poison message per thousand."""
    oks, fails, flakies, poison = [], [], [], []
    for n in range(start, start + count):
        share = n % 100
        (fails if share < 3 else flakies if share < 6 else oks).append((n,))
        if n % 1000 == 999:
            poison.append(Envelope(f"poison-{n}", "default", 0, None, b"\x00not a message"))
    for task, args in ((tasks.ok, oks), (tasks.fail, fails), (tasks.flaky, flakies)):
        if args:
            task.map(args)
    if poison:
        tasks.app.broker.publish(poison)


def finished(tasks: ModuleType, total: int) -> int:
    stats = tasks.app.broker.stats()["default"]
    return total - stats.ready - stats.scheduled - stats.running


def run(tasks: ModuleType, args: argparse.Namespace, url: str) -> list[dict[str, float]]:
    env = {**os.environ, "CONVEYOR_BROKER_URL": url,
           "PYTHONPATH": os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH"))
                                         if p)}
    worker = subprocess.Popen([sys.executable, "-m", "conveyor", "worker", "-A", "soak",
                               "-p", str(args.processes), "-t", str(args.threads),
                               "-l", "warning"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    samples: list[dict[str, float]] = []
    try:
        published, started = 0, time.monotonic()
        last_sample, last_done = started, 0
        while True:
            done = finished(tasks, published)
            if published < args.tasks and published - done < args.backlog:
                batch = min(5000, args.tasks - published)
                enqueue(tasks, batch, published)
                published += batch
                continue
            now = time.monotonic()
            if now - last_sample >= args.sample or done >= args.tasks:
                rss, fds = rss_and_fds(worker.pid)
                size, keys = store_size(url)
                samples.append({"t": now - started, "done": done, "rate": (done - last_done) /
                                (now - last_sample), "rss": rss, "fds": fds, "store": size,
                                "keys": keys, "dead": tasks.app.broker.purge_dead()})
                print(f"  {now - started:6.0f} s  {done:>9,} done  "
                      f"{samples[-1]['rate']:7,.0f}/s  RSS {rss:6.1f} MB  fds {fds:4d}  "
                      f"store {size:7.1f} MB {keys:>8,} keys", flush=True)
                last_sample, last_done = now, done
            if done >= args.tasks:
                return samples
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited ({worker.returncode}) after {done} tasks")
            time.sleep(0.2)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)


def quarter(samples: list[dict[str, float]], key: str, last: bool) -> float:
    """The median of `key` over the first (or last) quarter of the samples."""
    n = max(1, len(samples) // 4)
    part = samples[-n:] if last else samples[1:n + 1] or samples[:n]
    return statistics.median(s[key] for s in part)


def report(args: argparse.Namespace, samples: list[dict[str, float]], seconds: float) -> str:
    lines = [f"# Soak: {args.tasks:,} tasks on {args.broker}", "",
             f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()};"
             f" `conveyor worker -p {args.processes} -t {args.threads}`, a backlog of about "
             f"{args.backlog:,}; 94 % succeed, 3 % fail for good, 3 % fail once then "
             f"succeed, 0.1 % poison; results kept 60 s; dead letters purged each sample. "
             f"{seconds:,.0f} s in all.", "",
             "| | first quarter | last quarter |", "|---|---:|---:|"]
    for key, label, fmt in (("rate", "tasks/s", "{:,.0f}"), ("rss", "worker RSS, MB", "{:.1f}"),
                            ("fds", "worker file descriptors", "{:.0f}"),
                            ("store", "store size, MB", "{:.1f}"),
                            ("keys", "store keys (Redis)", "{:,.0f}")):
        lines.append(f"| {label} | {fmt.format(quarter(samples, key, False))} | "
                     f"{fmt.format(quarter(samples, key, True))} |")
    lines += ["", "Every sample:", "", "| s | done | tasks/s | RSS MB | fds | store MB | keys |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {s['t']:.0f} | {s['done']:,.0f} | {s['rate']:,.0f} | {s['rss']:.1f} | "
              f"{s['fds']:.0f} | {s['store']:.1f} | {s['keys']:,.0f} |" for s in samples]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--backlog", type=int, default=20_000)
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("-p", "--processes", type=int, default=2)
    parser.add_argument("-t", "--threads", type=int, default=8)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14",
                        help="the Redis DB to use (its soak namespace is deleted after)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        namespace = f"soak-{uuid.uuid4().hex[:8]}"
        url = (f"sqlite:///{tmp}/soak.db" if args.broker == "sqlite"
               else f"{args.redis}?namespace={namespace}")
        os.environ["CONVEYOR_BROKER_URL"] = url
        sys.path.insert(0, str(HERE))
        import soak as tasks  # this file again, as the worker imports it: on `url`

        print(f"soak: {args.tasks:,} tasks on {url}", flush=True)
        started = time.monotonic()
        samples = run(tasks, args, url)
        text = report(args, samples, time.monotonic() - started)
        if args.broker == "redis":
            import redis

            client = redis.Redis.from_url(args.redis)
            for key in client.scan_iter(match=f"*{namespace}*", count=1000):
                client.delete(key)
            client.close()
        tasks.app.close()
    print(text)
    if not args.no_write:
        (HERE / f"RESULTS-soak-{args.broker}.md").write_text(text)


if __name__ == "__main__":
    main()
