"""`conveyor pause` / `conveyor resume` and what `conveyor status` shows of them (issue 14),
on the SQLite task module of test_cli_commands, through click's CliRunner."""

from __future__ import annotations

from types import ModuleType

from conveyor.cli import COMMANDS
from tests.unit.test_cli_commands import MODULE, invoke, queue_row
from tests.unit.test_cli_commands import tasks as tasks  # the fixture


def test_pause_and_resume_say_what_they_did_in_one_line_each(tasks: ModuleType) -> None:
    # When a queue is paused, twice
    first = invoke("pause", "-A", MODULE, "-Q", "emails")
    second = invoke("pause", "-A", MODULE, "-Q", "emails")
    # Then each says so in one line and exits 0
    assert (first.exit_code, first.output) == (0, "paused emails\n")
    assert (second.exit_code, second.output) == (0, "emails was already paused\n")
    assert tasks.app.paused() == {"emails"}

    # When it is resumed, twice
    first = invoke("resume", "-A", MODULE, "-Q", "emails")
    second = invoke("resume", "-A", MODULE, "-Q", "emails")
    # Then the second is a no-op that says the queue wasn't paused
    assert (first.exit_code, first.output) == (0, "resumed emails\n")
    assert (second.exit_code, second.output) == (0, "emails was not paused\n")
    assert tasks.app.paused() == set()


def test_pause_takes_a_comma_separated_list(tasks: ModuleType) -> None:
    result = invoke("pause", "-A", MODULE, "-Q", "emails, reports")

    assert (result.exit_code, result.output) == (0, "paused emails\npaused reports\n")
    assert tasks.app.paused() == {"emails", "reports"}


def test_a_bad_queue_name_is_a_usage_error_and_pauses_nothing(tasks: ModuleType) -> None:
    result = invoke("pause", "-A", MODULE, "-Q", "emails,bad\x01name")

    assert result.exit_code == 2
    assert "Invalid value for '-Q'" in result.output
    assert "control characters" in result.output
    assert tasks.app.paused() == set()  # not even the good one


def test_status_marks_paused_queues_and_lists_them(tasks: ModuleType) -> None:
    # Given a task waiting in "default", which is paused, and a paused queue with no tasks
    tasks.add.delay(1, 2)
    invoke("pause", "-A", MODULE, "-Q", "default,emails")

    # When status is asked
    result = invoke("status", "-A", MODULE)

    # Then both queues carry the PAUSED marker, with their counts, and a line names them
    assert result.exit_code == 0, result.output
    assert queue_row(result.output, "default") == ["1", "0", "0", "0", "0", "PAUSED"]
    assert queue_row(result.output, "emails") == ["0", "0", "0", "0", "0", "PAUSED"]
    assert "2 paused queue(s)" in result.output
    assert "resumed: default, emails" in result.output

    # And once resumed, neither marker nor line remains
    invoke("resume", "-A", MODULE, "-Q", "default,emails")
    result = invoke("status", "-A", MODULE)
    assert queue_row(result.output, "default") == ["1", "0", "0", "0", "0"]
    assert "PAUSED" not in result.output and "paused queue" not in result.output


def test_flask_and_django_command_groups_offer_pause_and_resume() -> None:
    # Both integrations register every command of COMMANDS on their own group
    from conveyor.contrib.django.cli import conveyor_cli as django_cli
    from conveyor.contrib.flask.cli import conveyor_cli as flask_cli

    names = {command.name for command in COMMANDS}
    assert {"pause", "resume"} <= names
    assert {"pause", "resume"} <= set(flask_cli.commands)
    assert {"pause", "resume"} <= set(django_cli.commands)
