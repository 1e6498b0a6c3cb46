"""The django.tasks backend, through Django's public API: enqueue, get_result, statuses,
errors, priority, run_after, async tasks, context, signals; in-process with
`run_worker` and in a real worker process."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("django.tasks")

from asgiref.sync import sync_to_async  # noqa: E402
from django.tasks import (  # noqa: E402
    TaskResultStatus,
    default_task_backend,
    task,
    task_backends,
)
from django.tasks.exceptions import (  # noqa: E402
    InvalidTask,
    InvalidTaskBackend,
    TaskResultDoesNotExist,
    TaskResultMismatch,
)
from django.tasks.signals import task_enqueued, task_finished, task_started  # noqa: E402
from django.utils import timezone  # noqa: E402

from conveyor.contrib.django.app import project_app  # noqa: E402
from conveyor.contrib.django.backend import ConveyorBackend, conveyor_priority  # noqa: E402
from conveyor.contrib.django.testing import run_worker  # noqa: E402
from conveyor.errors import TaskError  # noqa: E402
from tests.django import dj_tasks  # noqa: E402
from tests.django.testapp.models import Order  # noqa: E402

READY, RUNNING = TaskResultStatus.READY, TaskResultStatus.RUNNING
FAILED, SUCCESSFUL = TaskResultStatus.FAILED, TaskResultStatus.SUCCESSFUL
BACKEND = "conveyor.contrib.django.backend.ConveyorBackend"


pytestmark = pytest.mark.usefixtures("clean_backend")


def finished(result: Any, timeout: float = 30.0, until: Callable[[Any], bool] | None = None,
             log: Callable[[], str] = str) -> Any:
    """Refresh `result` until it is finished (or `until` holds)."""
    deadline = time.monotonic() + timeout
    done = until or (lambda r: r.is_finished)
    while True:
        result.refresh()
        if done(result):
            return result
        assert time.monotonic() < deadline, f"{result.id} is still {result.status}\n{log()}"
        time.sleep(0.05)


def test_the_backend_supports_everything_django_asks_about() -> None:
    assert isinstance(task_backends["default"], ConveyorBackend)
    assert default_task_backend.supports_defer
    assert default_task_backend.supports_async_task
    assert default_task_backend.supports_get_result
    assert default_task_backend.supports_priority


def test_enqueue_returns_a_ready_result_that_get_result_finds() -> None:
    before = timezone.now()
    result = dj_tasks.add.enqueue(2, b=3)

    assert result.status == READY and not result.is_finished
    assert isinstance(result.id, str) and result.backend == "default"
    assert result.args == [2] and result.kwargs == {"b": 3}
    assert before <= result.enqueued_at <= timezone.now()
    assert result.started_at is None and result.finished_at is None
    assert result.attempts == 0 and result.worker_ids == [] and result.errors == []
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value

    fetched = default_task_backend.get_result(result.id)
    assert (fetched.id, fetched.status, fetched.args, fetched.kwargs) == (
        result.id, READY, [2], {"b": 3})
    assert fetched.enqueued_at == result.enqueued_at
    assert fetched.task.func is dj_tasks.add.func
    assert dj_tasks.add.get_result(result.id).id == result.id
    with pytest.raises(TaskResultMismatch):
        dj_tasks.fail.get_result(result.id)


def test_get_result_of_an_unknown_id_raises_does_not_exist() -> None:
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result("no-such-id")
    conveyor_task = project_app().send_task("tests.django.testapp.tasks.count_orders")
    with pytest.raises(TaskResultDoesNotExist):  # a Conveyor task, not a Django one
        default_task_backend.get_result(conveyor_task.id)


def test_a_task_that_ran_is_successful_with_its_return_value() -> None:
    result = dj_tasks.add.enqueue(2, b=3)

    assert run_worker(default_task_backend) == 1

    result.refresh()
    assert result.status == SUCCESSFUL and result.is_finished
    assert result.return_value == 5
    assert result.attempts == 1 and len(result.worker_ids) == 1 and result.errors == []
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at


def test_a_failed_task_carries_its_exception_class_and_traceback() -> None:
    result = dj_tasks.fail.enqueue("the printer is on fire")

    run_worker()

    result.refresh()
    assert result.status == FAILED and result.is_finished
    assert result.finished_at is not None and result.attempts == 1
    [error] = result.errors
    assert error.exception_class is dj_tasks.Boom
    assert error.exception_class_path == "tests.django.dj_tasks.Boom"
    assert error.traceback.startswith("Traceback")
    assert "raise Boom(message)" in error.traceback
    assert "Boom: the printer is on fire" in error.traceback
    with pytest.raises(ValueError, match="failed"):
        _ = result.return_value


def test_a_task_revoked_through_conveyor_is_failed_and_never_runs() -> None:
    result = dj_tasks.record.enqueue("revoked")

    assert project_app().AsyncResult(result.id).revoke()
    assert run_worker() == 0

    result.refresh()
    assert result.status == FAILED and result.attempts == 0 and dj_tasks.RAN == []
    assert result.errors[0].exception_class is TaskError
    assert "TaskRevoked" in result.errors[0].traceback


def test_a_return_value_json_cannot_carry_fails_the_task_with_type_error() -> None:
    result = dj_tasks.returns_a_set.enqueue()
    run_worker()
    result.refresh()
    assert result.status == FAILED
    assert result.errors[0].exception_class is TypeError


def test_arguments_json_cannot_carry_raise_type_error_and_enqueue_nothing() -> None:
    with pytest.raises(TypeError, match="Unsupported type"):
        dj_tasks.add.enqueue(object(), 1)
    assert run_worker() == 0


@pytest.mark.parametrize(("change", "message"), [
    ({"queue_name": "nowhere"}, "Queue 'nowhere' is not valid"),
    ({"priority": 101}, "priority must be a whole number"),
    ({"priority": -101}, "priority must be a whole number"),
    ({"priority": 1.5}, "priority must be a whole number"),
    ({"run_after": datetime(2030, 1, 1)}, "aware"),
])
def test_invalid_tasks_raise_invalid_task(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidTask, match=message):
        dj_tasks.add.using(**change)


def test_tasks_workers_cannot_import_are_refused() -> None:
    def local() -> None: ...

    with pytest.raises(InvalidTask, match="module level"):
        task(local)
    with pytest.raises(InvalidTask, match="workers import this task as"):
        dj_tasks.exposed.enqueue()
    assert run_worker() == 0


def test_async_tasks_run() -> None:
    added = dj_tasks.async_add.enqueue(2, 3)
    described = dj_tasks.async_describe.enqueue()

    assert run_worker() == 2

    added.refresh()
    described.refresh()
    assert added.return_value == 5
    assert described.return_value == {"id": described.id, "attempt": 1}


def test_tasks_taking_context_get_their_result_and_attempt() -> None:
    result = dj_tasks.describe.enqueue(7)
    run_worker()
    result.refresh()
    assert result.return_value == {"id": result.id, "attempt": 1, "status": "RUNNING", "x": 7}


def test_aenqueue_and_aget_result_work_from_async_code_off_the_event_loop() -> None:
    enqueued_on: list[int] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        enqueued_on.append(threading.get_ident())

    async def main() -> Any:
        result = await dj_tasks.add.aenqueue(1, 2)
        assert (await default_task_backend.aget_result(result.id)).status == READY
        with pytest.raises(TaskResultDoesNotExist):
            await default_task_backend.aget_result("no-such-id")
        await sync_to_async(run_worker)()
        await result.arefresh()
        assert (await dj_tasks.add.aget_result(result.id)).return_value == 3
        return result, threading.get_ident()

    task_enqueued.connect(receiver)
    try:
        result, loop_thread = asyncio.run(main())
    finally:
        task_enqueued.disconnect(receiver)
    assert result.return_value == 3
    assert enqueued_on and loop_thread not in enqueued_on  # the loop was never blocked


def test_run_after_holds_a_task_until_it_is_due() -> None:
    due = timezone.now() + timedelta(seconds=0.5)
    result = dj_tasks.record.using(run_after=due).enqueue("later")

    assert run_worker() == 0
    result.refresh()
    assert result.status == READY

    time.sleep(max(0.0, (due - timezone.now()).total_seconds()) + 0.05)
    assert run_worker() == 1
    result.refresh()
    assert result.status == SUCCESSFUL and result.started_at >= due


def test_django_priorities_map_monotonically_onto_conveyors() -> None:
    mapped = [conveyor_priority(p) for p in range(-100, 101)]
    assert mapped == sorted(mapped)
    assert (mapped[0], mapped[100], mapped[-1]) == (0, 4, 9)
    assert set(mapped) == set(range(10))


def test_signals_are_sent_on_enqueue_start_and_finish() -> None:
    seen: list[tuple[str, Any, str, str]] = []

    def on(name: str) -> Callable[..., None]:
        def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
            seen.append((name, sender, task_result.task.name, task_result.status))
        return receiver

    receivers = {signal: on(name) for name, signal in
                 [("enqueued", task_enqueued), ("started", task_started),
                  ("finished", task_finished)]}
    for signal, receiver in receivers.items():
        signal.connect(receiver)
    try:
        dj_tasks.add.enqueue(1, 1)
        dj_tasks.fail.enqueue("no")
        run_worker()
    finally:
        for signal, receiver in receivers.items():
            signal.disconnect(receiver)
    assert seen == [
        ("enqueued", ConveyorBackend, "add", READY),
        ("enqueued", ConveyorBackend, "fail", READY),
        ("started", ConveyorBackend, "add", RUNNING),
        ("finished", ConveyorBackend, "add", SUCCESSFUL),
        ("started", ConveyorBackend, "fail", RUNNING),
        ("finished", ConveyorBackend, "fail", FAILED),
    ]


def test_a_receiver_that_raises_in_task_finished_changes_nothing() -> None:
    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        raise RuntimeError("a broken receiver")

    task_finished.connect(receiver)
    try:
        result = dj_tasks.add.enqueue(1, 1)
        run_worker()
    finally:
        task_finished.disconnect(receiver)
    result.refresh()
    assert result.status == SUCCESSFUL and result.return_value == 2


def test_options_app_publishes_to_that_app(settings: Any) -> None:
    settings.TASKS = {
        "default": {"BACKEND": BACKEND, "QUEUES": ["default", "emails"]},
        "elsewhere": {"BACKEND": BACKEND,
                      "OPTIONS": {"APP": "tests.django.dj_tasks:memory_app"}},
    }
    result = dj_tasks.add.using(backend="elsewhere").enqueue(1, 2)

    assert run_worker() == 0  # not on the project's broker
    assert run_worker("elsewhere") == 1

    result.refresh()
    assert result.return_value == 3
    assert task_backends["elsewhere"].app is dj_tasks.memory_app


@pytest.mark.parametrize(("options", "message"), [
    ({"RETRIES": -1}, "RETRIES"),
    ({"RETRYS": 1}, "did you mean 'RETRIES'"),
    ({"APP": "no_colon"}, "module:attribute"),
    ({"BACKOFF": "soon"}, "BACKOFF"),
])
def test_bad_options_raise_invalid_task_backend(settings: Any, options: dict[str, Any],
                                                message: str) -> None:
    settings.TASKS = {"default": {"BACKEND": BACKEND, "OPTIONS": options}}
    with pytest.raises(InvalidTaskBackend, match=message):
        task_backends["default"]


def with_retrying_backend(settings: Any, **options: Any) -> None:
    settings.TASKS = {
        "default": {"BACKEND": BACKEND, "QUEUES": ["default", "emails"]},
        "retrying": {"BACKEND": BACKEND, "OPTIONS": options},
    }


def test_retries_option_runs_a_failed_task_again(settings: Any) -> None:
    with_retrying_backend(settings, RETRIES=2, BACKOFF=0)
    result = dj_tasks.flaky.using(backend="retrying").enqueue()

    assert run_worker("retrying") == 2

    result.refresh()
    assert result.status == SUCCESSFUL and result.return_value == 2
    assert result.attempts == 2 and len(result.worker_ids) == 2
    [error] = result.errors
    assert error.exception_class is dj_tasks.Boom and "attempt 1" in error.traceback


def test_a_task_waiting_to_be_retried_is_ready_with_the_error_so_far(settings: Any) -> None:
    with_retrying_backend(settings, RETRIES=1, BACKOFF=3600)
    result = dj_tasks.flaky.using(backend="retrying").enqueue()

    assert run_worker("retrying") == 1

    result.refresh()
    assert result.status == READY and not result.is_finished
    assert result.attempts == 1 and result.errors[0].exception_class is dj_tasks.Boom
    assert run_worker("retrying") == 0  # the retry is due in an hour


@pytest.mark.parametrize(("path", "alias", "reason"), [
    ("os.system", "default", "is not a django.tasks Task"),
    ("tests.django.dj_tasks.Boom", "default", "is not a django.tasks Task"),
    ("tests.django.dj_tasks.add", "elsewhere", "has no backend 'elsewhere'"),
    ("tests.django.no_such_module.add", "default", "can't import"),
])
def test_workers_run_only_django_tasks_of_a_conveyor_backend(
        path: str, alias: str, reason: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    call = {"task": path, "backend": alias, "args": [f"touch {marker}"], "kwargs": {},
            "priority": 0, "queue": "default", "run_after": None, "enqueued_at": 0.0}
    forged = project_app().send_task("conveyor.django.run", args=[call])

    run_worker()

    assert forged.state == "FAILURE"
    assert forged.result.type == "InvalidTask" and reason in forged.result.message
    assert not marker.exists()


@pytest.mark.django_db(transaction=True)
def test_a_worker_process_runs_django_tasks(start_django: Callable[..., Any],
                                           tmp_path: Path) -> None:
    Order.objects.create(email="a@example.com")
    gate = tmp_path / "gate"
    low = dj_tasks.started_at.using(priority=-50).enqueue()
    high = dj_tasks.started_at.using(priority=50).enqueue()
    results = {
        "add": dj_tasks.add.enqueue(2, 3),
        "fail": dj_tasks.fail.enqueue("remote"),
        "async": dj_tasks.async_add.enqueue(4, 5),
        "context": dj_tasks.describe.enqueue(1),
        "orm": dj_tasks.count_orders.enqueue(),
        "async-orm": dj_tasks.async_count_orders.enqueue(),
        "emails": dj_tasks.send_email.enqueue("b@example.com"),
    }
    waiting = dj_tasks.wait_for.using(priority=-100).enqueue(str(gate))

    # One thread: tasks run one at a time, in the broker's priority order.
    worker = start_django("conveyor", "worker", "-p", "1", "-t", "1", "-Q", "default,emails")
    finished(waiting, until=lambda r: r.status == RUNNING, log=worker.output)
    assert waiting.attempts == 1 and waiting.started_at is not None
    gate.touch()
    for result in [waiting, low, high, *results.values()]:
        finished(result, log=worker.output)

    assert waiting.return_value == "done"
    assert high.return_value < low.return_value  # higher priority ran first
    assert results["add"].return_value == 5
    assert results["fail"].status == FAILED
    assert results["fail"].errors[0].exception_class is dj_tasks.Boom
    assert results["async"].return_value == 9
    assert results["context"].return_value == {
        "id": results["context"].id, "attempt": 1, "status": "RUNNING", "x": 1}
    assert results["orm"].return_value == 1 and results["async-orm"].return_value == 1
    assert results["emails"].return_value == "sent to b@example.com"
    assert all(r.worker_ids == waiting.worker_ids for r in results.values())


@pytest.mark.django_db(transaction=True)
def test_a_django_task_survives_its_worker_being_killed(start_django: Callable[..., Any],
                                                        tmp_path: Path) -> None:
    """SIGKILL the whole worker while a django.tasks task runs: another worker runs it
    again once the lease lapses, and get_result ends SUCCESSFUL."""
    import signal

    gate = tmp_path / "gate"
    running = dj_tasks.wait_for.enqueue(str(gate))
    short_lease = {"CONVEYOR_LEASE_SECONDS": "2"}
    first = start_django("conveyor", "worker", "-p", "1", "-t", "1", env=short_lease)
    finished(running, until=lambda r: r.status == RUNNING, log=first.output)
    first.signal_group(signal.SIGKILL)
    first.proc.wait(10)
    second = start_django("conveyor", "worker", "-p", "1", "-t", "1", env=short_lease)
    gate.touch()
    finished(running, log=second.output)
    assert running.status == SUCCESSFUL and running.return_value == "done"
