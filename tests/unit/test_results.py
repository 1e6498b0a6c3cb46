"""What a producer sees through AsyncResult after in-process workers ran the queue:
values, failures with their remote traceback, states, progress, expiry, dead letters."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from conveyor import App, Progress, Snapshot, State, TaskContext, TaskError
from conveyor.testing import run_until_idle


def test_get_returns_the_value_and_state_goes_pending_to_success(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    # Given a queued task: PENDING, not ready, no result yet
    result = add.delay(2, 3)
    assert result.state is State.PENDING
    assert not result.ready()
    assert result.result is None
    # When the queue is run
    assert run_until_idle(app) == 1
    # Then it is SUCCESS with its value
    assert result.state is State.SUCCESS
    assert result.ready() and result.successful() and not result.failed()
    assert result.result == 5
    assert result.get(timeout=1) == 5
    assert result.traceback is None


def test_results_keep_json_shapes(app: App) -> None:
    @app.task
    def shape() -> dict[str, object]:
        return {"list": [1, 2], "nested": {"a": None}, "float": 1.5, "text": "é"}

    result = shape.delay()
    run_until_idle(app)
    assert result.get(timeout=1) == {"list": [1, 2], "nested": {"a": None}, "float": 1.5,
                                     "text": "é"}


def test_failure_raises_task_error_with_remote_type_message_and_traceback(app: App) -> None:
    @app.task
    def parse(text: str) -> int:
        raise ValueError(f"not a number: {text}")

    result = parse.delay("abc")
    run_until_idle(app)
    # The state says FAILURE
    assert result.state is State.FAILURE
    assert result.ready() and result.failed() and not result.successful()
    # get() raises TaskError carrying the remote exception's details
    with pytest.raises(TaskError) as info:
        result.get(timeout=1)
    error = info.value
    assert error.type == "ValueError"
    assert error.message == "not a number: abc"
    assert error.traceback is not None
    assert 'raise ValueError(f"not a number: {text}")' in error.traceback
    assert "ValueError: not a number: abc" in error.traceback
    # result and traceback read the same information without raising
    assert isinstance(result.result, TaskError)
    assert result.result.type == "ValueError"
    assert result.traceback == error.traceback


def test_a_failed_task_lands_in_the_dead_letter_store_with_the_reason(app: App) -> None:
    @app.task
    def boom() -> None:
        raise RuntimeError("disk full")

    result = boom.delay()
    run_until_idle(app)
    letters = app.broker.dead_letters()
    assert len(letters) == 1
    assert letters[0].id == result.id
    assert letters[0].queue == "default"
    assert "RuntimeError" in letters[0].reason and "disk full" in letters[0].reason
    stats = app.broker.stats()["default"]
    assert (stats.ready, stats.running, stats.dead) == (0, 0, 1)


def test_a_successful_task_leaves_nothing_in_the_broker(app: App) -> None:
    @app.task
    def ok() -> str:
        return "ok"

    ok.delay()
    run_until_idle(app)
    stats = app.broker.stats()["default"]
    assert (stats.ready, stats.scheduled, stats.running, stats.dead) == (0, 0, 0, 0)


def test_get_with_a_timeout_on_a_task_that_never_ran_raises_timeout_error(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(1, 2)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        result.get(timeout=0.1)
    assert 0.09 <= time.monotonic() - started < 2
    assert result.state is State.PENDING


def test_get_waits_for_a_task_finishing_in_another_thread(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(1, 2)
    runner = threading.Thread(target=run_until_idle, args=(app,))
    runner.start()
    try:
        assert result.get(timeout=5) == 3
    finally:
        runner.join(5)


def test_progress_is_visible_while_the_task_runs(app: App) -> None:
    # Given a task that reports progress, then waits to be released
    release = threading.Event()

    @app.task(bind=True)
    def export(task: TaskContext, rows: int) -> int:
        task.progress(40, rows, "rows")
        release.wait(5)
        return rows

    result = export.delay(100)
    runner = threading.Thread(target=run_until_idle, args=(app,))
    runner.start()
    try:
        # When it is running / Then its progress shows as a Progress named tuple
        deadline = time.monotonic() + 5
        while result.progress is None and time.monotonic() < deadline:
            time.sleep(0.005)
        progress = result.progress
        assert progress == Progress(40, 100, "rows")
        assert isinstance(progress, Progress)
        assert (progress.current, progress.total, progress.message) == (40, 100, "rows")
        assert progress.fraction == 0.4
        assert result.state is State.STARTED
    finally:
        release.set()
        runner.join(5)
    assert result.get(timeout=1) == 100


def test_last_progress_is_still_visible_after_the_task_finished(app: App) -> None:
    @app.task(bind=True)
    def export(task: TaskContext, rows: int) -> int:
        task.progress(rows // 2, rows, "rows")
        task.progress(rows, rows, "done")
        return rows

    result = export.delay(10)
    run_until_idle(app)
    assert result.get(timeout=1) == 10
    assert result.progress == Progress(10, 10, "done")


def test_progress_carries_the_meta_the_task_attached(app: App) -> None:
    @app.task(bind=True)
    def import_file(task: TaskContext, name: str) -> int:
        task.progress(1, 2, "files", meta={"file": name, "rows": 120})
        task.progress(2, 2, "files", meta={"file": name, "rows": 240, "errors": ["row 7"]})
        return 240

    result = import_file.delay("a.csv")
    run_until_idle(app)

    assert result.get(timeout=1) == 240
    progress = result.progress
    assert progress == (2, 2, "files")  # still the tuple it always was
    assert progress is not None
    assert progress.meta == {"file": "a.csv", "rows": 240, "errors": ["row 7"]}


def test_progress_meta_that_is_not_plain_data_raises_in_the_task(app: App) -> None:
    @app.task(bind=True)
    def bad(task: TaskContext) -> None:
        task.progress(1, 2, meta={"when": datetime.now(UTC)})

    result = bad.delay()
    run_until_idle(app)

    with pytest.raises(TaskError) as info:
        result.get(timeout=1)
    assert info.value.type == "ValueError"
    assert "progress meta can't be stored" in info.value.message
    assert "['when']" in info.value.message


def test_progress_is_none_for_a_task_that_never_reported(app: App) -> None:
    @app.task
    def quiet() -> None:
        return None

    result = quiet.delay()
    assert result.progress is None
    run_until_idle(app)
    assert result.progress is None


def test_progress_rejects_a_negative_total(app: App) -> None:
    @app.task(bind=True)
    def bad(task: TaskContext) -> None:
        task.progress(1, -1)

    result = bad.delay()
    run_until_idle(app)
    with pytest.raises(TaskError) as info:
        result.get(timeout=1)
    assert info.value.type == "ValueError"


def test_expired_task_is_revoked_unrun_with_the_reason(app: App) -> None:
    # Given a task whose expiry is already past when a worker picks it up
    ran: list[int] = []

    @app.task
    def job(x: int) -> int:
        ran.append(x)
        return x

    result = job.apply_async((1,), expires=datetime.now(UTC) - timedelta(seconds=1))
    # When the queue is run
    run_until_idle(app)
    # Then it never ran, ends REVOKED, the reason is the result, and get() raises TaskError
    assert ran == []
    assert result.state is State.REVOKED
    assert result.ready()
    assert isinstance(result.result, str) and "expired" in result.result
    with pytest.raises(TaskError) as info:
        result.get(timeout=1)
    assert "expired" in str(info.value)
    # And it is not a dead letter: it ended as asked
    assert app.broker.dead_letters() == []


def test_expires_in_seconds_leaves_time_to_run(app: App) -> None:
    @app.task
    def job() -> str:
        return "ran"

    result = job.apply_async(expires=60)
    run_until_idle(app)
    assert result.get(timeout=1) == "ran"


def test_negative_expires_is_refused(app: App) -> None:
    @app.task
    def job() -> None:
        return None

    with pytest.raises(ValueError, match="expires"):
        job.apply_async(expires=-5)
    assert app.broker.stats()["default"].ready == 0


def test_ignore_result_runs_the_task_but_stores_no_result(app: App) -> None:
    ran: list[str] = []

    @app.task(ignore_result=True)
    def fire_and_forget(x: str) -> str:
        ran.append(x)
        return x

    result = fire_and_forget.delay("a")
    run_until_idle(app)
    assert ran == ["a"]
    assert result.state is State.PENDING
    assert result.result is None
    assert app.results.get(result.id) is None
    with pytest.raises(TimeoutError):
        result.get(timeout=0.05)


def test_ignore_result_still_records_failures(app: App) -> None:
    @app.task(ignore_result=True)
    def boom() -> None:
        raise ValueError("bad")

    result = boom.delay()
    run_until_idle(app)
    assert result.state is State.FAILURE
    assert len(app.broker.dead_letters()) == 1


def test_acks_late_false_still_runs_and_stores_the_result(app: App) -> None:
    @app.task(acks_late=False)
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(4, 5)
    run_until_idle(app)
    assert result.get(timeout=1) == 9
    stats = app.broker.stats()["default"]
    assert (stats.ready, stats.running, stats.dead) == (0, 0, 0)


def test_acks_late_false_failure_is_still_dead_lettered(app: App) -> None:
    @app.task(acks_late=False)
    def boom() -> None:
        raise ValueError("bad")

    result = boom.delay()
    run_until_idle(app)
    assert result.state is State.FAILURE
    stats = app.broker.stats()["default"]
    assert (stats.ready, stats.running) == (0, 0)


def test_a_return_value_json_cant_carry_fails_with_serialization_error(app: App) -> None:
    @app.task
    def make() -> object:
        return object()

    result = make.delay()
    run_until_idle(app)
    assert result.state is State.FAILURE
    with pytest.raises(TaskError) as info:
        result.get(timeout=1)
    assert info.value.type == "SerializationError"
    assert make.name in info.value.message
    assert [letter.id for letter in app.broker.dead_letters()] == [result.id]


def test_forget_deletes_the_stored_result(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(1, 1)
    run_until_idle(app)
    assert result.state is State.SUCCESS
    result.forget()
    assert result.state is State.PENDING


def test_results_compare_by_id(app: App) -> None:
    assert app.AsyncResult("a") == app.AsyncResult("a")
    assert app.AsyncResult("a") != app.AsyncResult("b")
    assert len({app.AsyncResult("a"), app.AsyncResult("a")}) == 1


def test_arguments_that_no_longer_fit_on_the_worker_fail_without_running(app: App) -> None:
    # Given a worker whose "job" takes one argument
    ran: list[int] = []

    @app.task(name="job")
    def job(x: int) -> int:
        ran.append(x)
        return x

    # When a producer that doesn't know "job" (e.g. older code) sends it two
    producer = App("producer", broker="memory://")
    producer.use(broker=app.broker, results=app.results)
    result = producer.send_task("job", args=(1, 2))
    run_until_idle(app)
    # Then the task fails without running, with the TypeError as its error
    assert ran == []
    assert result.state is State.FAILURE
    with pytest.raises(TaskError) as info:
        result.get(timeout=1)
    assert info.value.type == "TypeError"
    assert len(app.broker.dead_letters()) == 1


def test_a_snapshot_reads_the_store_once_and_stays_consistent() -> None:
    app = App("snap", broker="memory://")

    @app.task(bind=True)
    def count(task: TaskContext, n: int) -> int:
        task.progress(n, n, "rows")
        return n

    result = count.delay(3)
    before = result.snapshot()
    run_until_idle(app)
    after = result.snapshot()
    # the first snapshot still shows the moment it was taken
    assert isinstance(before, Snapshot)
    assert (before.state, before.progress, before.result, before.ready()) == (
        State.PENDING, None, None, False)
    assert (after.state, after.result, after.successful()) == (State.SUCCESS, 3, True)
    assert after.progress == (3, 3, "rows")
    assert result.state is State.SUCCESS and result.result == 3  # the properties agree
    app.close()
