"""Life-cycle hooks in real worker processes (issue 14): each fires once, in the process
where it happened: worker process start and stop, a context around the task body (sync
and async), dead letters, revoked and expired tasks."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from conveyor import TaskError
from tests.conftest import ConveyorProcess, worker_env

pytestmark = pytest.mark.timeout(120)

HOOKED_TASKS = '''
import contextvars
import os

from conveyor import App, Middleware

tenant = contextvars.ContextVar("tenant", default="nobody")


def log(*words):
    with open("hooks.log", "a") as f:
        f.write(" ".join([str(os.getpid()), *map(str, words)]) + "\\n")


class Lifecycle(Middleware):
    def on_worker_process_start(self, app):
        log("process_start", app.name)

    def on_worker_stop(self, app):
        log("stop", app.name)

    def wrap_call(self, execution):  # the tenant a call was sent for, around its body
        return Tenant(execution.message.headers.get("tenant", "nobody"))

    def on_dead_letter(self, message, reason):
        log("dead_letter", message.id if message else "?", reason.split(":")[0])

    def on_revoked(self, message, reason):
        log("revoked", message.id, reason.split()[0])


class Tenant:
    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.token = tenant.set(self.name)

    def __exit__(self, *exc):
        tenant.reset(self.token)


app = App("hooked", middleware=[Lifecycle()])


@app.task
def whose() -> str:
    return tenant.get()


@app.task
async def whose_async() -> str:
    return tenant.get()


@app.task
def broken() -> None:
    raise ValueError("no")
'''


@pytest.fixture
def hooked(task_module: Callable[[str, str], ModuleType]) -> ModuleType:
    return task_module("hooked_tasks", HOOKED_TASKS)


def hook_lines(tmp_path: Path) -> list[list[str]]:
    path = tmp_path / "hooks.log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def wait_for_lines(tmp_path: Path, hook: str, count: int) -> list[list[str]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [line for line in hook_lines(tmp_path) if line[1] == hook]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} {hook} lines in {hook_lines(tmp_path)}")


def test_each_hook_fires_once_in_the_process_where_it_happened(
        hooked: ModuleType, tmp_path: Path) -> None:
    # Given a task whose expiry passes before any worker runs, then two worker processes
    expired = hooked.whose.apply_async(expires=0.2)
    time.sleep(0.5)
    worker = ConveyorProcess(tmp_path, worker_env(tmp_path),
                             ["worker", "-A", "hooked_tasks", "-p", "2"])
    try:
        started = wait_for_lines(tmp_path, "process_start", 2)
        children = worker.wait_for_children(2)

        # When tasks run for a tenant, one fails for good, and one is revoked here
        sync = hooked.whose.apply_async(headers={"tenant": "acme"})
        asynchronous = hooked.whose_async.apply_async(headers={"tenant": "globex"})
        untold = hooked.whose.delay()
        broken = hooked.broken.delay()
        assert (sync.get(timeout=30), asynchronous.get(timeout=30), untold.get(timeout=30)
                ) == ("acme", "globex", "nobody")  # each body ran inside its own context
        with pytest.raises(TaskError):
            broken.get(timeout=30)
        dead = wait_for_lines(tmp_path, "dead_letter", 1)
        later = hooked.whose.apply_async(countdown=3600)
        assert hooked.app.revoke(later.id) == [later.id]
        expired_lines = wait_for_lines(tmp_path, "revoked", 2)
    finally:
        worker.stop()
    stopped = wait_for_lines(tmp_path, "stop", 2)

    # Then each worker process said it started and stopped, once
    assert sorted(int(line[0]) for line in started) == sorted(children)
    assert sorted(int(line[0]) for line in stopped) == sorted(children)
    # the dead letter was told once, by a worker process
    assert dead == [[dead[0][0], "dead_letter", broken.id, "ValueError"]]
    assert int(dead[0][0]) in children
    # the revoke was told in this process, the expiry in the worker that met it
    by_task = {line[2]: line for line in expired_lines}
    assert by_task[later.id][0] == str(os.getpid())
    assert int(by_task[expired.id][0]) in children
    assert len(hook_lines(tmp_path)) == 2 + 1 + 2 + 2  # nothing fired twice
