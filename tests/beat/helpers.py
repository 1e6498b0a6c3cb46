"""Real `conveyor` processes on the beat test app, and reading what its ticks recorded."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import ROOT, ConveyorProcess

MODULE = Path(__file__).resolve().parent / "beat_tasks.py"


class Cli(ConveyorProcess):
    """`python -m conveyor ARGS -A beat_tasks` in its own process group, logging to a file."""

    def __init__(self, cwd: Path, args: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), str(ROOT / "src")])}
        super().__init__(cwd, env, [*args, "-A", "beat_tasks"])


@pytest.fixture
def start(project: Path) -> Iterator[Callable[..., Cli]]:
    """`start("beat", "--lease", "2")`: a real process on the beat test app in `project`."""
    (project / "beat_tasks.py").write_text(MODULE.read_text())
    started: list[Cli] = []

    def run(*args: str) -> Cli:
        started.append(Cli(project, list(args)))
        return started[-1]

    yield run
    for cli in started:
        cli.kill()
    module = sys.modules.pop("beat_tasks", None)
    if module is not None:  # imported by a test to read the store
        module.app.close()


def recorded(project: Path) -> list[tuple[float, str]]:
    """(tick, task id) of every run of the `second` task, in the order they ran."""
    log = project / "ticks.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [(datetime.fromisoformat(line.split()[0]).timestamp(), line.split()[1])
            for line in lines if line.strip()]


def assert_each_tick_ran_once(runs: list[tuple[float, str]]) -> list[float]:
    """No tick ran twice, and none is missing between the first and the last."""
    counts = Counter(tick for tick, _ in runs)
    assert max(counts.values()) == 1, [t for t, n in counts.items() if n > 1]
    ticks = sorted(counts)
    missing = [ticks[0] + i for i in range(int(ticks[-1] - ticks[0]) + 1)
               if ticks[0] + i not in counts]
    assert missing == [], f"ticks that never ran: {missing}"
    return ticks


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
