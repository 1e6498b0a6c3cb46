"""The task life cycle through a real `conveyor worker` on the embedded SQLite default."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from conveyor import App, State, TaskError
from conveyor.message import Envelope
from tests.conftest import WorkerProcess

pytestmark = [
    pytest.mark.timeout(120),
    # The scale-out set-ups run the whole end-to-end suite too (tests/redis_servers.py).
    pytest.mark.parametrize("project", ["sqlite", "redis", "redis-cluster", "redis-sentinel",
                                        "amqp"], indirect=True),
]
Start = Callable[..., WorkerProcess]


def cli(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "conveyor", *args, "-A", "e2e_tasks"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_results_come_back_from_a_worker(tasks: ModuleType, start_worker: Start) -> None:
    start_worker("-p", "2", "-t", "4")

    single = tasks.add.delay(2, 3)
    many = tasks.add.map([(i, i) for i in range(200)])

    assert single.get(timeout=30) == 5
    assert [r.get(timeout=30) for r in many] == [2 * i for i in range(200)]
    assert single.state is State.SUCCESS and single.successful()


def test_async_tasks_run_on_the_workers_event_loop(tasks: ModuleType,
                                                   start_worker: Start) -> None:
    start_worker("-p", "1", "-t", "2")

    results = tasks.async_add.map([(i, 1) for i in range(50)])

    assert [r.get(timeout=30) for r in results] == [i + 1 for i in range(50)]


def test_a_failure_carries_the_remote_type_message_and_traceback(
    tasks: ModuleType, start_worker: Start
) -> None:
    start_worker("-p", "1")

    result = tasks.fail.delay("disk full")

    with pytest.raises(TaskError) as caught:
        result.get(timeout=30)
    assert caught.value.type == "ValueError"
    assert caught.value.message == "disk full"
    assert caught.value.traceback and "raise ValueError(message)" in caught.value.traceback
    assert result.failed() and result.traceback == caught.value.traceback
    shown = cli("result", result.id)
    assert "FAILURE" in shown and "raise ValueError(message)" in shown
    assert result.id in cli("dead", "list")


def test_retries_until_success_with_attempts_visible(tasks: ModuleType,
                                                     start_worker: Start) -> None:
    start_worker("-p", "1")

    result = tasks.flaky.delay("ok", succeed_on=3)

    assert result.get(timeout=30) == 3
    record = tasks.app.results.get(result.id)
    assert record is not None and record.attempt == 3


def test_retries_give_up_after_the_last_one(tasks: ModuleType, start_worker: Start) -> None:
    start_worker("-p", "1")

    result = tasks.flaky.delay("never", succeed_on=99)

    with pytest.raises(TaskError) as caught:
        result.get(timeout=30)
    assert caught.value.type == "RetriesExhausted"
    assert "after 4 attempts: ConnectionError" in caught.value.message
    assert len(Path("flaky-never.log").read_text().splitlines()) == 4  # 1 + retries=3
    assert "attempt 4" in cli("dead", "list")


def test_explicit_retry_runs_again(tasks: ModuleType, start_worker: Start) -> None:
    start_worker("-p", "1")

    assert tasks.explicit_retry.delay().get(timeout=30) == 3


def test_progress_is_visible_while_running(tasks: ModuleType, start_worker: Start) -> None:
    start_worker("-p", "1")

    result = tasks.progress.delay(steps=5, pause=0.3)
    seen = set()
    while not result.ready():
        state, progress = result.state, result.progress  # two reads: the task may end between
        if state is State.STARTED and progress is not None:
            seen.add(progress.current)  # progress seen while the task was running
        time.sleep(0.05)

    assert result.get(timeout=1) == "done"
    assert len(seen) >= 3 and max(seen) <= 5
    assert result.progress == (5, 5, "step 5")  # the last progress stays visible


def test_countdown_never_runs_early(tasks: ModuleType, start_worker: Start) -> None:
    start_worker("-p", "1")

    sent = time.time()
    result = tasks.started_at.apply_async(("late",), countdown=1.5)
    assert tasks.app.broker.stats()["default"].scheduled == 1

    assert result.get(timeout=30) >= sent + 1.5


def test_higher_priority_runs_first(tasks: ModuleType, start_worker: Start) -> None:
    for i in range(10):  # enqueued before any worker runs, low and high interleaved
        tasks.started_at.apply_async((f"low-{i}",), priority=0)
        tasks.started_at.apply_async((f"high-{i}",), priority=9)
    last = tasks.started_at.apply_async(("lowest",), priority=0)

    start_worker("-p", "1", "-t", "1")
    last.get(timeout=30)

    order = [line.split()[0] for line in Path("started.log").read_text().splitlines()]
    assert all(label.startswith("high") for label in order[:10])
    assert order[-1] == "lowest"


def test_queues_are_consumed_only_by_workers_that_ask(tasks: ModuleType,
                                                      start_worker: Start) -> None:
    start_worker("-p", "1", "-Q", "default")
    result = tasks.other_queue.delay()
    tasks.add.delay(1, 1).get(timeout=30)
    assert result.state is State.PENDING

    start_worker("-p", "1", "-Q", "other")

    assert result.get(timeout=30) == "other"


def test_soft_time_limit_raises_inside_the_task(tasks: ModuleType, start_worker: Start) -> None:
    start_worker("-p", "1")

    assert tasks.soft_limited.delay().get(timeout=30) == "caught TimeLimitExceeded"


def test_hard_time_limit_stops_the_task_and_replaces_the_process(
    tasks: ModuleType, start_worker: Start
) -> None:
    worker = start_worker("-p", "1", "-t", "2")
    before = worker.wait_for_children(1)

    limited = tasks.hard_limited.delay(30)
    neighbour = tasks.sleep.delay(2.0)

    with pytest.raises(TaskError) as caught:
        limited.get(timeout=30)
    assert caught.value.type == "TimeLimitExceeded"
    assert neighbour.get(timeout=30) == 2.0  # handed back and run by the new process
    assert worker.wait_for_children(1) != before
    time.sleep(1.5)
    assert limited.state is State.FAILURE
    assert len(Path("hard.log").read_text().splitlines()) == 1  # never re-run


def test_unserializable_result_fails_the_task(tasks: ModuleType, start_worker: Start) -> None:
    start_worker("-p", "1")

    with pytest.raises(TaskError) as caught:
        tasks.unserializable_result.delay().get(timeout=30)
    assert caught.value.type == "SerializationError"


def test_bad_messages_are_dead_lettered_and_the_worker_goes_on(
    tasks: ModuleType, start_worker: Start
) -> None:
    # Given a producer that doesn't know the tasks, and a raw message that isn't JSON
    producer = App("producer")
    unknown = producer.send_task("e2e_tasks.nope", args=(1,))
    wrong_args = producer.send_task("e2e_tasks.add", args=(1,))
    producer.broker.publish([Envelope("poison-1", "default", 0, None, b"\x00not json")])
    start_worker("-p", "1")

    # Then each ends FAILURE with the reason, and good work still runs
    with pytest.raises(TaskError, match="no task named 'e2e_tasks.nope'"):
        unknown.get(timeout=30)
    with pytest.raises(TaskError) as caught:
        wrong_args.get(timeout=30)
    assert caught.value.type == "TypeError" and "missing a required argument" in str(caught.value)
    assert tasks.add.delay(1, 2).get(timeout=30) == 3
    dead = {letter.id: letter.reason for letter in tasks.app.broker.dead_letters()}
    assert "undecodable" in dead["poison-1"]
    assert unknown.id in dead and wrong_args.id in dead
    producer.close()


def test_status_lists_queues_and_live_workers(tasks: ModuleType, start_worker: Start) -> None:
    start_worker("-p", "2")
    tasks.add.delay(1, 1).get(timeout=30)

    deadline = time.monotonic() + 10
    while len(tasks.app.broker.workers()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    shown = cli("status")

    assert "default" in shown
    assert "2 worker process(es) alive" in shown
