"""Stopping running tasks through real workers: `revoke(terminate=True)` of sync, async
and blocked tasks, and a hard time limit enforced by the supervisor on a task that holds
the GIL inside C code (so its own process can't enforce anything)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conveyor import State, TaskError
from tests.conftest import WorkerProcess

pytestmark = pytest.mark.timeout(120)
EVERY_BROKER = pytest.mark.parametrize("project", ["sqlite", "redis", "amqp"], indirect=True)
Start = Callable[..., WorkerProcess]


def started(result: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while result.state is not State.STARTED:
        assert time.monotonic() < deadline, f"{result.id} never started: {result.state}"
        time.sleep(0.05)


def replaced(worker: WorkerProcess, before: list[int], timeout: float = 15.0) -> bool:
    """Whether the supervisor replaced the process(es) `before` (a dead one may linger a
    moment as a zombie until the supervisor reaps it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = worker.children()
        if now and not set(now) & set(before):
            return True
        time.sleep(0.1)
    return False


def runs(log: str) -> int:
    path = Path(log)
    return len(path.read_text().splitlines()) if path.exists() else 0


@EVERY_BROKER
@pytest.mark.parametrize("task", ["stoppable", "async_stoppable"])
def test_terminate_stops_a_running_task_which_ends_revoked_and_never_runs_again(
    tasks: ModuleType, start_worker: Start, task: str
) -> None:
    # Given a long task running next to another one in the same process
    worker = start_worker("-p", "1", "-t", "2")
    long = getattr(tasks, task).delay(60)
    started(long)
    before = worker.children()  # the process running it
    neighbour = tasks.sleep.delay(1.0)

    # When it is revoked with terminate
    asked = time.monotonic()
    assert long.revoke(terminate=True) is True

    # Then it ends REVOKED within seconds, in the same process, and never runs again
    with pytest.raises(TaskError) as caught:
        long.get(timeout=15)
    assert caught.value.type == "TaskRevoked"
    assert "terminated" in caught.value.message
    assert time.monotonic() - asked < 10
    assert neighbour.get(timeout=30) == 1.0
    assert worker.children() == before, worker.output()  # the process goes on
    time.sleep(0.5)
    assert long.state is State.REVOKED
    assert runs("stoppable.log") == 1


# Replacing a process hands its tasks back through the broker: leases on SQLite (as on
# Redis), the connection on RabbitMQ. The two kinds suffice for these slower tests.
BY_LEASE_OR_CONNECTION = pytest.mark.parametrize("project", ["sqlite", "amqp"], indirect=True)


@BY_LEASE_OR_CONNECTION
def test_a_task_that_does_not_stop_when_asked_is_stopped_by_replacing_its_process(
    tasks: ModuleType, start_worker: Start
) -> None:
    # Given a task blocked in one long sleep (nothing can be raised inside it)
    worker = start_worker("-p", "1", "-t", "2")
    long = tasks.blocked.delay(60)
    started(long)
    before = worker.children()
    neighbour = tasks.sleep.delay(2.0)

    # When it is revoked with terminate
    assert tasks.app.revoke([long.id], terminate=True) == [long.id]

    # Then its process is replaced: it ends REVOKED, the other task still runs
    with pytest.raises(TaskError) as caught:
        long.get(timeout=20)
    assert caught.value.type == "TaskRevoked"
    assert neighbour.get(timeout=60) == 2.0
    assert replaced(worker, before), worker.output()
    time.sleep(0.5)
    assert runs("stoppable.log") == 1


@pytest.mark.parametrize("project", ["sqlite"], indirect=True)
def test_cli_revoke_terminate_says_what_it_did(tasks: ModuleType, start_worker: Start) -> None:
    start_worker("-p", "1")
    running = tasks.stoppable.delay(60)
    started(running)
    waiting = tasks.add.apply_async((1, 2), countdown=600)
    done = tasks.add.delay(2, 2)
    assert done.get(timeout=30) == 4

    cli = subprocess.run([sys.executable, "-m", "conveyor", "revoke", "-A", "e2e_tasks",
                          "--terminate", running.id, waiting.id, done.id],
                         capture_output=True, text=True, timeout=60)

    assert cli.returncode == 1  # one id was left alone
    assert f"{running.id}: running: asked to stop" in cli.stdout
    assert f"{waiting.id}: revoked" in cli.stdout
    assert f"{done.id}: not waiting or running" in cli.stdout
    with pytest.raises(TaskError, match="TaskRevoked"):
        running.get(timeout=15)
    assert done.get(timeout=5) == 4


@BY_LEASE_OR_CONNECTION
def test_the_supervisor_stops_a_task_holding_the_gil_past_its_hard_limit(
    tasks: ModuleType, start_worker: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a task with a 1 s hard limit that holds the GIL in C code for hours, and a
    # neighbour in the same process (short leases: on SQLite and Redis it comes back
    # when its lease runs out; RabbitMQ hands it back as the connection drops)
    monkeypatch.setenv("CONVEYOR_LEASE_SECONDS", "2")
    worker = start_worker("-p", "1", "-t", "2")
    neighbour = tasks.sleep.delay(3.0)
    stuck = tasks.stuck_in_c.delay()
    deadline = time.monotonic() + 20  # STARTED may never be written: nothing else runs
    while runs("stuck.log") == 0:
        assert time.monotonic() < deadline, worker.output()
        time.sleep(0.05)
    before = worker.children()

    # Then the supervisor replaces the process within seconds of the limit: the task
    # fails with TimeLimitExceeded, never runs again, and the neighbour is not lost
    with pytest.raises(TaskError) as caught:
        stuck.get(timeout=30)
    assert caught.value.type == "TimeLimitExceeded"
    assert neighbour.get(timeout=60) == 3.0
    assert replaced(worker, before), worker.output()
    time.sleep(0.5)
    assert stuck.state is State.FAILURE
    assert runs("stuck.log") == 1
    assert "is stuck" in worker.output()
