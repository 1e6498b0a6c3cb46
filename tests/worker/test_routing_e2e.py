"""The routing table through real `conveyor worker` processes: a task routed by a glob to
another queue runs on a worker consuming that queue, never on one consuming `default`."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from conveyor import State
from tests.conftest import ConveyorProcess, worker_env

pytestmark = pytest.mark.timeout(120)

MODULE = '''
from conveyor import App

app = App("routed", routes={"mail.*": {"queue": "mailq", "priority": 4}})


@app.task(name="mail.send")
def send(to: str) -> str:
    return f"sent to {to}"


@app.task(name="shop.ping")
def ping() -> str:
    return "pong"
'''


@pytest.fixture
def routed(task_module: Callable[[str, str], ModuleType]) -> ModuleType:
    """`routed_tasks`, in tmp_path, on a SQLite broker there, imported here too."""
    return task_module("routed_tasks", MODULE)


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., ConveyorProcess]]:
    started: list[ConveyorProcess] = []

    def start(*args: str) -> ConveyorProcess:
        started.append(ConveyorProcess(tmp_path, worker_env(tmp_path),
                                       ["worker", "-A", "routed_tasks", *args]))
        return started[-1]

    yield start
    for worker in started:
        worker.kill()


def status() -> dict[str, list[str]]:
    """`conveyor status`'s queue table, by queue name."""
    done = subprocess.run([sys.executable, "-m", "conveyor", "status", "-A", "routed_tasks"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    table = done.stdout.split("\n\n")[1]  # after the store's line
    rows = [line.split() for line in table.splitlines()[1:]]
    return {row[0]: row[1:] for row in rows if row}


def test_a_routed_task_runs_only_on_a_worker_of_its_queue(
        routed: ModuleType, start_worker: Callable[..., ConveyorProcess]) -> None:
    default_worker = start_worker("-p", "1", "-Q", "default")
    sent = routed.send.delay("ada")
    pong = routed.ping.delay()

    assert pong.get(timeout=30) == "pong"  # the default worker is up and taking tasks
    time.sleep(1.0)  # a few more reserve rounds: it still never takes mail.send
    assert sent.state is State.PENDING
    assert status()["mailq"][0] == "1"  # READY: waiting in its routed queue

    start_worker("-p", "1", "-Q", "mailq")
    assert sent.get(timeout=30) == "sent to ada"
    assert status()["mailq"][0] == "0"
    ran = [line for line in default_worker.output().splitlines()  # but its start-up warning
           if "mail.send" in line and "doesn't consume" not in line]
    assert ran == []
