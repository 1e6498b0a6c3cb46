"""Tasks the end-to-end and chaos tests run in real `conveyor worker` processes.

Side effects a test must observe across processes go to files in the working
directory (appends are atomic for short lines), never to memory.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import pathlib
import time

from conveyor import App, Retry, TaskContext

app = App("e2e")
_hoard: list[bytes] = []  # what `hoard` keeps: memory that grows with every run


def record(name: str, line: str) -> None:
    with open(name, "a") as f:
        f.write(line + "\n")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
async def async_add(x: int, y: int) -> int:
    await asyncio.sleep(0.01)
    return x + y


@app.task
def fail(message: str) -> None:
    raise ValueError(message)


@app.task(retries=3, backoff=0.2, jitter=False)
def flaky(key: str, succeed_on: int) -> int:
    """Fails until its `succeed_on`-th attempt; attempts are counted in a file."""
    record(f"flaky-{key}.log", str(time.time()))
    with open(f"flaky-{key}.log") as f:
        attempts = len(f.readlines())
    if attempts < succeed_on:
        raise ConnectionError(f"attempt {attempts} failed")
    return attempts


@app.task(bind=True)
def explicit_retry(task: TaskContext) -> int:
    if task.attempt < 3:
        raise Retry(countdown=0.1)
    return task.attempt


@app.task(bind=True)
def progress(task: TaskContext, steps: int, pause: float) -> str:
    for step in range(1, steps + 1):
        time.sleep(pause)
        task.progress(step, steps, f"step {step}")
    return "done"


@app.task
def started_at(label: str) -> float:
    now = time.time()
    record("started.log", f"{label} {now}")
    return now


@app.task
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.task
def mark(key: str, seconds: float = 0.0) -> str:
    """Records every run of `key` (the chaos tests count them), optionally slowly."""
    if seconds:
        time.sleep(seconds)
    record("runs.log", f"{key} {os.getpid()}")
    return key


@app.task
def hoard(key: str, megabytes: int, seconds: float = 0.0) -> int:
    """Keeps `megabytes` more of resident memory for the life of its process (a leak),
    records its run like `mark`, and returns its process id."""
    _hoard.append(b"\x01" * (megabytes * 2**20))  # written, so resident, not just mapped
    if seconds:
        time.sleep(seconds)
    record("runs.log", f"{key} {os.getpid()}")
    return os.getpid()


@app.task(soft_time_limit=0.5, time_limit=5)
def soft_limited() -> str:
    try:
        while True:
            time.sleep(0.01)
    except Exception as exc:
        return f"caught {type(exc).__name__}"


@app.task(time_limit=1)
def hard_limited(seconds: float) -> str:
    record("hard.log", str(os.getpid()))
    time.sleep(seconds)
    return "finished"


@app.task
def unserializable_result() -> object:
    return object()


@app.task(queue="other")
def other_queue() -> str:
    return "other"


@app.task
def total(values: list[int]) -> int:
    return sum(values)


@app.task
def tally(values: list[int], key: str) -> int:
    """A chord callback that records each run: exactly-once checks count them."""
    record(f"tally-{key}.log", str(len(values)))
    return sum(values)


@app.task
def on_error(task_id: str, key: str) -> None:
    """A link_error handler: records the id of the task that failed."""
    record(f"errors-{key}.log", task_id)


@app.task
def slow_add(x: int, y: int, seconds: float) -> int:
    record("starts.log", f"slow_add-{x}")
    time.sleep(seconds)
    record("runs.log", f"slow_add-{x} {os.getpid()}")
    return x + y


@app.task(retries=3, backoff=0.1, jitter=False)
def flaky_double(x: int) -> int:
    """Fails on its first attempt for odd x: chord members that retry."""
    record(f"flaky-double-{x}.log", "attempt")
    with open(f"flaky-double-{x}.log") as f:
        attempts = len(f.readlines())
    if x % 2 and attempts < 2:
        raise ConnectionError(f"attempt {attempts} of {x} failed")
    return 2 * x


@app.task(unique_for=60)
def sync_account(account: int, seconds: float) -> int:
    record("sync.log", str(account))
    time.sleep(seconds)
    return account


@app.task
def unstorable(kind: str) -> object:
    """Returns a value no store can keep as it is (the hardening tests count the runs)."""
    record("runs.log", f"unstorable-{kind} {os.getpid()}")
    if kind == "surrogate":
        return os.fsdecode(b"report-\xff.csv")  # 'report-\udcff.csv': no UTF-8 for it
    if kind == "deep":
        value: list[object] = []
        for _ in range(20_000):
            value = [value]
        return value
    return datetime.datetime.now()


@app.task(bind=True)
def bad_progress(task: TaskContext) -> str:
    try:
        task.progress(1, 2, pathlib.Path("rows.csv"))  # type: ignore[arg-type]
    except TypeError as exc:
        return f"refused: {exc}"
    return "accepted"


@app.task
def stoppable(seconds: float) -> str:
    """Runs `seconds` in short sleeps: a terminate request lands between two of them."""
    record("stoppable.log", str(os.getpid()))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return "finished"


@app.task
async def async_stoppable(seconds: float) -> str:
    record("stoppable.log", str(os.getpid()))
    await asyncio.sleep(seconds)
    return "finished"


@app.task
def blocked(seconds: float) -> str:
    """One long sleep: no Python instruction runs inside it until it returns."""
    record("stoppable.log", str(os.getpid()))
    time.sleep(seconds)
    return "finished"


@app.task(time_limit=1)
def stuck_in_c() -> int:
    """Holds the GIL in C code for hours: no thread of its process runs meanwhile."""
    record("stuck.log", str(os.getpid()))
    return sum(range(10**13))


@app.task(rate_limit="10/s")
def paced(n: int) -> list[float]:
    """Rate limited to 10 starts a second, cluster-wide: returns when it ran, and where
    (the rate-limit tests measure the rate from these times, not from their own)."""
    return [time.time(), os.getpid()]


@app.task
async def async_nap(seconds: float) -> list[float]:
    """Awaits `seconds`: returns when it started and ended (the tests count overlaps)."""
    started = time.time()
    await asyncio.sleep(seconds)
    return [started, time.time()]
