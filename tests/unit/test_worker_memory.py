"""A worker keeps nothing per task it has finished: its memory stays flat however long
it runs (a million tasks in production; a few hundred show the trend here)."""

from __future__ import annotations

import gc

from conveyor import App, TaskError
from conveyor.worker import Worker


def test_a_worker_keeps_nothing_of_the_failures_it_has_finished() -> None:
    app = App("memory-test", broker="memory://")

    @app.task
    def fail(n: int) -> None:
        raise ValueError(f"failure {n}")

    fail.map([(n,) for n in range(300)])
    worker = Worker(app, ["default"], threads=2)
    worker.run(burst=True)
    gc.collect()

    # type(), not isinstance(): it never wakes a lazy object (Django's) found among them
    held = [o for o in gc.get_objects() if type(o) is TaskError]
    assert worker.consumer.processed == 300
    assert len(held) <= 1  # the first failure, which run_until_idle(fail_fast=True) raises
    app.close()
