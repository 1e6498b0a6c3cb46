"""Runtime schedules with real processes, on SQLite and on Redis: `conveyor schedule`
adds, pauses, resumes and removes a schedule while a worker and two beats run; its ticks
run on the worker once each, beside the schedule in code."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.beat.helpers import wait_for
from tests.conftest import ROOT, ConveyorProcess

pytestmark = pytest.mark.timeout(120)
MODULE = Path(__file__).resolve().parent / "runtime_tasks.py"
SEEN = 1.5  # a change reaches the leading beat within lease/3 (0.67 s here), plus margin


def env(cwd: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), str(ROOT / "src")])}


@pytest.fixture
def cluster(project: Path) -> Iterator[list[ConveyorProcess]]:
    """A worker and two beats with a 2 s lease on the runtime test app."""
    (project / "runtime_tasks.py").write_text(MODULE.read_text())
    started = [ConveyorProcess(project, env(project), [*args, "-A", "runtime_tasks"])
               for args in (["worker", "-p", "1"], ["beat", "--lease", "2"],
                            ["beat", "--lease", "2"])]
    yield started
    for process in started:
        process.kill()


def schedule(project: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "conveyor", "schedule", "-A",
                           "runtime_tasks", *args], cwd=project, env=env(project),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def runs(project: Path, name: str) -> list[float]:
    """The ticks of schedule `name` that ran, in the order they ran."""
    log = project / "ticks.log"
    lines = log.read_text().split("\n")[:-1] if log.exists() else []
    return [datetime.fromisoformat(line.split()[1]).timestamp() for line in lines
            if line.split()[0] == name]


def test_a_schedule_changed_from_the_command_line_runs_once_per_tick(
    project: Path, cluster: list[ConveyorProcess],
) -> None:
    # Given a worker and two beats running the schedule in code
    wait_for(lambda: len(runs(project, "code")) >= 2, 30, "the code schedule to run")

    # When a schedule is added at run time, every second
    added_at = time.time()
    assert schedule(project, "add", "rt", "runtime_tasks.record", "--every", "1s").startswith(
        "rt: runtime_tasks.record every 1s, next run ")
    wait_for(lambda: len(runs(project, "rt")) >= 3, 20, "the added schedule to run")
    assert min(runs(project, "rt")) > added_at

    # When it is paused for 3 s, then resumed
    assert schedule(project, "pause", "rt") == "paused rt\n"
    paused_at = time.time()
    time.sleep(3)
    assert "paused  runtime" in schedule(project, "list")
    resuming_at = time.time()  # the command stores the resume after this, then exits
    assert schedule(project, "resume", "rt") == "resumed rt\n"
    wait_for(lambda: max(runs(project, "rt")) > time.time() - 1, 20, "ticks after the resume")

    # When it is removed
    assert schedule(project, "remove", "rt") == "removed rt\n"
    removed_at = time.time()
    time.sleep(SEEN + 2)

    # Then it ran at each tick once, none while paused or once removed, and the schedule
    # in code never stopped
    ticks = runs(project, "rt")
    assert max(Counter(ticks).values()) == 1
    assert [t for t in ticks if paused_at + SEEN < t <= resuming_at] == []
    assert [t for t in ticks if t > removed_at + SEEN] == []
    code = sorted(runs(project, "code"))
    assert max(Counter(code).values()) == 1
    assert code == [code[0] + i for i in range(len(code))] and code[-1] > removed_at
