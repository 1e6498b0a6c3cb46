"""conveyor.contrib.django.testing: run_worker's order and what it leaves, reset."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

pytest.importorskip("django.tasks")

from django.tasks import TaskResultStatus, default_task_backend  # noqa: E402
from django.tasks.exceptions import TaskResultDoesNotExist  # noqa: E402
from django.utils import timezone  # noqa: E402

from conveyor.contrib.django.testing import reset, run_worker  # noqa: E402
from tests.django import dj_tasks  # noqa: E402
from tests.django.testapp.models import Order  # noqa: E402

READY, SUCCESSFUL = TaskResultStatus.READY, TaskResultStatus.SUCCESSFUL


# Transactional: run_worker runs tasks whose results the Django backend writes to the database.
pytestmark = [pytest.mark.usefixtures("clean_backend"), pytest.mark.django_db(transaction=True)]


def test_run_worker_runs_by_priority_then_due_time_then_enqueue_order() -> None:
    record = dj_tasks.record
    record.using(priority=10).enqueue("p10-first")
    record.using(priority=11).enqueue("p11")  # the same Conveyor band as 10: still first
    record.using(priority=-100).enqueue("lowest")
    record.using(priority=100).enqueue("highest")
    record.using(priority=10).enqueue("p10-second")
    overdue = timezone.now() - timedelta(minutes=5)
    record.using(priority=10, run_after=overdue).enqueue("p10-due-earliest")
    dj_tasks.send_email.using(priority=10).enqueue("x")  # the other queue, same rules

    assert run_worker(default_task_backend) == 7

    assert dj_tasks.RAN == ["highest", "p11", "p10-due-earliest", "p10-first", "p10-second",
                            "email:x", "lowest"]


def test_run_worker_leaves_tasks_due_later() -> None:
    later = dj_tasks.record.using(run_after=timezone.now() + timedelta(hours=1)).enqueue("later")
    now = dj_tasks.record.enqueue("now")

    assert run_worker() == 1

    assert dj_tasks.RAN == ["now"]
    later.refresh()
    now.refresh()
    assert later.status == READY and now.status == SUCCESSFUL


def test_run_worker_runs_what_tasks_enqueue_and_returns_when_idle() -> None:
    dj_tasks.enqueue_next.enqueue("a")
    assert run_worker("default") == 2
    assert dj_tasks.RAN == ["a", "a-next"]
    assert run_worker() == 0


@pytest.mark.django_db
def test_tasks_run_in_the_tests_transaction() -> None:
    Order.objects.create(email="a@example.com")
    Order.objects.create(email="b@example.com")
    counted = dj_tasks.count_orders.enqueue()
    counted_async = dj_tasks.async_count_orders.enqueue()

    run_worker()

    counted.refresh()
    counted_async.refresh()
    assert counted.return_value == 2 and counted_async.return_value == 2
    assert Order.objects.count() == 2  # the test's connection is still usable


def test_reset_empties_the_queues_and_forgets_results() -> None:
    done = dj_tasks.add.enqueue(1, 1)
    run_worker()
    queued = dj_tasks.record.enqueue("never")
    scheduled = dj_tasks.record.using(run_after=timezone.now() + timedelta(seconds=1)).enqueue(
        "never either")

    reset(default_task_backend)

    assert run_worker() == 0 and dj_tasks.RAN == []
    for result in (done, queued, scheduled):
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(result.id)
    after = dj_tasks.add.enqueue(2, 2)
    run_worker()
    after.refresh()
    assert after.return_value == 4


def test_helpers_refuse_a_backend_that_is_not_conveyors(settings: Any) -> None:
    settings.TASKS = {
        "default": {"BACKEND": "conveyor.contrib.django.backend.ConveyorBackend",
                    "QUEUES": ["default", "emails"]},
        "dummy": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"},
    }
    with pytest.raises(TypeError, match="not a ConveyorBackend"):
        run_worker("dummy")
    with pytest.raises(TypeError, match="not a ConveyorBackend"):
        reset("dummy")
