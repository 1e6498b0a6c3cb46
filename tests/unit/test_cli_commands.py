"""The read-mostly CLI commands (status, result, revoke, purge, dead) on a SQLite store, run
in-process through click's CliRunner."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import click.testing
import pytest

from conveyor import App
from conveyor.cli import main
from conveyor.testing import run_until_idle

MODULE = "cli_tasks_app"

SOURCE = """
    from conveyor import App

    app = App("cli", broker="sqlite:///{db}")

    @app.task(name="add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="boom")
    def boom() -> None:
        raise ValueError("kaput")

    @app.task(name="export", bind=True)
    def export(task, rows: int) -> int:
        task.progress(rows, rows, "rows", meta={{"file": "orders.csv"}})
        return rows
"""


@pytest.fixture
def tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """A task module on a SQLite file in tmp_path, importable as MODULE."""
    for var in ("CONVEYOR_BROKER_URL", "CONVEYOR_RESULTS_URL", "CONVEYOR_SIGNING_KEY",
                "CONVEYOR_APP"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / f"{MODULE}.py").write_text(
        textwrap.dedent(SOURCE.format(db=tmp_path / "conveyor.db"))
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    module = importlib.import_module(MODULE)
    yield module
    module.app.close()
    sys.modules.pop(MODULE, None)


def invoke(*args: str, input: str | None = None) -> click.testing.Result:
    result = click.testing.CliRunner().invoke(main, list(args), input=input,
                                              catch_exceptions=False)
    return result


def queue_row(output: str, queue: str) -> list[str]:
    for line in output.splitlines():
        cells = line.split()
        if cells and cells[0] == queue:
            return cells[1:]
    raise AssertionError(f"no row for queue {queue!r} in:\n{output}")


def app_of(tasks: ModuleType) -> App:
    app: App = tasks.app
    return app


# -- status ------------------------------------------------------------------------------


def test_status_names_the_store_and_its_absolute_file(
        tasks: ModuleType, tmp_path: Path) -> None:
    result = invoke("status", "-A", MODULE)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        f"broker:  sqlite:///{tmp_path}/conveyor.db (file {tmp_path}/conveyor.db)")


def test_status_lists_the_empty_default_queue(tasks: ModuleType) -> None:
    result = invoke("status", "-A", MODULE)
    assert result.exit_code == 0, result.output
    assert "QUEUE" in result.output and "READY" in result.output
    assert queue_row(result.output, "default") == ["0", "0", "0", "0", "0"]
    assert "0 worker process(es) alive" in result.output


def test_status_counts_ready_scheduled_and_dead_per_queue(tasks: ModuleType) -> None:
    # Given two ready tasks, one scheduled, one in another queue, and one dead
    tasks.boom.delay()
    run_until_idle(app_of(tasks))
    tasks.add.delay(1, 2)
    tasks.add.delay(3, 4)
    tasks.add.apply_async((5, 6), countdown=3600)
    tasks.add.apply_async((7, 8), queue="reports")
    # When status is asked
    result = invoke("status", "-A", MODULE)
    # Then each queue shows READY SCHEDULED RUNNING RESERVED DEAD
    assert result.exit_code == 0, result.output
    assert queue_row(result.output, "default") == ["2", "1", "0", "0", "1"]
    assert queue_row(result.output, "reports") == ["1", "0", "0", "0", "0"]


def test_the_app_can_come_from_conveyor_app(
    tasks: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks.add.delay(1, 2)
    monkeypatch.setenv("CONVEYOR_APP", MODULE)
    result = invoke("status")
    assert result.exit_code == 0, result.output
    assert queue_row(result.output, "default")[0] == "1"


def test_an_unknown_app_module_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = invoke("status", "-A", "no_such_cli_module_xyz")
    assert result.exit_code == 2
    assert "no_such_cli_module_xyz" in result.output


# -- result ------------------------------------------------------------------------------


def test_result_shows_state_and_value(tasks: ModuleType) -> None:
    async_result = tasks.add.delay(2, 3)
    run_until_idle(app_of(tasks))
    result = invoke("result", "-A", MODULE, async_result.id)
    assert result.exit_code == 0, result.output
    assert async_result.id in result.output
    assert "SUCCESS" in result.output
    assert "result:   5" in result.output
    assert "add" in result.output


def test_result_of_a_failure_shows_the_error_and_traceback(tasks: ModuleType) -> None:
    async_result = tasks.boom.delay()
    run_until_idle(app_of(tasks))
    result = invoke("result", "-A", MODULE, async_result.id)
    assert result.exit_code == 0, result.output
    assert "FAILURE" in result.output
    assert "ValueError: kaput" in result.output
    assert 'raise ValueError("kaput")' in result.output


def test_result_of_an_unknown_id_is_pending(tasks: ModuleType) -> None:
    result = invoke("result", "-A", MODULE, "never-sent")
    assert result.exit_code == 0, result.output
    assert "PENDING" in result.output


def test_result_as_json(tasks: ModuleType) -> None:
    async_result = tasks.add.delay(2, 3)
    run_until_idle(app_of(tasks))
    result = invoke("result", "-A", MODULE, async_result.id, "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["id"] == async_result.id
    assert record["state"] == "SUCCESS"
    assert record["result"] == 5


def test_result_shows_progress(tasks: ModuleType) -> None:
    async_result = tasks.export.delay(10)
    run_until_idle(app_of(tasks))
    result = invoke("result", "-A", MODULE, async_result.id)
    assert result.exit_code == 0, result.output
    assert "progress: 10/10 rows" in result.output
    assert '{"file": "orders.csv"}' in result.output  # the meta, under it


def test_result_of_an_expired_task_shows_the_reason(tasks: ModuleType) -> None:
    async_result = tasks.add.apply_async((1, 2), expires=datetime.now(UTC) - timedelta(days=1))
    run_until_idle(app_of(tasks))
    result = invoke("result", "-A", MODULE, async_result.id)
    assert "REVOKED" in result.output
    assert "expired" in result.output


# -- purge -------------------------------------------------------------------------------


def test_purge_with_force_reports_the_count(tasks: ModuleType) -> None:
    tasks.add.delay(1, 2)
    tasks.add.delay(3, 4)
    tasks.add.apply_async((5, 6), countdown=3600)
    result = invoke("purge", "-A", MODULE, "-Q", "default", "-f")
    assert result.exit_code == 0, result.output
    assert "purged 3 task(s)" in result.output
    stats = app_of(tasks).broker.stats()["default"]
    assert (stats.ready, stats.scheduled) == (0, 0)


def test_purge_asks_first_and_keeps_tasks_when_declined(tasks: ModuleType) -> None:
    tasks.add.delay(1, 2)
    result = invoke("purge", "-A", MODULE, "-Q", "default", input="n\n")
    assert result.exit_code != 0
    assert app_of(tasks).broker.stats()["default"].ready == 1


def test_purge_only_touches_the_named_queue(tasks: ModuleType) -> None:
    tasks.add.delay(1, 2)
    tasks.add.apply_async((1, 2), queue="reports")
    result = invoke("purge", "-A", MODULE, "-Q", "reports", "-f")
    assert "purged 1 task(s)" in result.output
    assert app_of(tasks).broker.stats()["default"].ready == 1


def test_purge_of_a_queue_nobody_knows_says_nothing_matched(tasks: ModuleType) -> None:
    # Given tasks waiting in "default"
    tasks.add.delay(1, 2)
    # When a misspelt queue is purged
    result = invoke("purge", "-A", MODULE, "-Q", "defualt", "-f")
    # Then it fails, says nothing was purged, names the close queue, and purges nothing
    assert result.exit_code == 1
    assert "no queue 'defualt'" in result.output and "nothing purged" in result.output
    assert "did you mean 'default'?" in result.output
    assert app_of(tasks).broker.stats()["default"].ready == 1


def test_purge_of_a_registered_tasks_empty_queue_is_fine(tasks: ModuleType) -> None:
    app_of(tasks).task(name="mail", queue="emails")(lambda: None)
    result = invoke("purge", "-A", MODULE, "-Q", "emails", "-f")
    assert result.exit_code == 0, result.output
    assert "purged 0 task(s)" in result.output


# -- dead --------------------------------------------------------------------------------


def test_dead_retry_of_an_unknown_id_says_nothing_matched(tasks: ModuleType) -> None:
    tasks.boom.delay()
    run_until_idle(app_of(tasks))
    result = invoke("dead", "retry", "-A", MODULE, "nosuchid")
    assert result.exit_code == 1
    assert "1 of the 1 ID(s) given matched no dead letter" in result.output
    assert app_of(tasks).broker.stats()["default"].dead == 1


def test_dead_retry_with_nothing_dead_is_not_an_error(tasks: ModuleType) -> None:
    result = invoke("dead", "retry", "-A", MODULE)
    assert result.exit_code == 0, result.output
    assert "no dead letters" in result.output


def test_dead_list_with_nothing_dead(tasks: ModuleType) -> None:
    result = invoke("dead", "list", "-A", MODULE)
    assert result.exit_code == 0, result.output
    assert "no dead letters" in result.output


def test_dead_list_shows_id_task_and_reason(tasks: ModuleType) -> None:
    failed = tasks.boom.delay()
    unknown = app_of(tasks).send_task("not.registered")
    run_until_idle(app_of(tasks))
    result = invoke("dead", "list", "-A", MODULE)
    assert result.exit_code == 0, result.output
    assert failed.id in result.output
    assert unknown.id in result.output
    assert "boom" in result.output
    assert "ValueError: kaput" in result.output
    assert "NotRegistered" in result.output


def test_dead_retry_requeues_dead_letters(tasks: ModuleType) -> None:
    tasks.boom.delay()
    run_until_idle(app_of(tasks))
    result = invoke("dead", "retry", "-A", MODULE)
    assert result.exit_code == 0, result.output
    assert "re-queued 1 task(s)" in result.output
    stats = app_of(tasks).broker.stats()["default"]
    assert (stats.ready, stats.dead) == (1, 0)


def test_dead_retry_by_id(tasks: ModuleType) -> None:
    first = tasks.boom.delay()
    second = tasks.boom.delay()
    run_until_idle(app_of(tasks))
    result = invoke("dead", "retry", "-A", MODULE, second.id)
    assert "re-queued 1 task(s)" in result.output
    remaining = [letter.id for letter in app_of(tasks).broker.dead_letters()]
    assert remaining == [first.id]


def test_dead_purge_with_force_deletes_them(tasks: ModuleType) -> None:
    tasks.boom.delay()
    tasks.boom.delay()
    run_until_idle(app_of(tasks))
    result = invoke("dead", "purge", "-A", MODULE, "-f")
    assert result.exit_code == 0, result.output
    assert "deleted 2 dead letter(s)" in result.output
    assert app_of(tasks).broker.dead_letters() == []
    assert invoke("dead", "list", "-A", MODULE).output.strip() == "no dead letters"


# -- conveyor revoke ----------------------------------------------------------------------


def test_cli_revokes_waiting_tasks_and_exits_zero(tasks: ModuleType) -> None:
    now, later = tasks.add.delay(1, 2), tasks.add.apply_async((3, 4), countdown=3600)

    result = invoke("revoke", "-A", MODULE, now.id, later.id)

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"{now.id}: revoked", f"{later.id}: revoked"]
    shown = invoke("result", "-A", MODULE, now.id)
    assert "REVOKED" in shown.output and "revoked before it started" in shown.output
    status = tasks.app.broker.stats()["default"]
    assert (status.ready, status.scheduled) == (0, 0)


def test_cli_says_which_were_not_pending_and_exits_one(tasks: ModuleType) -> None:
    done = tasks.add.delay(0, 0)
    run_until_idle(tasks.app)
    waiting_task = tasks.add.delay(1, 1)

    result = invoke("revoke", "-A", MODULE, done.id, waiting_task.id, "no-such-id")

    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{done.id}: not pending (running, finished or unknown), left alone",
        f"{waiting_task.id}: revoked",
        "no-such-id: not pending (running, finished or unknown), left alone",
    ]
    assert done.get(timeout=1) == 0


def test_cli_needs_at_least_one_id(tasks: ModuleType) -> None:
    result = invoke("revoke", "-A", MODULE)

    assert result.exit_code == 2
    assert "Missing argument" in result.output


def test_cli_rejects_an_empty_id(tasks: ModuleType) -> None:
    kept = tasks.add.delay(1, 1)

    result = invoke("revoke", "-A", MODULE, kept.id, "")

    assert result.exit_code == 2
    assert "empty task id" in result.output
    assert tasks.app.broker.stats()["default"].ready == 1


def test_control_characters_from_the_store_are_shown_escaped_never_sent(
        tasks: ModuleType) -> None:
    # Anyone who can publish can name a task with a terminal escape sequence
    evil = app_of(tasks).send_task("evil\x1b]0;pwned\x07")
    run_until_idle(app_of(tasks))

    for args in (("dead", "list", "-A", MODULE), ("result", "-A", MODULE, evil.id)):
        output = invoke(*args).output
        assert "\x1b" not in output and "\x07" not in output
        assert "evil\\x1b]0;pwned\\x07" in output


# -- worker ------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--prefetch", "--max-memory-per-child"])
def test_worker_refuses_a_limit_below_one_in_one_line(tasks: ModuleType, option: str) -> None:
    result = invoke("worker", "-A", MODULE, "-p", "1", option, "0")

    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: Invalid value for '{option}': 0 is not in the range x>=1."]
    assert "conveyor worker for" not in result.output  # nothing started


# -- worker start-up warnings ------------------------------------------------------------


def test_worker_warns_about_a_queue_no_task_goes_to_and_tasks_it_wont_run() -> None:
    # Given tasks that go to "emails" (by their decorator and by a route)
    from conveyor.cli.worker import queue_warnings

    app = App("warn", broker="memory://", routes={"reports.*": {"queue": "slow"}})
    app.task(name="send", queue="emails")(lambda: None)
    app.task(name="add")(lambda: None)
    app.task(name="reports.monthly")(lambda: None)

    # When a worker would consume default and a misspelt "email"
    warnings = queue_warnings(app, ["default", "email"])

    # Then it is told about both mistakes, with the close name
    assert warnings == [
        "no registered task goes to queue 'email' (-Q); did you mean 'emails'?",
        "this worker doesn't consume the queue(s) of these tasks, which wait for another "
        "worker: emails (send); slow (reports.monthly)",
    ]
    assert queue_warnings(app, ["default", "emails", "slow"]) == []
