"""`conveyor schedule list|add|pause|resume|remove` (issue 14) on the SQLite task module
of test_cli_commands, through click's CliRunner: what an operator types and reads."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.unit.test_cli_commands import MODULE, invoke
from tests.unit.test_cli_commands import tasks as tasks  # the fixture


def row(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(name + " "))


def test_an_added_schedule_is_listed_with_its_next_run_state_and_source(
    tasks: ModuleType,
) -> None:
    added = invoke("schedule", "-A", MODULE, "add", "sums", "add", "--every", "1h30m",
                   "--args", "[1, 2]")
    paris = invoke("schedule", "-A", MODULE, "add", "morning", "add", "--cron", "0 8 * * *",
                   "--tz", "Europe/Paris", "--kwargs", '{"x": 1, "y": 2}', "-Q", "reports")

    listed = invoke("schedule", "-A", MODULE, "list")

    assert added.exit_code == 0 and added.output.startswith("sums: add every 1h30m, next run ")
    assert paris.exit_code == 0, paris.output
    assert listed.exit_code == 0
    assert listed.output.splitlines()[0].split() == [
        "SCHEDULE", "TASK", "ARGS", "WHEN", "NEXT", "RUN", "STATE", "SOURCE"]
    assert "add   1, 2" in row(listed.output, "sums")
    assert row(listed.output, "sums").endswith("active  runtime")
    assert " UTC (in " in row(listed.output, "sums")
    morning = row(listed.output, "morning")
    assert "x=1, y=2" in morning and "cron 0 8 * * * (Europe/Paris)" in morning
    assert " CET (in " in morning or " CEST (in " in morning
    assert tasks.app.schedules.get("morning").queue == "reports"


def test_pause_resume_and_remove_say_what_they_did(tasks: ModuleType) -> None:
    invoke("schedule", "-A", MODULE, "add", "sums", "add", "--every", "60", "--args", "[1, 2]")

    paused = invoke("schedule", "-A", MODULE, "pause", "sums")
    again = invoke("schedule", "-A", MODULE, "pause", "sums")
    listed = invoke("schedule", "-A", MODULE, "list")
    resumed = invoke("schedule", "-A", MODULE, "resume", "sums")
    removed = invoke("schedule", "-A", MODULE, "remove", "sums")

    assert (paused.exit_code, paused.output) == (0, "paused sums\n")
    assert (again.exit_code, again.output) == (0, "sums was already paused\n")
    assert row(listed.output, "sums").endswith("-         paused  runtime")
    assert (resumed.exit_code, resumed.output) == (0, "resumed sums\n")
    assert (removed.exit_code, removed.output) == (0, "removed sums\n")
    assert invoke("schedule", "-A", MODULE, "list").output.startswith("no schedules")


def test_a_name_that_matches_nothing_is_one_line_and_exit_status_1(tasks: ModuleType) -> None:
    invoke("schedule", "-A", MODULE, "add", "sums", "add", "--every", "60", "--args", "[1, 2]")

    result = invoke("schedule", "-A", MODULE, "remove", "sum", "sums")

    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: no schedule named 'sum'; did you mean 'sums'? (conveyor schedule list shows "
        "them all)", "removed sums"]


@pytest.mark.parametrize(("args", "code", "says"), [
    (["--cron", "0 25 * * *"], 1, "Error: cron '0 25 * * *': hour '25' is out of range 0-23"),
    (["--every", "5 minutes"], 2, "use a number of seconds or spans such as 30s"),
    ([], 2, "give --cron or --every (one of them)"),
    (["--every", "5m", "--args", "[1,"], 2, "Invalid value for '--args': not JSON"),
    (["--every", "5m", "--args", '{"x": 1}'], 2, "must be a JSON list"),
    (["--every", "5m", "--args", "[1]"], 1, "missing a required argument: 'y'"),
])
def test_mistakes_are_one_clear_line_without_a_traceback(
    tasks: ModuleType, args: list[str], code: int, says: str,
) -> None:
    result = invoke("schedule", "-A", MODULE, "add", "s", "add", *args)

    assert result.exit_code == code
    assert says in result.output and "Traceback" not in result.output
    assert tasks.app.schedules.list() == []


def test_an_unknown_task_is_refused_unless_allowed(tasks: ModuleType) -> None:
    refused = invoke("schedule", "-A", MODULE, "add", "s", "ad", "--every", "5m")
    allowed = invoke("schedule", "-A", MODULE, "add", "s", "billing.run", "--every", "5m",
                     "--allow-unregistered")

    assert refused.exit_code == 1
    assert "no task named 'ad' is registered in App 'cli'; did you mean 'add'?" in (
        refused.output)
    assert allowed.exit_code == 0
    assert [i.task for i in tasks.app.schedules.list()] == ["billing.run"]


def test_replace_changes_a_schedule_and_status_lists_it(tasks: ModuleType) -> None:
    invoke("schedule", "-A", MODULE, "add", "sums", "add", "--every", "60", "--args", "[1, 2]")

    clash = invoke("schedule", "-A", MODULE, "add", "sums", "add", "--every", "30",
                   "--args", "[3, 4]")
    replaced = invoke("schedule", "-A", MODULE, "add", "sums", "add", "--every", "30",
                      "--args", "[3, 4]", "--replace")
    status = invoke("status", "-A", MODULE)

    assert clash.exit_code == 1 and "--replace" in clash.output
    assert replaced.exit_code == 0 and "every 30s" in replaced.output
    assert "1 periodic task(s); no beat has run yet" in status.output
    assert "every 30s" in row(status.output, "sums")
