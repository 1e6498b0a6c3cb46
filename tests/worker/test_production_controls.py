"""Production controls of `conveyor worker` (issue 14): `--prefetch N`, how many tasks a
worker process holds, and `--max-memory-per-child MB`, which replaces a process whose
memory grew too much. Real worker processes, on SQLite and Redis (and RabbitMQ for the
prefetch)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from conveyor import State, TaskError
from tests.chaos.helpers import account, runs, wait_all_succeeded
from tests.conftest import WorkerProcess

pytestmark = pytest.mark.timeout(180)
Start = Callable[..., WorkerProcess]


def test_prefetch_1_holds_one_task_per_process_and_leaves_the_rest_in_the_queue(
    tasks: ModuleType, start_worker: Start, project: Path
) -> None:
    # Given 4 slow tasks waiting, and a worker of 2 one-thread processes with --prefetch 1
    results = tasks.mark.map([(f"p{i}", 2.0) for i in range(4)])
    worker = start_worker("-p", "2", "-t", "1", "--prefetch", "1")

    # When they run, watched from the queue's side
    seen: list[tuple[int, int]] = []  # (ready, running) of the default queue
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        stats = tasks.app.broker.stats()["default"]
        seen.append((stats.ready, stats.running))
        if stats.ready == stats.running == 0 and all(
                tasks.app.AsyncResult(r.id).state is State.SUCCESS for r in results):
            break
        time.sleep(0.05)

    # Then no process ever held more than the one task it was running: at most 2 were
    # taken at a time, and while 2 ran the other 2 stayed ready for any worker to take
    assert "prefetch 1" in worker.output()  # the banner says so
    assert max(running for _, running in seen) == 2, seen
    assert (2, 2) in seen, seen
    # And every task ran, exactly once
    pending = wait_all_succeeded(tasks.app, results, timeout=30)
    assert pending == [], account(tasks.app, pending)
    assert runs(project) == {f"p{i}": 1 for i in range(4)}


def test_a_process_over_max_memory_per_child_is_replaced_and_loses_nothing(
    tasks: ModuleType, start_worker: Start, project: Path
) -> None:
    # Given tasks that each keep 25 MB more in their process (a fresh one is ~40 MB), and
    # a single worker process allowed 100 MB
    results = tasks.hoard.map([(f"h{i}", 25, 0.2) for i in range(10)])
    worker = start_worker("-p", "1", "-t", "2", "--max-memory-per-child", "100")

    # When they run
    pending = wait_all_succeeded(tasks.app, results, timeout=120)

    # Then every task succeeded, exactly once: nothing lost, nothing run twice
    assert pending == [], account(tasks.app, pending)
    assert runs(project) == {f"h{i}": 1 for i in range(10)}
    # And the process was replaced (warm: no process died) whenever it went over the limit,
    # each time saying so once
    pids = {r.get(timeout=5) for r in results}
    log = worker.output()
    assert len(pids) >= 2, log
    recycled = log.count("over its limit of 100 MB: recycling")
    assert recycled in (len(pids) - 1, len(pids)), log  # the last may be over too, or not
    assert "died" not in log
    assert tasks.app.broker.stats()["default"].running == 0
    # And the worker goes on, with a fresh process
    assert len(worker.wait_for_children(1)) == 1
    assert worker.proc.poll() is None


@pytest.mark.parametrize("project", ["amqp"], indirect=True)
def test_prefetch_1_on_rabbitmq_leaves_the_rest_ready_in_rabbitmq(
    tasks: ModuleType, start_worker: Start, project: Path
) -> None:
    # Given 4 slow tasks on RabbitMQ, and 2 one-thread processes with --prefetch 1
    results = tasks.mark.map([(f"r{i}", 2.0) for i in range(4)])
    start_worker("-p", "2", "-t", "1", "--prefetch", "1")

    # When two have started
    deadline = time.monotonic() + 60
    while sum(tasks.app.AsyncResult(r.id).state is State.STARTED for r in results) < 2:
        assert time.monotonic() < deadline, "two tasks should have started"
        time.sleep(0.05)

    # Then RabbitMQ still holds the other two ready: no process took one ahead of it
    readies = []
    for _ in range(10):
        readies.append(tasks.app.broker.stats()["default"].ready)
        time.sleep(0.05)
    assert readies == [2] * 10
    pending = wait_all_succeeded(tasks.app, results, timeout=30)
    assert pending == [], account(tasks.app, pending)
    assert runs(project) == {f"r{i}": 1 for i in range(4)}


def test_a_per_call_time_limit_stops_that_call_only(
    tasks: ModuleType, start_worker: Start, project: Path
) -> None:
    # Given a task without time limits, called once with a hard limit of 1 s
    start_worker("-p", "1", "-t", "2")
    limited = tasks.sleep.apply_async((30.0,), time_limit=1.0)
    unlimited = tasks.sleep.apply_async((2.5,))

    # Then that call is stopped and fails with TimeLimitExceeded; the other one, which
    # took longer than 1 s, is untouched (handed back if it shared the replaced process)
    with pytest.raises(TaskError) as caught:
        limited.get(timeout=30)
    assert caught.value.type == "TimeLimitExceeded"
    assert unlimited.get(timeout=30) == 2.5


def test_the_prefetch_setting_applies_when_the_command_line_gives_none(
    tasks: ModuleType, start_worker: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_WORKER_PREFETCH", "1")
    worker = start_worker("-p", "1", "-t", "1")
    assert tasks.add.delay(1, 1).get(timeout=30) == 2
    assert "prefetch 1," in worker.output()  # the banner says so, not the adaptive window
