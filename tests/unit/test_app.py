"""App: where messages go by default, how secrets are shown, and that defining one is free."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import App, TaskContext, TaskError
from conveyor.backends.memory import MemoryBroker
from conveyor.errors import ConfigurationError
from conveyor.records import State
from conveyor.testing import run_until_idle


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CONVEYOR_BROKER_URL", "CONVEYOR_RESULTS_URL", "CONVEYOR_SIGNING_KEY",
                "CONVEYOR_MAX_MESSAGE_SIZE", "CONVEYOR_LEASE_SECONDS", "CONVEYOR_RESULT_TTL"):
        monkeypatch.delenv(var, raising=False)


# -- broker URL ------------------------------------------------------------------------


def test_default_broker_is_the_embedded_sqlite_file() -> None:
    # Given no CONVEYOR_BROKER_URL / When an App is created without a broker
    app = App("shop")
    # Then it uses sqlite:///conveyor.db, for queue and results alike
    assert app.settings.broker_url == "sqlite:///conveyor.db"
    assert app.settings.effective_results_url == "sqlite:///conveyor.db"


def test_environment_variable_chooses_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given CONVEYOR_BROKER_URL=memory://
    monkeypatch.setenv("CONVEYOR_BROKER_URL", "memory://")
    # When an App is created without a broker argument
    app = App("shop")

    @app.task
    def double(x: int) -> int:
        return 2 * x

    # Then it talks to the in-memory broker, and tasks run through it
    assert app.settings.broker_url == "memory://"
    assert isinstance(app.broker, MemoryBroker)
    result = double.delay(21)
    run_until_idle(app)
    assert result.get(timeout=1) == 42
    app.close()


def test_explicit_broker_argument_wins_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONVEYOR_BROKER_URL", "sqlite:///from-env.db")
    app = App("shop", broker="memory://")
    assert app.settings.broker_url == "memory://"
    assert isinstance(app.broker, MemoryBroker)


def test_unknown_scheme_lists_known_schemes_and_masks_the_password() -> None:
    # Given a URL with an unsupported scheme and a password
    # When the App is created
    with pytest.raises(ConfigurationError) as info:
        App("shop", broker="foo://user:secret@host")
    message = str(info.value)
    # Then the error names the scheme, lists the ones that work, and hides the password
    assert "foo://" in message
    assert "memory://" in message and "sqlite://" in message
    assert "secret" not in message
    assert "user:***@host" in message


def test_unknown_results_scheme_is_rejected_with_the_password_masked() -> None:
    # Given a results URL with an unsupported scheme
    # When the App is created and a result is read (whichever rejects it first)
    with pytest.raises(ConfigurationError) as info:
        app = App("shop", broker="memory://", results="bogus://u:hunter2@h")
        app.AsyncResult("some-id").state  # noqa: B018 - the read is the action
    # Then the error names the scheme and hides the password
    assert "bogus://" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_repr_masks_the_broker_password() -> None:
    app = App("shop", broker="memory://admin:hunter2@localhost")
    text = repr(app)
    assert "shop" in text
    assert "hunter2" not in text
    assert "admin:***@localhost" in text


@pytest.mark.parametrize("name", ["", None, 3])
def test_app_needs_a_non_empty_name(name: object) -> None:
    with pytest.raises(ConfigurationError, match="name"):
        App(name)  # type: ignore[arg-type]


def test_defining_an_app_and_its_tasks_does_no_io(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an empty working directory and no broker configured
    monkeypatch.chdir(tmp_path)
    # When an App on the default SQLite file is defined and a task registered
    app = App("shop")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    # Then nothing was created on disk: connections open on first use
    assert list(tmp_path.iterdir()) == []
    assert add(1, 2) == 3  # a plain call needs no broker either
    assert list(tmp_path.iterdir()) == []


def test_the_default_sqlite_file_is_created_in_the_working_directory_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = App("shop")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    try:
        result = add.delay(1, 2)
        assert (tmp_path / "conveyor.db").exists()
        run_until_idle(app)
        assert result.get(timeout=5) == 3
    finally:
        app.close()


def test_app_reconnects_after_close(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    app.close()
    result = add.delay(2, 2)
    run_until_idle(app)
    assert result.get(timeout=1) == 4


# -- send_task ---------------------------------------------------------------------------


def test_send_task_with_a_registered_name_runs_that_task(app: App) -> None:
    @app.task(name="math.add")
    def add(x: int, y: int) -> int:
        return x + y

    result = app.send_task("math.add", args=(2, 3))
    run_until_idle(app)
    assert result.get(timeout=1) == 5


def test_send_task_passes_kwargs(app: App) -> None:
    @app.task(name="greet")
    def greet(name: str, greeting: str = "hello") -> str:
        return f"{greeting} {name}"

    result = app.send_task("greet", args=("ann",), kwargs={"greeting": "hi"})
    run_until_idle(app)
    assert result.get(timeout=1) == "hi ann"


def test_send_task_with_an_unknown_name_fails_on_the_worker_and_is_dead_lettered(
    app: App,
) -> None:
    # Given a name no task is registered under
    # When it is sent (accepted: another worker might know it) and the queue is run
    result = app.send_task("emails.nope", args=("a@b.c",))
    assert app.broker.stats()["default"].ready == 1
    run_until_idle(app)
    # Then it ends FAILURE with NotRegistered, and get() raises
    assert result.state is State.FAILURE
    with pytest.raises(TaskError) as info:
        result.get(timeout=1)
    assert info.value.type == "NotRegistered"
    assert "emails.nope" in info.value.message
    # And it is kept as a dead letter with the reason
    letters = app.broker.dead_letters()
    assert [letter.id for letter in letters] == [result.id]
    assert "NotRegistered" in letters[0].reason
    assert "emails.nope" in letters[0].reason


def test_send_task_unknown_name_honours_queue_and_task_id(app: App) -> None:
    result = app.send_task("elsewhere.task", queue="remote", task_id="fixed-id")
    assert result.id == "fixed-id"
    stats = app.broker.stats()
    assert stats["remote"].ready == 1
    assert stats["default"].ready == 0


def test_send_task_unknown_name_validates_options(app: App) -> None:
    with pytest.raises(ValueError):
        app.send_task("x", priority=10)
    with pytest.raises(ValueError):
        app.send_task("x", countdown=-1)
    assert app.broker.stats()["default"].ready == 0


# -- AsyncResult factory and dead letters ---------------------------------------------------


def test_async_result_for_an_unknown_id_is_pending(app: App) -> None:
    result = app.AsyncResult("never-sent")
    assert result.id == "never-sent"
    assert result.state is State.PENDING
    assert result.result is None
    assert not result.ready()


def test_retry_dead_reruns_dead_letters_from_attempt_one(app: App) -> None:
    # Given a task that fails on its first run and succeeds afterwards
    attempts: list[int] = []
    healthy: list[bool] = []

    @app.task(bind=True)
    def flaky(task: TaskContext, x: int) -> int:
        attempts.append(task.attempt)
        if not healthy:
            raise ConnectionError("service down")
        return x * 10

    result = flaky.delay(4)
    run_until_idle(app)
    assert result.state is State.FAILURE
    assert len(app.broker.dead_letters()) == 1
    # When the service is back and the dead letters are retried
    healthy.append(True)
    assert app.retry_dead() == 1
    # Then the old failure is gone (the task is waiting again), the dead-letter store is
    # empty, and the task runs again, as attempt 1, and succeeds
    assert result.state is State.PENDING
    assert app.broker.dead_letters() == []
    run_until_idle(app)
    assert result.get(timeout=1) == 40
    assert attempts == [1, 1]


def test_retry_dead_selects_by_id(app: App) -> None:
    @app.task
    def boom(n: int) -> None:
        raise ValueError(n)

    first, second = boom.delay(1), boom.delay(2)
    run_until_idle(app)
    assert app.retry_dead(ids=[second.id]) == 1
    assert [letter.id for letter in app.broker.dead_letters()] == [first.id]
    assert app.broker.stats()["default"].ready == 1


def test_retry_dead_with_nothing_dead_does_nothing(app: App) -> None:
    assert app.retry_dead() == 0
    assert app.broker.stats()["default"].ready == 0
