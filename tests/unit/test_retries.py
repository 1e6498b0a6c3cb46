"""The retry policy: retries=N, retry_on, Retry / task.retry(), and the backoff delays."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor import App, ConfigurationError, Retry, State, TaskContext, TaskError
from conveyor.middleware.retries import backoff_delay
from conveyor.testing import run_until_idle


@pytest.fixture
def app() -> Iterator[App]:
    app = App("t", broker="memory://")
    yield app
    app.close()


def test_without_retries_an_exception_fails_at_once(app: App) -> None:
    attempts: list[int] = []

    @app.task(bind=True)
    def boom(task: TaskContext) -> None:
        attempts.append(task.attempt)
        raise ValueError("no")

    result = boom.delay()
    run_until_idle(app)
    assert attempts == [1]
    assert result.state is State.FAILURE


def test_retries_two_runs_three_attempts_then_fails(app: App) -> None:
    # Given a task that always fails, with retries=2
    attempts: list[int] = []

    @app.task(bind=True, retries=2, backoff=0.01)
    def flaky(task: TaskContext) -> None:
        attempts.append(task.attempt)
        raise ConnectionError("down")

    # When the queue is run, retries included
    result = flaky.delay()
    run_until_idle(app)
    # Then it ran three times, attempts counted from 1, and ended FAILURE: retries
    # exhausted, with the last error
    assert attempts == [1, 2, 3]
    assert result.state is State.FAILURE
    with pytest.raises(TaskError) as info:
        result.get(timeout=1)
    assert info.value.type == "RetriesExhausted"
    assert info.value.message == "gave up after 3 attempts: ConnectionError: down"
    assert "ConnectionError: down" in (info.value.traceback or "")
    letters = app.broker.dead_letters()
    assert len(letters) == 1
    assert "attempt 3" in letters[0].reason


def test_retries_stop_once_the_task_succeeds(app: App) -> None:
    attempts: list[int] = []

    @app.task(bind=True, retries=5, backoff=0.01)
    def flaky(task: TaskContext) -> str:
        attempts.append(task.attempt)
        if task.attempt < 3:
            raise ConnectionError("down")
        return "ok"

    result = flaky.delay()
    run_until_idle(app)
    assert attempts == [1, 2, 3]
    assert result.get(timeout=1) == "ok"
    assert app.broker.dead_letters() == []


def test_context_knows_the_last_attempt(app: App) -> None:
    seen: list[tuple[int, int, bool]] = []

    @app.task(bind=True, retries=1, backoff=0.01)
    def flaky(task: TaskContext) -> None:
        seen.append((task.attempt, task.max_attempts, task.is_last_attempt))
        raise ConnectionError("down")

    flaky.delay()
    run_until_idle(app)
    assert seen == [(1, 2, False), (2, 2, True)]


def test_a_retry_waits_in_the_schedule_in_state_retry(app: App) -> None:
    # Given a task that fails once, with a long backoff
    @app.task(bind=True, retries=1, backoff=3600, jitter=False)
    def flaky(task: TaskContext) -> str:
        if task.attempt == 1:
            raise ConnectionError("down")
        return "ok"

    result = flaky.delay()
    # When only what is ready now is run
    run_until_idle(app, include_scheduled=False)
    # Then the task waits in RETRY, scheduled, with the error of the failed attempt
    assert result.state is State.RETRY
    assert not result.ready()
    assert isinstance(result.result, TaskError)
    assert result.result.type == "ConnectionError"
    stats = app.broker.stats()["default"]
    assert (stats.ready, stats.scheduled) == (0, 1)
    # And when scheduled work runs too, it succeeds
    run_until_idle(app)
    assert result.get(timeout=1) == "ok"


def test_retry_on_retries_matching_exceptions(app: App) -> None:
    attempts: list[int] = []

    @app.task(bind=True, retries=3, retry_on=(ConnectionError,), backoff=0.01)
    def fetch(task: TaskContext) -> str:
        attempts.append(task.attempt)
        if task.attempt == 1:
            raise ConnectionResetError("reset")  # a subclass matches too
        return "ok"

    result = fetch.delay()
    run_until_idle(app)
    assert attempts == [1, 2]
    assert result.get(timeout=1) == "ok"


def test_retry_on_fails_other_exceptions_at_once(app: App) -> None:
    attempts: list[int] = []

    @app.task(bind=True, retries=3, retry_on=(ConnectionError,), backoff=0.01)
    def fetch(task: TaskContext) -> None:
        attempts.append(task.attempt)
        raise ValueError("bad data: retrying won't help")

    result = fetch.delay()
    run_until_idle(app)
    assert attempts == [1]
    assert result.state is State.FAILURE
    with pytest.raises(TaskError) as info:
        result.get(timeout=1)
    assert info.value.type == "ValueError"


def test_retry_on_alone_retries_a_bounded_number_of_times(app: App) -> None:
    attempts: list[int] = []

    @app.task(bind=True, retry_on=ConnectionError, backoff=0.01)
    def fetch(task: TaskContext) -> None:
        attempts.append(task.attempt)
        raise ConnectionError("down")

    result = fetch.delay()
    run_until_idle(app)
    assert attempts == [1, 2, 3, 4]  # retry_on without retries= means 3 retries
    assert result.state is State.FAILURE


def test_raise_retry_retries_even_with_retries_zero(app: App) -> None:
    attempts: list[int] = []

    @app.task(bind=True)
    def poll(task: TaskContext) -> str:
        attempts.append(task.attempt)
        if task.attempt == 1:
            raise Retry(countdown=0.01)
        return "ready"

    result = poll.delay()
    run_until_idle(app)
    assert attempts == [1, 2]
    assert result.get(timeout=1) == "ready"


def test_a_task_that_always_raises_retry_still_ends(app: App) -> None:
    attempts: list[int] = []

    @app.task(bind=True)
    def poll(task: TaskContext) -> None:
        attempts.append(task.attempt)
        raise Retry(countdown=0)

    result = poll.delay()
    run_until_idle(app, timeout=10)
    assert attempts == [1, 2, 3, 4]  # Retry allows max(retries, 3) retries
    assert result.state is State.FAILURE
    assert len(app.broker.dead_letters()) == 1


def test_retry_respects_a_higher_retries_option(app: App) -> None:
    attempts: list[int] = []

    @app.task(bind=True, retries=5)
    def poll(task: TaskContext) -> None:
        attempts.append(task.attempt)
        raise Retry(countdown=0)

    poll.delay()
    run_until_idle(app, timeout=10)
    assert len(attempts) == 6


def test_task_retry_with_an_exception_reports_that_exception(app: App) -> None:
    attempts: list[int] = []

    @app.task(bind=True)
    def sync(task: TaskContext) -> None:
        attempts.append(task.attempt)
        try:
            raise TimeoutError("upstream slow")
        except TimeoutError as exc:
            task.retry(countdown=0, exc=exc)

    result = sync.delay()
    run_until_idle(app, timeout=10)
    assert attempts == [1, 2, 3, 4]
    with pytest.raises(TaskError) as info:
        result.get(timeout=1)
    assert info.value.type == "RetriesExhausted"
    assert info.value.message == "gave up after 4 attempts: TimeoutError: upstream slow"


def test_task_retry_then_success(app: App) -> None:
    @app.task(bind=True)
    def sync(task: TaskContext) -> int:
        if task.attempt < 3:
            task.retry(countdown=0.01)
        return task.attempt

    result = sync.delay()
    run_until_idle(app)
    assert result.get(timeout=1) == 3


def test_retry_with_a_negative_countdown_is_refused() -> None:
    with pytest.raises(ValueError, match="countdown"):
        Retry(countdown=-1)


def test_retried_task_keeps_its_id_and_arguments(app: App) -> None:
    seen: list[tuple[str, int, str]] = []

    @app.task(bind=True, retries=1, backoff=0.01)
    def greet(task: TaskContext, x: int, name: str = "") -> None:
        seen.append((task.id, x, name))
        if task.attempt == 1:
            raise ConnectionError("down")

    result = greet.delay(7, name="ann")
    run_until_idle(app)
    assert seen == [(result.id, 7, "ann"), (result.id, 7, "ann")]
    assert result.state is State.SUCCESS


# -- backoff_delay -----------------------------------------------------------------------


def test_backoff_doubles_each_attempt_without_jitter() -> None:
    delays = [backoff_delay(attempt, 2.0, 600.0, jitter=False) for attempt in range(1, 6)]
    assert delays == [2.0, 4.0, 8.0, 16.0, 32.0]


def test_backoff_is_capped_at_backoff_max() -> None:
    assert backoff_delay(10, 1.0, 60.0, jitter=False) == 60.0
    assert backoff_delay(100, 1.0, 600.0, jitter=False) == 600.0


def test_jitter_stays_within_half_and_all_of_the_delay() -> None:
    rng = random.Random(1234)
    for attempt in range(1, 12):
        base = min(1.5 * 2.0 ** (attempt - 1), 300.0)
        for _ in range(50):
            delay = backoff_delay(attempt, 1.5, 300.0, jitter=True, rng=rng)
            assert 0.5 * base <= delay <= base


def test_jitter_spreads_retries_out() -> None:
    rng = random.Random(99)
    delays = {backoff_delay(3, 1.0, 600.0, jitter=True, rng=rng) for _ in range(20)}
    assert len(delays) > 1


# -- retries=None, retry_delay, is_last_attempt ---------------------------------------------


def test_retries_none_retries_until_it_works(app: App) -> None:
    # Given a task allowed to retry for ever, failing its first 12 attempts
    seen: list[tuple[int, int | None, bool]] = []

    @app.task(bind=True, retries=None, retry_delay=0)
    def stubborn(task: TaskContext) -> str:
        seen.append((task.attempt, task.max_attempts, task.is_last_attempt))
        if task.attempt <= 12:
            raise ConnectionError("down")
        return "up"

    result = stubborn.delay()
    run_until_idle(app, timeout=10)

    # Then it ran 13 times, never "on its last attempt", and succeeded
    assert result.get(timeout=1) == "up"
    assert [attempt for attempt, _, _ in seen] == list(range(1, 14))
    assert all(most is None and not last for _, most, last in seen)


def test_retry_delay_is_a_fixed_delay_instead_of_backoff(app: App) -> None:
    @app.task(retries=3, retry_delay=600, backoff=1.0)
    def flaky() -> None:
        raise ConnectionError("down")

    before = time.time()
    result = flaky.delay()
    run_until_idle(app, include_scheduled=False)

    snapshot = result.snapshot()
    assert snapshot.state is State.RETRY
    assert snapshot.record is not None and snapshot.record.retry_at is not None
    assert 599 <= snapshot.record.retry_at - before <= 601  # not backoff's 0.5-1 s


def test_a_retries_0_task_that_asks_to_retry_knows_its_last_attempt(app: App) -> None:
    # Given a task with retries=0 that retries itself while it may, then gives up cleanly
    seen: list[tuple[int, int | None, bool]] = []

    @app.task(bind=True)
    def poll(task: TaskContext) -> str:
        seen.append((task.attempt, task.max_attempts, task.is_last_attempt))
        if task.is_last_attempt:
            return "gave up cleanly"
        task.retry(countdown=0)

    result = poll.delay()
    run_until_idle(app, timeout=10)

    # Then is_last_attempt was True on the attempt after which retry() would be refused
    assert seen == [(1, 4, False), (2, 4, False), (3, 4, False), (4, 4, True)]
    assert result.get(timeout=1) == "gave up cleanly"


def test_an_error_outside_retry_on_fails_with_that_error_not_retries_exhausted(
        app: App) -> None:
    @app.task(retries=3, retry_on=(ConnectionError,))
    def picky() -> None:
        raise ValueError("bad input")

    result = picky.delay()
    run_until_idle(app)

    with pytest.raises(TaskError) as info:
        result.get(timeout=1)
    assert (info.value.type, info.value.message) == ("ValueError", "bad input")


@pytest.mark.parametrize(("options", "says"), [
    ({"retries": -1}, "retries must be an int >= 0, or None to retry for ever"),
    ({"retries": True}, "retries must be an int >= 0"),
    ({"retry_delay": -5}, "retry_delay must be seconds >= 0 (or None)"),
    ({"retry_delay": "10"}, "retry_delay must be seconds >= 0 (or None)"),
    ({"backoff": float("nan")}, "backoff must be seconds >= 0"),
])
def test_bad_retry_options_are_refused_at_declaration(app: App, options: dict[str, Any],
                                                      says: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(says)):
        app.task(name="bad", **options)(lambda: None)


# -- per-call overrides -------------------------------------------------------------------


def test_a_call_can_allow_more_retries_than_the_task(app: App) -> None:
    seen: list[tuple[int, int | None]] = []

    @app.task(bind=True, backoff=0.001, jitter=False)  # retries=0: fails at once
    def flaky(task: TaskContext) -> str:
        seen.append((task.attempt, task.max_attempts))
        if task.attempt < 4:
            raise ConnectionError("down")
        return "up"

    plain = flaky.delay()
    run_until_idle(app)
    generous = flaky.apply_async(retries=5)
    run_until_idle(app, timeout=10)

    assert plain.state is State.FAILURE  # the task's own policy for the plain call
    assert generous.get(timeout=1) == "up"  # 3 failures, retried under this call's policy
    assert seen == [(1, 4), (1, 6), (2, 6), (3, 6), (4, 6)]


def test_headers_given_to_a_call_reach_the_task(app: App) -> None:
    @app.task(bind=True)
    def whose(task: TaskContext) -> str:
        return task.headers["tenant"]

    result = whose.apply_async(headers={"tenant": "acme"})
    run_until_idle(app)

    assert result.get(timeout=1) == "acme"


@pytest.mark.parametrize(("options", "error", "says"), [
    ({"retries": -1}, ValueError, "retries must be an int >= 0, or None"),
    ({"time_limit": 0}, ValueError, "time_limit must be seconds > 0"),
    ({"soft_time_limit": 90}, ValueError, "soft_time_limit (90) must be below time_limit (60)"),
    ({"headers": {"tenant": 7}}, TypeError, "headers must map str to str"),
])
def test_bad_per_call_options_are_refused_before_anything_is_sent(
        app: App, options: dict[str, Any], error: type[Exception], says: str) -> None:
    @app.task(time_limit=60)
    def work() -> None: ...

    with pytest.raises(error, match=re.escape(says)):
        work.apply_async(**options)
    assert app.broker.stats()["default"].ready == 0
