"""SIGKILL workers in the middle of a run: every accepted task still completes."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.chaos.helpers import runs, wait_all_succeeded, wait_until
from tests.conftest import WorkerProcess

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]
Start = Callable[..., WorkerProcess]
LEASE = "2"


@pytest.fixture
def tasks(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("CONVEYOR_LEASE_SECONDS", LEASE)  # dead workers' tasks return fast
    import e2e_tasks

    yield e2e_tasks
    e2e_tasks.app.close()


def test_sigkill_of_worker_processes_mid_run_loses_nothing(
    tasks: ModuleType, start_worker: Start, project: Path
) -> None:
    # Given thousands of accepted tasks and a worker busy with them
    results = tasks.mark.map([(f"k{i}", 0.002) for i in range(3000)])
    worker = start_worker("-p", "2", "-t", "4")
    wait_until(lambda: sum(runs(project).values()) > 200, 60, "work to start")

    # When its processes are SIGKILLed again and again (the supervisor restarts them)
    rng = random.Random(7)
    for _ in range(6):
        pids = worker.wait_for_children(2)
        os.kill(rng.choice(pids), signal.SIGKILL)
        time.sleep(0.4)

    # Then every task ends SUCCESS, and each ran at least once
    assert wait_all_succeeded(tasks.app, results, timeout=180) == []
    counts = runs(project)
    assert all(counts[f"k{i}"] >= 1 for i in range(3000))
    assert tasks.app.broker.stats()["default"].dead == 0


def test_sigkill_of_the_whole_worker_group_then_a_new_worker_finishes(
    tasks: ModuleType, start_worker: Start, project: Path
) -> None:
    results = tasks.mark.map([(f"g{i}", 0.01) for i in range(500)])
    first = start_worker("-p", "2", "-t", "4")
    wait_until(lambda: sum(runs(project).values()) > 50, 60, "work to start")

    first.kill()  # SIGKILL to supervisor and children at once
    done_before = sum(runs(project).values())
    assert done_before < 500
    start_worker("-p", "2", "-t", "4")

    assert wait_all_succeeded(tasks.app, results, timeout=120) == []
    assert set(runs(project)) == {f"g{i}" for i in range(500)}


def test_killing_the_supervisor_alone_makes_children_hand_back_and_exit(
    tasks: ModuleType, start_worker: Start, project: Path
) -> None:
    results = tasks.mark.map([(f"s{i}", 0.05) for i in range(200)])
    worker = start_worker("-p", "2", "-t", "2")
    children = worker.wait_for_children(2)
    wait_until(lambda: sum(runs(project).values()) > 10, 60, "work to start")

    os.kill(worker.proc.pid, signal.SIGKILL)

    def children_gone() -> bool:
        for pid in children:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            return False
        return True

    wait_until(children_gone, 20, "orphaned worker processes to exit")
    start_worker("-p", "2", "-t", "4")
    assert wait_all_succeeded(tasks.app, results, timeout=120) == []
