"""A middleware a user writes, with a task option of its own, in a real worker process."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from conveyor import ConfigurationError
from tests.conftest import ConveyorProcess, worker_env

pytestmark = pytest.mark.timeout(120)

# What docs/middleware.md shows: twenty lines, nothing but the public API.
AUDITED_TASKS = '''
from conveyor import App, ConfigurationError, Middleware


class Audit(Middleware):
    """One line per attempt of a task declared with audit="<file>"."""

    options = {"audit": None}  # the option it owns, and its default

    def validate_options(self, task_name, options):
        if not isinstance(options.get("audit", ""), str):
            raise ConfigurationError(f"task {task_name!r}: audit must be a file name")

    def before_publish(self, app, message):  # in the producer
        task = app.tasks.get(message.task)
        if task is not None and task.options["audit"]:
            return message.with_headers(audited_by=str(os.getpid()))
        return message

    def after_execute(self, execution, outcome):  # in the worker process
        path = execution.task.options["audit"]
        if path:
            with open(path, "a") as log:
                result = "failed" if outcome.failed else "ok"
                log.write(f"{execution.message.id} {result} "
                          f"{execution.message.headers['audited_by']} {os.getpid()}\\n")


app = App("audited", middleware=[Audit()])


@app.task(audit="audit.log", retries=1, backoff=0.1)
def charge(amount: int) -> int:
    if amount < 0:
        raise ValueError("negative amount")
    return amount


@app.task
def plain() -> str:
    return "plain"
'''


@pytest.fixture
def audited(task_module: Callable[[str, str], ModuleType]) -> ModuleType:
    return task_module("audited_tasks", "import os\n" + AUDITED_TASKS)


def audit_lines(path: Path, count: int) -> list[list[str]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return [line.split() for line in lines]
        time.sleep(0.05)
    raise AssertionError(f"{path} has fewer than {count} lines")


def test_a_users_middleware_with_its_own_option_runs_in_a_real_worker(
        audited: ModuleType, tmp_path: Path) -> None:
    worker = ConveyorProcess(tmp_path, worker_env(tmp_path),
                             ["worker", "-A", "audited_tasks", "-p", "1"])
    try:
        ok, bad, plain = audited.charge.delay(5), audited.charge.delay(-1), audited.plain.delay()

        assert (ok.get(timeout=30), plain.get(timeout=30)) == (5, "plain")
        lines = audit_lines(tmp_path / "audit.log", 3)  # ok once, bad twice (one retry)
    finally:
        worker.stop()

    assert audited.charge.options["audit"] == "audit.log"
    assert audited.plain.options["audit"] is None
    by_task = {task_id: [line for line in lines if line[0] == task_id]
               for task_id in (ok.id, bad.id, plain.id)}
    assert [line[1] for line in by_task[ok.id]] == ["ok"]
    assert [line[1] for line in by_task[bad.id]] == ["failed", "failed"]
    assert by_task[plain.id] == []
    producer, worker_pids = str(os.getpid()), {line[3] for line in lines}
    assert {line[2] for line in lines} == {producer}  # the header set when it was published
    assert producer not in worker_pids  # ... and the hook ran in the worker process


def test_a_misspelt_middleware_option_names_the_right_one(audited: ModuleType) -> None:
    def job() -> None: ...

    with pytest.raises(ConfigurationError, match="unknown option 'audti'; did you mean 'audit'"):
        audited.app.task(audti="x.log")(job)  # checked as the decorator meets the task
    with pytest.raises(ConfigurationError, match="audit must be a file name"):
        audited.app.task(audit=42)
