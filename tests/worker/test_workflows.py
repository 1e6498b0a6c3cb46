"""Chains, groups, chords, error handlers and unique tasks through real `conveyor worker`s."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from conveyor import State, TaskError, chain, chord, group
from tests.conftest import WorkerProcess

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.parametrize("project", ["sqlite", "redis", "redis-cluster", "amqp"],
                            indirect=True),
]
Start = Callable[..., WorkerProcess]


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def wait_for_lines(path: Path, timeout: float = 30) -> list[str]:
    """Error handlers run after the failure is visible: wait for the file they write."""
    deadline = time.monotonic() + timeout
    while not lines(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # a second call would show up here
    return lines(path)


def test_a_chain_passes_each_value_to_the_next_step(tasks: ModuleType,
                                                    start_worker: Start) -> None:
    start_worker("-p", "2")
    add = tasks.add

    result = chain(add.s(1, 2), add.s(3), add.s(4)).delay()

    assert result.get(timeout=30) == 10
    assert (add.s(1, 1) | add.si(5, 5)).delay().get(timeout=30) == 10  # si ignores the value


def test_a_chain_step_that_retries_goes_on_with_the_chain(tasks: ModuleType,
                                                          start_worker: Start) -> None:
    start_worker("-p", "2")

    # flaky_double(3) fails its first attempt: a workflow step (run once) that retries
    result = chain(tasks.add.s(1, 2), tasks.flaky_double.s(), tasks.add.s(1)).delay()

    assert result.get(timeout=30) == 7


def test_a_group_gives_its_values_in_order(tasks: ModuleType, start_worker: Start) -> None:
    start_worker("-p", "2", "-t", "4")

    result = group(tasks.slow_add.s(i, i, 0.05 if i % 3 else 0) for i in range(12)).delay()

    assert result.get(timeout=30) == [2 * i for i in range(12)]
    assert result.ready() and result.successful() and result.completed_count() == 12


def test_a_chord_of_1000_members_fires_its_callback_once(
    tasks: ModuleType, start_worker: Start, project: Path
) -> None:
    start_worker("-p", "2", "-t", "8")

    result = chord(group(tasks.add.s(i, 1) for i in range(1000)), tasks.tally.s("big")).delay()

    assert result.get(timeout=120) == sum(i + 1 for i in range(1000))
    time.sleep(0.5)  # a second firing would show up here
    assert lines(project / "tally-big.log") == ["1000"]


def test_a_chord_whose_members_retry_fires_once_with_every_value(
    tasks: ModuleType, start_worker: Start, project: Path
) -> None:
    start_worker("-p", "2", "-t", "4")
    start_worker("-p", "1", "-t", "2")  # members spread over several workers

    result = chord([tasks.flaky_double.s(i) for i in range(20)], tasks.tally.s("retry")).delay()

    assert result.get(timeout=60) == sum(2 * i for i in range(20))
    assert len(lines(project / "flaky-double-1.log")) == 2  # odd members did retry
    time.sleep(0.5)
    assert lines(project / "tally-retry.log") == ["20"]


def test_a_failed_member_fails_the_chord_with_its_error_and_calls_link_error(
    tasks: ModuleType, start_worker: Start, project: Path
) -> None:
    start_worker("-p", "1", "-t", "4")
    members = [tasks.add.s(1, 1), tasks.fail.s("bad row 7"), tasks.add.s(2, 2)]

    result = chord(members, tasks.tally.s("failed")).apply_async(
        link_error=tasks.on_error.s("chord"))

    with pytest.raises(TaskError) as caught:
        result.get(timeout=30)
    assert caught.value.type == "ValueError"
    assert "chord member 2 of 3" in caught.value.message
    assert "bad row 7" in caught.value.message
    assert result.state is State.FAILURE
    time.sleep(0.5)
    assert not (project / "tally-failed.log").exists()  # the callback never ran
    assert len(wait_for_lines(project / "errors-chord.log")) == 1  # the handler ran once


def test_a_failed_step_stops_the_chain_and_reports_why(
    tasks: ModuleType, start_worker: Start, project: Path
) -> None:
    start_worker("-p", "1")

    result = chain(tasks.add.s(1, 2), tasks.fail.s(), tasks.add.s(3)).apply_async(
        link_error=tasks.on_error.s("chain"))

    with pytest.raises(TaskError) as caught:
        result.get(timeout=30)
    assert caught.value.type == "ValueError"
    assert "earlier step of the chain" in caught.value.message
    errors = wait_for_lines(project / "errors-chain.log")
    assert len(errors) == 1 and tasks.app.AsyncResult(errors[0]).failed()


def test_link_error_on_a_single_task(tasks: ModuleType, start_worker: Start,
                                     project: Path) -> None:
    start_worker("-p", "1")

    failed = tasks.fail.apply_async(("nope",), link_error=tasks.on_error.s("single"))

    with pytest.raises(TaskError):
        failed.get(timeout=30)
    assert wait_for_lines(project / "errors-single.log") == [failed.id]


def test_a_unique_task_is_not_enqueued_twice_while_pending_or_running(
    tasks: ModuleType, start_worker: Start, project: Path
) -> None:
    first = tasks.sync_account.delay(7, 1.0)
    while_pending = tasks.sync_account.delay(7, 1.0)
    other_account = tasks.sync_account.delay(8, 0.0)
    start_worker("-p", "1", "-t", "2")
    deadline = time.monotonic() + 30
    while tasks.app.AsyncResult(first.id).state is not State.STARTED:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    while_running = tasks.sync_account.delay(7, 1.0)

    assert while_pending.id == first.id and while_running.id == first.id
    assert other_account.id != first.id
    assert first.get(timeout=30) == 7
    after = tasks.sync_account.delay(7, 0.0)  # finished: the key is free again
    assert after.id != first.id and after.get(timeout=30) == 7
    assert sorted(lines(project / "sync.log")) == ["7", "7", "8"]
