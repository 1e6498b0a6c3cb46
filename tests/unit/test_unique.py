"""Unique tasks: `@app.task(unique_for=...)` and `apply_async(unique_key=...)` enqueue a
task once while one with the same key is pending or running, and free the key when it
ends for good."""

from __future__ import annotations

import time

import pytest

from conveyor import App, State, TaskContext
from conveyor.errors import ConfigurationError, SerializationError
from conveyor.testing import eager, run_until_idle


def ready(app: App, queue: str = "default") -> int:
    stats = app.broker.stats()
    return stats[queue].ready if queue in stats else 0


def scheduled(app: App, queue: str = "default") -> int:
    stats = app.broker.stats()
    return stats[queue].scheduled if queue in stats else 0


def test_the_same_key_while_pending_gives_the_same_task(app: App) -> None:
    # Given a task without unique_for, called twice with one explicit key
    @app.task(name="digest")
    def digest(user: int) -> int:
        return user

    first = digest.apply_async((1,), unique_key="digest:1")
    again = digest.apply_async((2,), unique_key="digest:1")  # other args, same key
    other = digest.apply_async((1,), unique_key="digest:2")
    plain = digest.delay(1)  # no key: never deduplicated

    assert again.id == first.id
    assert other.id != first.id and plain.id != first.id
    assert ready(app) == 3
    assert run_until_idle(app) == 3
    assert first.get(timeout=1) == 1  # the first call's arguments won


def test_unique_for_keys_on_the_task_and_its_arguments(app: App) -> None:
    ran: list[int] = []

    @app.task(name="sync_account", unique_for=60)
    def sync_account(account: int, full: bool = False) -> int:
        ran.append(account)
        return account

    a = sync_account.delay(7)
    b = sync_account.delay(7)
    c = sync_account.delay(8)
    d = sync_account.delay(7, full=True)

    assert a.id == b.id
    assert len({a.id, c.id, d.id}) == 3
    assert ready(app) == 3
    run_until_idle(app)
    assert sorted(ran) == [7, 7, 8]


def test_the_key_is_free_once_the_task_has_finished(app: App) -> None:
    @app.task(name="sync_account", unique_for=60)
    def sync_account(account: int) -> int:
        return account

    first = sync_account.delay(7)
    run_until_idle(app)
    assert first.get(timeout=1) == 7

    after = sync_account.delay(7)
    assert after.id != first.id and ready(app) == 1
    run_until_idle(app)
    assert after.get(timeout=1) == 7


def test_the_key_is_free_once_the_task_has_failed_for_good(app: App) -> None:
    @app.task(name="fragile", unique_for=60)
    def fragile(account: int) -> None:
        raise ValueError("no")

    first = fragile.delay(7)
    run_until_idle(app)
    assert first.state is State.FAILURE

    after = fragile.delay(7)
    assert after.id != first.id and ready(app) == 1


def test_a_retrying_unique_task_keeps_its_key_until_it_ends(app: App) -> None:
    attempts: list[int] = []

    @app.task(name="flaky", bind=True, unique_for=60, retries=1, backoff=60, jitter=False)
    def flaky(task: TaskContext, account: int) -> int:
        attempts.append(task.attempt)
        if task.attempt == 1:
            raise ConnectionError("down")
        return account

    # Given a unique task waiting to retry
    first = flaky.delay(7)
    run_until_idle(app, include_scheduled=False)
    assert first.state is State.RETRY and scheduled(app) == 1

    # When it is called again, it is the same task and nothing more is queued
    assert flaky.delay(7).id == first.id
    assert scheduled(app) == 1 and ready(app) == 0

    # Then once the retry succeeds the key is free
    run_until_idle(app)
    assert attempts == [1, 2] and first.get(timeout=1) == 7
    assert flaky.delay(7).id != first.id


def test_the_key_is_free_once_the_task_expired_unrun(app: App) -> None:
    ran: list[int] = []

    @app.task(name="report")
    def report(day: int) -> int:
        ran.append(day)
        return day

    first = report.apply_async((1,), unique_key="report:1", expires=0.01)
    time.sleep(0.05)
    run_until_idle(app)
    assert first.state is State.REVOKED and ran == []

    after = report.apply_async((1,), unique_key="report:1")
    assert after.id != first.id and ready(app) == 1


def test_unique_for_lapses_even_if_the_task_has_not_run(app: App) -> None:
    @app.task(name="ping", unique_for=0.05)
    def ping() -> None:
        return None

    first = ping.delay()
    time.sleep(0.1)
    assert ping.delay().id != first.id
    assert ready(app) == 2


def test_a_publish_that_fails_frees_the_key(app: App) -> None:
    @app.task(name="store")
    def store(value: object) -> None:
        return None

    with pytest.raises(SerializationError, match="argument 'value'"):
        store.apply_async((object(),), unique_key="store:1")
    assert ready(app) == 0

    retried = store.apply_async((1,), unique_key="store:1")
    assert ready(app) == 1 and retried.state is State.PENDING


def test_a_countdown_task_holds_its_key_while_it_waits(app: App) -> None:
    @app.task(name="later")
    def later() -> None:
        return None

    first = later.apply_async(countdown=60, unique_key="later")
    assert later.apply_async(unique_key="later").id == first.id
    assert scheduled(app) == 1 and ready(app) == 0


def test_bad_keys_and_windows_are_refused(app: App) -> None:
    @app.task(name="digest")
    def digest() -> None:
        return None

    with pytest.raises(ValueError, match="unique_key must be a non-empty string"):
        digest.apply_async(unique_key="")
    assert ready(app) == 0
    for bad in (0, -5, True, "1h"):
        with pytest.raises(ConfigurationError, match="unique_for must be seconds > 0"):
            app.task(name=f"bad_{bad!r}", unique_for=bad)(lambda: None)


def test_in_eager_mode_each_call_runs(app: App) -> None:
    ran: list[int] = []

    @app.task(name="sync_account", unique_for=60)
    def sync_account(account: int) -> int:
        ran.append(account)
        return account

    with eager(app):
        first = sync_account.delay(7)
        second = sync_account.delay(7)  # the first already finished: the key was free
        assert first.get(timeout=1) == second.get(timeout=1) == 7
    assert first.id != second.id and ran == [7, 7]


def test_unique_tasks_on_sqlite(sqlite_app: App) -> None:
    ran: list[int] = []

    @sqlite_app.task(name="sync_account", unique_for=60)
    def sync_account(account: int) -> int:
        ran.append(account)
        return account

    first = sync_account.delay(7)
    assert sync_account.delay(7).id == first.id
    assert sync_account.apply_async((8,), unique_key="mine").id != first.id
    assert ready(sqlite_app) == 2

    run_until_idle(sqlite_app, timeout=15)
    assert sorted(ran) == [7, 8]
    assert sync_account.delay(7).id != first.id
