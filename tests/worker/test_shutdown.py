"""Warm and cold shutdown: running tasks finish or are handed back; nothing is lost."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from conveyor import State
from tests.chaos.helpers import runs, wait_all_succeeded, wait_until
from tests.conftest import WorkerProcess

pytestmark = pytest.mark.timeout(180)
Start = Callable[..., WorkerProcess]


def test_warm_shutdown_finishes_running_tasks_and_hands_back_the_rest(
    tasks: ModuleType, start_worker: Start, project: Path
) -> None:
    # Given a worker busy with slow tasks and more waiting
    results = tasks.mark.map([(f"w{i}", 1.0) for i in range(40)])
    worker = start_worker("-p", "2", "-t", "2")
    wait_until(lambda: any(tasks.app.AsyncResult(r.id).state is State.STARTED
                           for r in results), 30, "tasks to start")

    # When the whole process group gets SIGTERM (as a terminal's Ctrl-C would)
    worker.signal_group(signal.SIGTERM)

    # Then it exits cleanly, the tasks that were running finished, none is left running
    assert worker.proc.wait(30) == 0
    assert "warm shutdown" in worker.output()
    assert "cold shutdown" not in worker.output()  # one group signal counts once
    finished = [r for r in results if r.state is State.SUCCESS]
    assert finished, "running tasks should have been allowed to finish"
    stats = tasks.app.broker.stats()["default"]
    assert stats.running == 0
    assert stats.ready == len(results) - len(finished)

    # And a new worker completes the rest, each task exactly once
    start_worker("-p", "2", "-t", "4")
    assert wait_all_succeeded(tasks.app, results, timeout=60) == []
    assert all(count == 1 for count in runs(project).values())


def test_second_signal_is_a_cold_shutdown_that_loses_nothing(
    tasks: ModuleType, start_worker: Start, project: Path
) -> None:
    results = tasks.mark.map([(f"c{i}", 5.0) for i in range(8)])
    worker = start_worker("-p", "1", "-t", "4", "--grace", "60")
    wait_until(lambda: any(tasks.app.AsyncResult(r.id).state is State.STARTED
                           for r in results), 30, "tasks to start")

    worker.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    worker.proc.send_signal(signal.SIGTERM)

    assert worker.proc.wait(15) == 0
    assert "cold shutdown" in worker.output()
    assert not any(r.state is State.SUCCESS for r in results)  # running ones were not awaited
    assert tasks.app.broker.stats()["default"].running == 0

    start_worker("-p", "2", "-t", "8")
    assert wait_all_succeeded(tasks.app, results, timeout=60) == []
    assert set(runs(project)) == {f"c{i}" for i in range(8)}
