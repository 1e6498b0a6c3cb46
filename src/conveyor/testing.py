"""Helpers for users' own tests, running the real code path in-process.

    from conveyor.testing import eager, run_until_idle

    def test_signup(app):
        with eager(app):                      # tasks run as soon as they are enqueued
            assert send_welcome.delay(7).get() == "sent"

    def test_batch(app):
        app = App("test", broker="memory://")
        ...; results = add.map(pairs)
        run_until_idle(app, fail_fast=True)   # everything queued, retries included
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from conveyor.app import App
from conveyor.backends.memory import MemoryBroker, MemoryCoordination, MemoryResultStore
from conveyor.errors import TaskError
from conveyor.worker.worker import Worker


def run_until_idle(
    app: App,
    queues: Sequence[str] | None = None,
    *,
    include_scheduled: bool = True,
    fail_fast: bool = False,
    timeout: float = 60.0,
) -> int:
    """Run every queued task in this process until nothing is ready or running, and
    return how many ran. With `include_scheduled`, tasks waiting for a countdown or a
    retry backoff run too (at once on the memory broker, on time on others). With
    `fail_fast`, the first task that failed for good raises its TaskError here."""
    broker = app.broker
    deadline = time.monotonic() + timeout
    ran = 0
    while True:
        names = list(queues) if queues is not None else sorted(broker.stats())
        worker = Worker(app, names, threads=4)
        worker.run(burst=True)
        ran += worker.consumer.processed
        if fail_fast and worker.consumer.first_failure is not None:
            raise worker.consumer.first_failure
        scheduled = sum(s.scheduled for q, s in broker.stats().items() if q in names)
        if not include_scheduled or not scheduled:
            return ran
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{scheduled} scheduled task(s) still waiting after {timeout} s")
        if isinstance(broker, MemoryBroker):
            broker.make_all_due()
        else:
            time.sleep(0.05)


@contextmanager
def eager(app: App, *, fail_fast: bool = False) -> Iterator[App]:
    """Within the block, the App uses in-memory broker and results, and every enqueue runs
    the task (and what it enqueues) before `delay()` returns. Restored afterwards."""
    saved = (app._broker, app._results, app._coordination, app.on_publish)
    app.use(MemoryBroker(lease_seconds=app.settings.lease_seconds), MemoryResultStore(),
            MemoryCoordination())
    running = False

    def run(app: App) -> None:
        nonlocal running
        if running:  # a task enqueued from a task: the outer run picks it up
            return
        running = True
        try:
            run_until_idle(app, fail_fast=fail_fast)
        finally:
            running = False

    app.on_publish = run
    try:
        yield app
    finally:
        app._broker, app._results, app._coordination, app.on_publish = saved


__all__ = ["TaskError", "eager", "run_until_idle"]
