"""Operating a worker by its log and `conveyor status`: retries, failures, shutdown and
process names in the log; running told from reserved; a dead process leaving the list;
tasks handed back showing as waiting again."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from types import ModuleType

import pytest

from conveyor import State
from tests.chaos.helpers import wait_until
from tests.conftest import WorkerProcess

pytestmark = pytest.mark.timeout(180)
Start = Callable[..., WorkerProcess]


def test_the_log_tells_retries_failures_shutdown_and_which_process(
    tasks: ModuleType, start_worker: Start
) -> None:
    # Given a worker, a task that fails once then succeeds, and one that fails for good
    worker = start_worker("-p", "1", "-t", "2")
    flaky = tasks.flaky.delay("log-flaky", 2)
    failed = tasks.fail.delay("kaput-for-the-log")
    assert flaky.get(timeout=60) == 2
    wait_until(lambda: failed.state is State.FAILURE, 60, "the failing task to fail")

    # When it is stopped warm
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(30) == 0
    log = worker.output()

    # Then the retry says when and why, the failure's traceback shows once, and each
    # line names its process; the worker process and the supervisor say they stopped
    assert f"task {flaky.id} (e2e_tasks.flaky) attempt 1 failed (" in log
    assert "retrying at" in log
    assert log.count('raise ValueError(message)') == 1
    assert f"task {failed.id} (e2e_tasks.fail) failed for good" in log
    assert "worker-1[" in log and "supervisor[" in log
    assert "MainProcess" not in log
    assert "stopped: " in log and log.rstrip().endswith("conveyor.supervisor: stopped")


def test_status_tells_running_tasks_from_reserved_ones(
    tasks: ModuleType, start_worker: Start
) -> None:
    # Given a worker with 2 threads (prefetch 4) and more slow tasks than it can hold
    start_worker("-p", "1", "-t", "2")
    results = tasks.sleep.map([(4.0,) for _ in range(6)])

    # Then the worker reports 2 running and 2 reserved ahead, soon after they start
    def split() -> bool:
        workers = tasks.app.broker.workers()
        return bool(workers) and (workers[0].running, workers[0].reserved) == (2, 2)

    wait_until(split, 30, "2 running and 2 reserved")
    worker = tasks.app.broker.workers()[0]
    assert worker.started_by_queue == {"default": 2}
    assert worker.running_by_queue == {"default": 4}
    for result in results:
        result.revoke()


def test_a_cold_shutdown_leaves_handed_back_tasks_waiting_not_started(
    tasks: ModuleType, start_worker: Start
) -> None:
    # Given tasks running on a worker
    results = tasks.mark.map([(f"cold{i}", 20.0) for i in range(4)])
    worker = start_worker("-p", "1", "-t", "2", "--grace", "60")
    wait_until(lambda: sum(r.state is State.STARTED for r in results) == 2, 30,
               "two tasks to start")

    # When it is stopped cold (two signals)
    worker.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(30) == 0

    # Then none shows STARTED: they wait again, ready in the queue
    assert [r.state for r in results] == [State.PENDING] * 4
    assert tasks.app.broker.stats()["default"].ready == 4


def test_a_killed_worker_process_leaves_status_when_it_is_replaced(
    tasks: ModuleType, start_worker: Start
) -> None:
    # Given a worker of two processes, both listed
    start_worker("-p", "2", "-t", "1")
    wait_until(lambda: len(tasks.app.broker.workers()) == 2, 60, "two worker processes")
    before = {w.id for w in tasks.app.broker.workers()}
    victim = tasks.app.broker.workers()[0]

    # When one is SIGKILLed (it can't deregister itself)
    os.kill(victim.pid, signal.SIGKILL)

    # Then once its replacement is listed, the dead one is not (its replacement dropped
    # it before its own first heartbeat), without waiting for its heartbeat to expire
    def replaced() -> bool:
        return any(w.id not in before for w in tasks.app.broker.workers())

    wait_until(replaced, 60, "the replacement to be listed")
    assert victim.id not in [w.id for w in tasks.app.broker.workers()]
