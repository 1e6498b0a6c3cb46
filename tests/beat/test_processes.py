"""`conveyor beat`, `conveyor worker --beat` and `conveyor status` as real processes, on
SQLite and on Redis: the ticks they publish run on a real worker, each once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor.beat.scheduler import read_alive
from tests.beat.helpers import Cli, assert_each_tick_ran_once, recorded, start, wait_for

pytestmark = pytest.mark.timeout(120)
Start = Callable[..., Cli]
__all__ = ["start"]


def status() -> str:
    done = subprocess.run([sys.executable, "-m", "conveyor", "status", "-A", "beat_tasks"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def row(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(name + " "))


def leader_pid() -> int | None:
    import beat_tasks

    alive = read_alive(beat_tasks.app)
    if alive is None or alive.stopped or alive.until < time.time():
        return None
    return int(alive.beat.split(":")[1])


def test_beat_publishes_ticks_a_worker_runs_and_status_shows_them(
    project: Path, start: Start
) -> None:
    # Given the app's schedules, which status lists before any beat ran
    start("worker", "-p", "1")
    before = status()
    assert "no beat has run yet" in before
    assert "every 1s" in row(before, "second") and row(before, "second").endswith("-")
    assert "beat_tasks.nightly  cron 0 3 * * *" in row(before, "nightly")

    # When a beat runs for a few ticks, then is stopped
    beat = start("beat", "--lease", "2")
    wait_for(lambda: len(recorded(project)) >= 3, 30, "three ticks to run")
    assert beat.stop() == 0

    # Then each tick ran once, the beat let go of its lock, and status shows the last run
    assert_each_tick_ran_once(recorded(project))
    assert "released the lock" in beat.output()
    after = status()
    assert "stopped" in after and " UTC (" in row(after, "second").split("every 1s")[1]
    assert row(after, "nightly").endswith("-")  # scheduled, never ran


def test_worker_with_beat_runs_the_ticks(project: Path, start: Start) -> None:
    worker = start("worker", "-p", "1", "--beat", "--beat-lease", "2")

    wait_for(lambda: len(recorded(project)) >= 3, 30, "three ticks to run")
    assert worker.stop() == 0

    assert_each_tick_ran_once(recorded(project))
    assert "with beat" in worker.output() and "released the lock" in worker.output()


def test_a_stopped_beat_hands_over_at_once(project: Path, start: Start) -> None:
    # Given two beats with a long lease (a dead one would hold the lock for 30 s)
    start("worker", "-p", "1")
    beats = [start("beat", "--lease", "30") for _ in range(2)]
    wait_for(lambda: len(recorded(project)) >= 2 and leader_pid(), 30, "a leader's ticks")
    pid = leader_pid()
    leader = next(b for b in beats if b.proc.pid == pid)

    # When the leader is stopped (SIGTERM)
    os.kill(leader.proc.pid, signal.SIGTERM)
    assert leader.proc.wait(10) == 0
    stopped_at = time.time()
    wait_for(lambda: leader_pid() not in (None, pid), 5, "the other beat to lead")
    time.sleep(2.5)

    # Then the other beat took over within a second or so, with no tick missed or repeated
    ticks = assert_each_tick_ran_once(recorded(project))
    assert ticks[-1] > stopped_at + 1


def test_a_beat_refuses_a_schedule_naming_an_unknown_task(project: Path) -> None:
    (project / "bad_beat.py").write_text(
        "from conveyor import App\n"
        "app = App('bad', beat_schedule={'x': {'task': 'no.such', 'schedule': 60}})\n")

    done = subprocess.run([sys.executable, "-m", "conveyor", "beat", "-A", "bad_beat"],
                          capture_output=True, text=True, timeout=60)

    assert done.returncode != 0
    assert "periodic task 'x' names task 'no.such', which is not registered" in done.stderr


def test_the_beat_process_of_a_worker_stops_when_its_supervisor_dies(
    project: Path, start: Start
) -> None:
    worker = start("worker", "-p", "1", "--beat", "--beat-lease", "30")
    wait_for(lambda: len(recorded(project)) >= 1 and leader_pid(), 30, "the beat to lead")
    beat_pid = leader_pid()

    os.kill(worker.proc.pid, signal.SIGKILL)  # the supervisor alone, not its group

    # the orphaned beat notices, frees its lock (not held for 30 s) and exits
    wait_for(lambda: leader_pid() is None, 10, "the beat to let go of its lock")
    assert beat_pid is not None
    wait_for(lambda: not Path(f"/proc/{beat_pid}").exists()
             or "zombie" in Path(f"/proc/{beat_pid}/status").read_text().lower(),
             10, "the beat process to exit")
