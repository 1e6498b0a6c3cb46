"""SIGKILL the leading `conveyor beat` again and again while another runs: every tick of a
once-a-second schedule runs on the worker exactly once, none missing from first to last."""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.beat.helpers import Cli, assert_each_tick_ran_once, recorded, start, wait_for
from tests.beat.test_processes import leader_pid

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]
Start = Callable[..., Cli]
__all__ = ["start"]
LEASE = "2"


def test_sigkill_of_the_leading_beat_hands_over_without_a_gap_or_a_repeat(
    project: Path, start: Start
) -> None:
    # Given a worker and two beats (lease 2 s) publishing a tick a second
    start("worker", "-p", "1", "-t", "4")
    beats = [start("beat", "--lease", LEASE) for _ in range(2)]
    wait_for(lambda: len(recorded(project)) >= 3 and leader_pid(), 30, "ticks to run")

    # When the leader is SIGKILLed three times (a fresh beat replaces each one killed)
    killed = []
    for _ in range(3):
        pid = leader_pid()
        leader = next(b for b in beats if b.proc.pid == pid)
        leader.proc.send_signal(signal.SIGKILL)
        leader.proc.wait(10)
        killed.append(pid)
        beats.remove(leader)
        beats.append(start("beat", "--lease", LEASE))
        wait_for(lambda: leader_pid() not in (None, *killed), 15, "a new leader")
        time.sleep(2.5)
    time.sleep(2)
    end = time.time()
    for beat in beats:
        assert beat.stop() == 0

    # Then the ticks run each once, with none missing; the last ones are recent
    wait_for(lambda: recorded(project)[-1][0] >= end - 3, 20, "the last ticks to run")
    ticks = assert_each_tick_ran_once(recorded(project))
    assert len(ticks) >= 12
    # ... and beats published a tick twice at most in each killed leader's last pass
    logs = "".join(p.read_text(errors="replace") for p in project.glob("beat-*.log"))
    published = Counter(re.findall(r"second@(\S+)", logs))
    assert sum(n - 1 for n in published.values()) <= len(killed), published
    assert os.path.exists(project / "ticks.log")
