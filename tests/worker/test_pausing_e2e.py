"""Pausing and resuming a queue (issue 14) with a real `conveyor worker`, on SQLite and
Redis: a paused queue's tasks wait, ready, while the worker's other queue goes on; once
resumed they all run, each exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from conveyor import AsyncResult, State
from tests.chaos.helpers import account, runs, wait_all_succeeded
from tests.conftest import WorkerProcess

pytestmark = pytest.mark.timeout(180)
Start = Callable[..., WorkerProcess]


def assert_none_runs_for(tasks: ModuleType, project: Path, waiting: list[AsyncResult[str]],
                         seconds: float) -> None:
    """For `seconds`, none of `waiting` starts: all PENDING, all ready in the queue."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert runs(project) == {}
        assert {r.state for r in waiting} == {State.PENDING}
        stats = tasks.app.broker.stats()["default"]
        assert (stats.ready, stats.running) == (len(waiting), 0)
        time.sleep(0.25)


def resume_and_check_all_run_once(tasks: ModuleType, project: Path,
                                  waiting: list[AsyncResult[str]]) -> None:
    resumed = time.monotonic()
    assert tasks.app.resume("default") is True
    pending = wait_all_succeeded(tasks.app, waiting, timeout=30)
    assert pending == [], account(tasks.app, pending)
    assert time.monotonic() - resumed < 5  # within a second, plus the tasks themselves
    assert runs(project) == {f"m{i}": 1 for i in range(len(waiting))}
    assert tasks.app.broker.stats()["default"].ready == 0


def test_a_worker_started_on_a_paused_queue_takes_only_its_other_queue(
    tasks: ModuleType, start_worker: Start, project: Path
) -> None:
    # Given "default" paused before any worker runs
    assert tasks.app.pause("default") is True
    worker = start_worker("-p", "1", "-t", "2", "-Q", "default,other")

    # When tasks are sent to it, and one to the worker's other queue
    waiting = tasks.mark.map([(f"m{i}", 0.0) for i in range(5)])
    other = tasks.other_queue.delay()

    # Then the other queue's task runs, while for 5 s none of the paused queue's does
    assert other.get(timeout=30) == "other", worker.output()
    assert_none_runs_for(tasks, project, waiting, seconds=5.0)
    assert worker.proc.poll() is None  # idle, not dead
    assert "queue default is paused" in worker.output()

    # And once resumed, all of them run, promptly, each exactly once
    resume_and_check_all_run_once(tasks, project, waiting)


def test_pausing_a_running_workers_queue_stops_it_within_a_second(
    tasks: ModuleType, start_worker: Start, project: Path
) -> None:
    # Given a worker that is up and taking "default"
    worker = start_worker("-p", "1", "-t", "2", "-Q", "default")
    assert tasks.add.delay(1, 2).get(timeout=30) == 3, worker.output()

    # When the queue is paused, and a second later (every queue of the worker paused)
    # tasks are sent to it
    tasks.app.pause("default")
    time.sleep(1.0)
    waiting = tasks.mark.map([(f"m{i}", 0.0) for i in range(5)])

    # Then none runs while it stays paused
    assert_none_runs_for(tasks, project, waiting, seconds=5.0)

    # And once resumed, all of them run, promptly, each exactly once
    resume_and_check_all_run_once(tasks, project, waiting)
    assert worker.proc.poll() is None
