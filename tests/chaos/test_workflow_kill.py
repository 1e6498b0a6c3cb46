"""SIGKILL workers in the middle of chords and chains: the callback still fires, once."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from conveyor import chain, chord
from tests.chaos.helpers import runs, wait_until
from tests.conftest import WorkerProcess

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow,
              pytest.mark.parametrize("project", ["sqlite", "redis", "amqp"], indirect=True)]
Start = Callable[..., WorkerProcess]


@pytest.fixture
def tasks(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("CONVEYOR_LEASE_SECONDS", "2")  # dead workers' tasks return fast
    import e2e_tasks

    yield e2e_tasks
    e2e_tasks.app.close()


def test_a_chord_whose_members_are_killed_mid_run_fires_once_with_every_value(
    tasks: ModuleType, start_worker: Start, project: Path
) -> None:
    # Given a chord of slow members running on a worker
    size = 300
    result = chord([tasks.slow_add.s(i, 1, 0.1) for i in range(size)],
                   tasks.tally.s("chaos")).delay()
    worker = start_worker("-p", "2", "-t", "4")
    wait_until(lambda: sum(runs(project).values()) > 30, 60, "members to start")

    # When its processes are SIGKILLed again and again while members run
    rng = random.Random(11)
    for _ in range(5):
        os.kill(rng.choice(worker.wait_for_children(2)), signal.SIGKILL)
        time.sleep(0.5)

    # Then the callback gets every member's value, and runs exactly once
    assert result.get(timeout=180) == sum(i + 1 for i in range(size))
    counts = runs(project)
    assert all(counts[f"slow_add-{i}"] >= 1 for i in range(size))
    starts = (project / "starts.log").read_text().split()
    assert len(starts) > size, "no member was cut short and re-run: the kills missed"
    time.sleep(1.0)  # a second callback would show up here
    assert (project / "tally-chaos.log").read_text().split() == [str(size)]


def test_a_chain_survives_its_worker_being_killed_between_steps(
    tasks: ModuleType, start_worker: Start, project: Path
) -> None:
    # Given many chains of slow steps on a worker whose processes keep dying
    chains = [chain(tasks.slow_add.s(i, 1, 0.05), tasks.add.s(10), tasks.add.s(100)).delay()
              for i in range(40)]
    worker = start_worker("-p", "2", "-t", "2")
    wait_until(lambda: sum(runs(project).values()) > 5, 60, "chains to start")
    for _ in range(4):
        os.kill(random.choice(worker.wait_for_children(2)), signal.SIGKILL)
        time.sleep(0.4)

    # Then every chain ends with the value of all its steps
    assert [r.get(timeout=180) for r in chains] == [i + 111 for i in range(40)]
