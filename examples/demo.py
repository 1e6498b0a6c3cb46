"""Conveyor in fifteen seconds: `make demo` (or `python examples/demo.py`).

What it does, for real, on the embedded default broker (a SQLite file, no server):
1. makes a temporary working directory, so the demo leaves nothing behind;
2. starts `conveyor worker -A demo_tasks -p 2 -t 8` there, as a subprocess;
3. enqueues 300 jobs (thumbnails, reports, one catalogue export), some of which fail
   transiently and are retried, and a few of which fail for good (see demo_tasks.py);
4. follows them on one live progress line by polling `AsyncResult.state`, with the
   export's own progress (`task.progress(...)`) read from `AsyncResult.progress`;
5. prints what happened and the queue counts `conveyor status` shows, then stops the
   worker with SIGTERM (a warm shutdown) and removes the directory.

`--keep` keeps the directory so you can look around with the CLI afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from conveyor import App, AsyncResult, State, TaskError

EXAMPLES = Path(__file__).resolve().parent
PROCESSES, THREADS = 2, 8
THUMBNAILS, REPORTS = 250, 49
BATCH_TIMEOUT = 45.0  # seconds; the batch takes about 7 s on two cores
TICK = 0.1


@dataclass
class Job:
    kind: str
    label: str
    handle: AsyncResult[Any]
    state: State = State.PENDING


# -- the worker subprocess ---------------------------------------------------------------


def start_worker(workdir: Path, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """`conveyor worker` in its own session, so a Ctrl-C here reaches only this script,
    which then stops the worker itself (the finally: in main)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(EXAMPLES), env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "conveyor", "worker", "-A", "demo_tasks",
               "-p", str(PROCESSES), "-t", str(THREADS), "--grace", "10"]
    return subprocess.Popen(command, cwd=workdir, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_worker(app: App, worker: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Until every worker process has reported in (each does within ~0.1 s of starting)."""
    deadline = time.monotonic() + timeout
    while len(app.broker.workers()) < PROCESSES:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with status {worker.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not start within {timeout:.0f} s")
        time.sleep(0.05)


def stop_worker(worker: subprocess.Popen[bytes], timeout: float = 15.0) -> str:
    """SIGTERM: a warm shutdown. If it doesn't end in time, kill its whole process group."""
    if worker.poll() is not None:
        return f"the worker had already exited (status {worker.returncode})"
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    try:
        code = worker.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)  # its own session: pgid == pid
        worker.wait()
        return f"the worker did not stop within {timeout:.0f} s and was killed"
    took = time.monotonic() - started
    return f"Worker stopped: warm shutdown, exit status {code}, in {took:.1f} s"


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    | " + line for line in text[-lines:])


# -- enqueueing and following ----------------------------------------------------------


def enqueue(tasks: ModuleType) -> list[Job]:
    """The export first (its progress is what the bar shows), then the rest in bulk:
    `map()` writes a whole list of tasks in one transaction."""
    export = tasks.export_catalogue.delay(20_000)
    thumbnails = tasks.render_thumbnail.map((i, 256) for i in range(1, THUMBNAILS + 1))
    reports = tasks.build_report.map((i,) for i in range(1, REPORTS + 1))
    jobs = [Job("export", "export_catalogue(20000)", export)]
    jobs += [Job("thumbnail", f"render_thumbnail({i})", r) for i, r in enumerate(thumbnails, 1)]
    jobs += [Job("report", f"build_report({i})", r) for i, r in enumerate(reports, 1)]
    return jobs


def poll(jobs: list[Job]) -> Counter[State]:
    """Read the state of every unfinished job (one indexed SELECT each)."""
    for job in jobs:
        if not job.state.is_final:
            job.state = job.handle.state
    return Counter(job.state for job in jobs)


def export_progress(export: Job) -> str:
    if export.state is State.SUCCESS:
        return "export done"
    progress = export.handle.progress
    if progress is None:
        return "export waiting"
    return f"export {progress.current:,.0f}/{progress.total or 0:,.0f} {progress.message or ''}"


def progress_line(counts: Counter[State], total: int, elapsed: float, export: str) -> str:
    finished = sum(n for state, n in counts.items() if state.is_final)
    width = 20
    filled = width * finished // total
    bar = "#" * filled + "-" * (width - filled)
    rate = finished / elapsed if elapsed > 0 else 0.0
    return (f"  [{bar}] {finished:3d}/{total} {100 * finished // total:3d}%"
            f"  ok {counts[State.SUCCESS]} failed {counts[State.FAILURE]}"
            f" retrying {counts[State.RETRY]} running {counts[State.STARTED]}"
            f"  {export}  {rate:.0f} jobs/s")


class Display:
    """One line rewritten in place with \\r on a terminal; a line a second otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.last_print = 0.0
        self.width = 0

    def show(self, line: str, final: bool = False) -> None:
        if self.tty:
            columns = shutil.get_terminal_size((120, 20)).columns - 1
            line = line[:columns]
            sys.stdout.write("\r" + line.ljust(self.width) + ("\n" if final else ""))
            sys.stdout.flush()
            self.width = len(line)
        elif final or time.monotonic() - self.last_print >= 1.0:
            print(line, flush=True)
            self.last_print = time.monotonic()


def follow(jobs: list[Job], started: float, worker: subprocess.Popen[bytes]) -> float:
    """Until every job is final (or the timeout): returns the seconds it took."""
    display = Display()
    while True:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited unexpectedly (status {worker.returncode})")
        counts = poll(jobs)
        elapsed = time.monotonic() - started
        finished = sum(n for state, n in counts.items() if state.is_final)
        done = finished == len(jobs)
        line = progress_line(counts, len(jobs), elapsed, export_progress(jobs[0]))
        if done or elapsed > BATCH_TIMEOUT:
            display.show(line, final=True)
            return elapsed
        display.show(line)
        time.sleep(TICK)


# -- the summary ---------------------------------------------------------------------


def attempts_of(app: App, job: Job) -> int:
    """Successful jobs return `task.attempt`; for the others, the result record has it."""
    if job.state is State.SUCCESS:
        value = job.handle.get(timeout=0)
        return int(value["attempt"])
    record = app.results.get(job.handle.id)
    return record.attempt if record else 0


def failure_examples(jobs: list[Job]) -> list[str]:
    """One failed job per remote exception type, as `get()` reports it."""
    seen: dict[str, str] = {}
    for job in jobs:
        if job.state is not State.FAILURE:
            continue
        try:
            job.handle.get(timeout=0)
        except TaskError as exc:
            seen.setdefault(exc.type, f"{job.label}: remote type {exc.type}\n"
                                      f"                      {exc.message}")
    return list(seen.values())


def print_summary(app: App, jobs: list[Job], elapsed: float) -> None:
    counts = Counter(job.state for job in jobs)
    by_kind = Counter(job.kind for job in jobs if job.state is State.SUCCESS)
    attempts = {job.label: attempts_of(app, job) for job in jobs if job.state.is_final}
    retried = {label: n for label, n in attempts.items() if n > 1}
    gave_up = [j for j in jobs if j.state is State.FAILURE and retried.get(j.label)]
    finished = sum(n for state, n in counts.items() if state.is_final)
    kinds = ", ".join(f"{n} {kind}{'s' if n > 1 else ''}" for kind, n in sorted(by_kind.items()))
    print("\nSummary")
    print(f"  done      {counts[State.SUCCESS]:4d}  ({kinds})")
    print(f"  failed    {counts[State.FAILURE]:4d}  for good; get() raises TaskError, e.g.")
    for example in failure_examples(jobs):
        print(f"                  {example}")
    print(f"  retried   {len(retried):4d}  jobs needed more than one attempt "
          f"({sum(retried.values()) - len(retried)} retries in all):")
    print(f"                  {len(retried) - len(gave_up)} then succeeded, {len(gave_up)} "
          f"gave up after {max(retried.values(), default=0)} attempts")
    print(f"  rate     {finished / elapsed:5.1f}  jobs/s ({finished} jobs in {elapsed:.1f} s, "
          "from the first enqueue to the last result).")
    print("                  The jobs sleep 50 ms to 1.2 s to stand in for real work, so this")
    print(f"                  is bounded by the {PROCESSES * THREADS} worker threads; "
          "`make bench` measures Conveyor.")
    unfinished = len(jobs) - finished
    if unfinished:
        print(f"  UNFINISHED {unfinished}: not done within {BATCH_TIMEOUT:.0f} s")


def print_status(app: App) -> None:
    """What `conveyor status -A demo_tasks` prints, from the same broker calls."""
    stats = app.broker.stats()
    print("\nQueues (as `conveyor status` shows them)")
    print(f"  {'QUEUE':<10}{'READY':>7}{'SCHEDULED':>11}{'RUNNING':>9}{'DEAD':>6}")
    for name, s in sorted(stats.items()):
        print(f"  {name:<10}{s.ready:>7}{s.scheduled:>11}{s.running:>9}{s.dead:>6}")
    print(f"  {len(app.broker.workers())} worker process(es) alive; DEAD keeps the messages "
          "of the failed jobs (`conveyor dead list`)")


# -- main --------------------------------------------------------------------------


def load_tasks() -> ModuleType:
    """Import the task module with the embedded default broker, whatever the shell says."""
    for key in ("CONVEYOR_BROKER_URL", "CONVEYOR_RESULTS_URL"):
        if os.environ.pop(key, None):
            print(f"(ignoring ${key}: the demo always runs on the embedded SQLite default)")
    sys.path.insert(0, str(EXAMPLES))
    import demo_tasks

    return demo_tasks


def run(tasks: ModuleType, workdir: Path, log: IO[bytes]) -> int:
    app: App = tasks.app
    print(f"Working directory {workdir} (broker: sqlite:///conveyor.db, embedded)")
    started = time.monotonic()
    jobs: list[Job] = []
    worker = start_worker(workdir, log)
    try:
        wait_for_worker(app, worker)
        print(f"Started `conveyor worker -A demo_tasks -p {PROCESSES} -t {THREADS}` "
              f"(pid {worker.pid}) in {time.monotonic() - started:.1f} s")
        began = time.monotonic()
        jobs = enqueue(tasks)
        print(f"Enqueued {len(jobs)} jobs in {1000 * (time.monotonic() - began):.0f} ms: "
              f"1 export, {THUMBNAILS} thumbnails, {REPORTS} reports\n")
        elapsed = follow(jobs, began, worker)
        print_summary(app, jobs, elapsed)
        print_status(app)
    finally:
        print("\n" + stop_worker(worker))
        app.close()
    return 0 if all(job.state.is_final for job in jobs) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true",
                        help="keep the working directory (the SQLite file, the worker log)")
    args = parser.parse_args(argv)
    tasks = load_tasks()
    home = Path.cwd()
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-demo-"))
    os.chdir(workdir)  # the App's default sqlite:///conveyor.db is relative to this
    log_path = workdir / "worker.log"
    try:
        with log_path.open("wb") as log:
            return run(tasks, workdir, log)
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    except BaseException:
        print(f"\nThe demo failed; the worker's log ends with:\n{log_tail(log_path)}",
              file=sys.stderr)
        raise
    finally:
        os.chdir(home)
        if args.keep:
            print(f"Kept {workdir}: cd there and try `PYTHONPATH={EXAMPLES} "
                  f"{Path(sys.executable).name} -m conveyor status -A demo_tasks`")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
