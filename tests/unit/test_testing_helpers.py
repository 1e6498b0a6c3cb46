"""conveyor.testing, as users' own tests use it: eager mode and run_until_idle."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import App, State, TaskError
from conveyor.testing import eager, run_until_idle

# -- eager -------------------------------------------------------------------------------


def test_eager_runs_a_task_before_delay_returns(app: App) -> None:
    ran: list[int] = []

    @app.task
    def add(x: int, y: int) -> int:
        ran.append(x + y)
        return x + y

    with eager(app):
        result = add.delay(2, 3)
        # Already done: no worker, no run_until_idle
        assert ran == [5]
        assert result.state is State.SUCCESS
        assert result.get(timeout=1) == 5


def test_eager_runs_tasks_enqueued_by_tasks(app: App) -> None:
    log: list[str] = []

    @app.task
    def child(n: int) -> int:
        log.append(f"child {n}")
        return n * 2

    @app.task
    def parent(n: int) -> str:
        log.append("parent")
        return child.delay(n).id

    with eager(app):
        child_id = parent.delay(21).get(timeout=1)
        assert app.AsyncResult(child_id).get(timeout=1) == 42
    assert log == ["parent", "child 21"]


def test_eager_failure_is_reported_through_get(app: App) -> None:
    @app.task
    def boom() -> None:
        raise ValueError("nope")

    with eager(app):
        result = boom.delay()
        with pytest.raises(TaskError) as info:
            result.get(timeout=1)
    assert info.value.type == "ValueError"


def test_eager_fail_fast_raises_at_delay(app: App) -> None:
    @app.task
    def boom() -> None:
        raise ValueError("nope")

    with eager(app, fail_fast=True), pytest.raises(TaskError) as info:
        boom.delay()
    assert info.value.type == "ValueError"


def test_eager_runs_retries_too(app: App) -> None:
    @app.task(retries=2, backoff=600)
    def flaky() -> None:
        raise ConnectionError("down")

    with eager(app):
        result = flaky.delay()
        assert result.state is State.FAILURE
        assert "attempt 3" in app.broker.dead_letters()[0].reason


def test_eager_restores_the_apps_broker_and_results(app: App) -> None:
    # Given an app already connected to its broker
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    original_broker, original_results = app.broker, app.results
    # When tasks run eagerly
    with eager(app):
        assert app.broker is not original_broker
        result = add.delay(1, 2)
        assert result.get(timeout=1) == 3
    # Then the app is back on its own broker and store, which saw none of it
    assert app.broker is original_broker
    assert app.results is original_results
    assert app.broker.stats()["default"].ready == 0
    assert result.state is State.PENDING
    # And delay() queues again instead of running
    add.delay(1, 2)
    assert app.broker.stats()["default"].ready == 1


def test_eager_restores_even_when_the_block_raises(app: App) -> None:
    original = app.broker
    with pytest.raises(RuntimeError), eager(app):
        raise RuntimeError("test body failed")
    assert app.broker is original
    assert app.on_publish is None


def test_eager_needs_no_connection_to_the_real_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an app on the default SQLite file that hasn't connected yet
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVEYOR_BROKER_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_RESULTS_URL", raising=False)
    app = App("shop")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    # When used in eager mode
    with eager(app):
        assert add.delay(2, 2).get(timeout=1) == 4
    # Then no database file was created
    assert list(tmp_path.iterdir()) == []


# -- run_until_idle ----------------------------------------------------------------------


def test_run_until_idle_returns_how_many_ran(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    add.map([(i, i) for i in range(7)])
    assert run_until_idle(app) == 7
    assert run_until_idle(app) == 0


def test_run_until_idle_on_an_empty_queue_returns_zero(app: App) -> None:
    assert run_until_idle(app) == 0


def test_run_until_idle_runs_tasks_enqueued_by_tasks(app: App) -> None:
    @app.task
    def leaf(n: int) -> int:
        return n

    @app.task
    def fan_out(n: int) -> list[str]:
        return [r.id for r in leaf.map([(i,) for i in range(n)])]

    result = fan_out.delay(3)
    run_until_idle(app)
    ids = result.get(timeout=1)
    assert [app.AsyncResult(i).get(timeout=1) for i in ids] == [0, 1, 2]


def test_run_until_idle_limited_to_some_queues(app: App) -> None:
    @app.task
    def job(x: int) -> int:
        return x

    a = job.apply_async((1,), queue="a")
    b = job.apply_async((2,), queue="b")
    run_until_idle(app, queues=["a"])
    assert a.get(timeout=1) == 1
    assert b.state is State.PENDING
    assert app.broker.stats()["b"].ready == 1


def test_run_until_idle_fail_fast_raises_the_task_error(app: App) -> None:
    @app.task
    def boom(x: int) -> None:
        raise KeyError(f"no item {x}")

    boom.delay(7)
    with pytest.raises(TaskError) as info:
        run_until_idle(app, fail_fast=True)
    assert info.value.type == "KeyError"
    assert "no item 7" in info.value.message
    assert info.value.traceback and "raise KeyError" in info.value.traceback


def test_run_until_idle_fail_fast_is_quiet_when_everything_succeeds(app: App) -> None:
    @app.task
    def ok() -> str:
        return "ok"

    result = ok.delay()
    assert run_until_idle(app, fail_fast=True) == 1
    assert result.get(timeout=1) == "ok"


def test_run_until_idle_fail_fast_waits_for_retries_to_run_out(app: App) -> None:
    attempts: list[int] = []

    @app.task(retries=1, backoff=0.01)
    def flaky() -> None:
        attempts.append(1)
        raise ConnectionError("down")

    flaky.delay()
    with pytest.raises(TaskError):
        run_until_idle(app, fail_fast=True)
    assert len(attempts) == 2


def test_run_until_idle_without_scheduled_leaves_countdowns_waiting(app: App) -> None:
    @app.task
    def later() -> str:
        return "done"

    result = later.apply_async(countdown=3600)
    assert run_until_idle(app, include_scheduled=False) == 0
    assert result.state is State.PENDING
    assert run_until_idle(app) == 1
    assert result.get(timeout=1) == "done"
