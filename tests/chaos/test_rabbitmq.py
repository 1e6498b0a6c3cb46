"""RabbitMQ under stress: workers SIGKILLed mid-run, and RabbitMQ itself stopped and
started again while producers and workers are busy. Afterwards every task whose delay()
returned has run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.chaos.helpers import account, runs, wait_all_succeeded, wait_until
from tests.chaos.test_redis_restart import Producer
from tests.conftest import WorkerProcess

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow,
              pytest.mark.parametrize("project", ["amqp"], indirect=True)]
Start = Callable[..., WorkerProcess]


@pytest.fixture
def tasks(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("CONVEYOR_LEASE_SECONDS", "3")
    monkeypatch.setenv("CONVEYOR_BROKER_URL",
                       os.environ["CONVEYOR_BROKER_URL"] + "&publish_timeout=60")
    import e2e_tasks

    yield e2e_tasks
    e2e_tasks.app.close()


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


def test_sigkill_of_worker_processes_mid_run_loses_nothing(
        tasks: ModuleType, start_worker: Start, project: Path) -> None:
    results = tasks.mark.map([(f"k{i}", 0.002) for i in range(2000)])
    worker = start_worker("-p", "2", "-t", "4")
    wait_until(lambda: sum(runs(project).values()) > 200, 60, "work to start")

    rng = random.Random(11)
    for _ in range(5):
        pids = worker.wait_for_children(2)
        os.kill(rng.choice(pids), signal.SIGKILL)
        time.sleep(0.4)

    pending = wait_all_succeeded(tasks.app, results, timeout=180)
    assert not pending, account(tasks.app, pending)
    counts = runs(project)
    assert all(counts[f"k{i}"] >= 1 for i in range(2000))


def test_rabbitmq_stopped_and_started_mid_run_loses_no_accepted_task(
        tasks: ModuleType, start_worker: Start, project: Path) -> None:
    # Given a busy worker and a busy producer
    first = tasks.mark.map([(f"m{i}", 0.002) for i in range(1000)])
    start_worker("-p", "2", "-t", "4")
    producer = Producer(tasks.mark, 400, "p")
    producer.start()
    wait_until(lambda: sum(runs(project).values()) > 100, 60, "work to start")

    # When RabbitMQ's application stops for a few seconds and starts again
    try:
        rabbitmqctl("stop_app")
        time.sleep(3.0)
    finally:
        rabbitmqctl("start_app")
    producer.join(180)

    # Then the producer was never refused, and every accepted task completes
    assert producer.errors == []
    pending = wait_all_succeeded(tasks.app, first + producer.accepted, timeout=180)
    assert not pending, account(tasks.app, pending)
    counts = runs(project)
    assert all(counts[f"m{i}"] >= 1 for i in range(1000))
    assert all(counts[f"p{i}"] >= 1 for i in range(400))


@pytest.fixture
def short_consumer_timeout() -> Iterator[None]:
    """RabbitMQ closing channels whose deliveries are held over 3 s (checked every 0.5 s),
    for channels opened from now on; the server's settings come back afterwards."""
    def set_env(key: str, value: int) -> None:
        rabbitmqctl("eval", f"application:set_env(rabbit, {key}, {value}).")

    set_env("consumer_timeout", 3000)
    set_env("channel_tick_interval", 500)
    try:
        yield
    finally:
        set_env("consumer_timeout", 1_800_000)
        set_env("channel_tick_interval", 60_000)


def test_a_task_running_longer_than_consumer_timeout_runs_once(
        tasks: ModuleType, start_worker: Start, project: Path,
        short_consumer_timeout: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a worker told the server's consumer_timeout (3 s)
    monkeypatch.setenv("CONVEYOR_BROKER_URL",
                       os.environ["CONVEYOR_BROKER_URL"] + "&consumer_timeout=3")
    start_worker("-p", "1", "-t", "4")

    # When one task runs for 8 s, well past it, while short ones come and go
    sent = time.monotonic()
    long = tasks.mark.delay("long", 8.0)
    short = [tasks.mark.delay(f"s{i}", 0.05) for i in range(40)]
    time.sleep(4.0)
    more = tasks.mark.map([(f"t{i}", 0.01) for i in range(100)])

    # Then the long task finished once, its channel never closed under it, and the
    # others all ran
    assert long.get(timeout=60) == "long"
    pending = wait_all_succeeded(tasks.app, short + more, timeout=60)
    assert not pending, account(tasks.app, pending)
    time.sleep(max(0.0, sent + 14.0 - time.monotonic()))  # a copy redelivered at 3-6 s ends by now
    counts = runs(project)
    assert counts["long"] == 1
    assert all(counts[f"s{i}"] == 1 for i in range(40))
