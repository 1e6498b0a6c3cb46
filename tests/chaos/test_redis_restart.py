"""Redis goes away mid-run (killed and restarted, or failed over) while producers and
workers are busy: afterwards every task whose delay() returned is done."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from conveyor import AsyncResult
from tests.chaos.helpers import account, runs, wait_all_succeeded, wait_until
from tests.conftest import WorkerProcess
from tests.redis_servers import RedisSentinelSetup, RedisServer

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]
Start = Callable[..., WorkerProcess]


class Producer(threading.Thread):
    """Enqueues `count` tasks one by one; keeps the results of the delay() calls that
    returned (those are the tasks Conveyor accepted) and counts the ones that raised."""

    def __init__(self, task: object, count: int, prefix: str) -> None:
        super().__init__(daemon=True)
        self.task, self.count, self.prefix = task, count, prefix
        self.accepted: list[AsyncResult[str]] = []
        self.refused = 0
        self.errors: list[str] = []

    def run(self) -> None:
        for i in range(self.count):
            try:
                self.accepted.append(self.task.delay(f"{self.prefix}{i}"))  # type: ignore[attr-defined]
            except Exception as exc:
                self.refused += 1
                self.errors.append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")
            time.sleep(0.002)


def broker_env(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("CONVEYOR_BROKER_URL", url)
    monkeypatch.setenv("CONVEYOR_LEASE_SECONDS", "3")


@pytest.fixture
def tasks_on(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str],
                                                                                   ModuleType]]:
    loaded: list[ModuleType] = []

    def load(url: str) -> ModuleType:
        broker_env(monkeypatch, url)
        import e2e_tasks

        loaded.append(e2e_tasks)
        return e2e_tasks

    yield load
    for module in loaded:
        module.app.close()


@pytest.mark.parametrize("project", ["sqlite"], indirect=True)  # only for its directory
def test_redis_killed_and_restarted_mid_run_loses_no_accepted_task(
    tasks_on: Callable[[str], ModuleType], own_redis: RedisServer, redis_namespace: str,
    start_worker: Start, project: Path,
) -> None:
    # Given a Redis with append-only persistence, a busy worker and a busy producer
    url = own_redis.url(redis_namespace) + "&publish_timeout=30"
    tasks = tasks_on(url)
    first = tasks.mark.map([(f"m{i}", 0.002) for i in range(1000)])
    start_worker("-p", "2", "-t", "4")
    producer = Producer(tasks.mark, 600, "p")
    producer.start()
    wait_until(lambda: sum(runs(project).values()) > 100, 60, "work to start")

    # When Redis is SIGKILLed and comes back a moment later
    own_redis.kill()
    time.sleep(1.0)
    own_redis.start()
    producer.join(120)

    # Then every accepted task completes, and the producer was never refused
    assert producer.errors == []
    pending = wait_all_succeeded(tasks.app, first + producer.accepted, timeout=180)
    assert not pending, account(tasks.app, pending)
    counts = runs(project)
    assert all(counts[f"m{i}"] >= 1 for i in range(1000))
    assert all(counts[f"p{i}"] >= 1 for i in range(600))


@pytest.mark.parametrize("project", ["sqlite"], indirect=True)  # only for its directory
def test_sentinel_failover_mid_run_loses_no_accepted_task(
    tasks_on: Callable[[str], ModuleType], redis_sentinel: RedisSentinelSetup,
    redis_namespace: str, start_worker: Start, project: Path,
) -> None:
    # replicas=1: a write counts once the replica has it, so the failover can't undo it
    url = redis_sentinel.url(redis_namespace) + "&publish_timeout=30&replicas=1"
    tasks = tasks_on(url)
    first = tasks.mark.map([(f"f{i}", 0.002) for i in range(500)])
    start_worker("-p", "2", "-t", "4")
    producer = Producer(tasks.mark, 300, "q")
    producer.start()
    wait_until(lambda: sum(runs(project).values()) > 50, 60, "work to start")

    redis_sentinel.failover()
    producer.join(120)

    assert producer.errors == []
    pending = wait_all_succeeded(tasks.app, first + producer.accepted, timeout=60)
    assert not pending, account(tasks.app, pending)
