"""The admin of ``results="django://"``: its pages render, its filters filter, and its
actions retry failed tasks and revoke waiting ones, on a real App run in-process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conveyor.contrib.django import DjangoApp
from conveyor.contrib.django.models import TaskResult
from conveyor.errors import BrokerUnavailable
from conveyor.records import ErrorInfo, ResultRecord, State
from conveyor.testing import run_until_idle

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "admin:conveyor_taskresult_changelist"
calls: list[str] = []  # what ran, as "double(2)"


def double(n: int) -> int:
    calls.append(f"double({n})")
    return n * 2


def flaky(n: int) -> int:
    """Fails the first time it runs with `n`, works after."""
    calls.append(f"flaky({n})")
    if calls.count(f"flaky({n})") == 1:
        raise ValueError(f"boom on {n}")
    return n


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[DjangoApp]:
    """The project's App for these tests: an in-memory broker, results in the database."""
    test_app = DjangoApp("admin-tests", broker="memory://", results="django://")
    test_app.task(name="admin_tests.double")(double)
    test_app.task(name="admin_tests.flaky")(flaky)
    monkeypatch.setattr(apps.get_app_config("conveyor"), "app", test_app)
    calls.clear()
    yield test_app
    test_app.close()


def act(client: Client, action: str, *ids: str) -> list[str]:
    """Run an admin action on rows; the messages it left."""
    response = client.post(reverse(LIST), {"action": action, "_selected_action": ids},
                           follow=True)
    assert response.status_code == 200
    return [str(m) for m in response.context["messages"]]


def row(task_id: str) -> Any:
    return TaskResult.objects.get(pk=task_id)


def test_the_list_shows_tasks_and_filters_them_by_state_task_and_date(
    admin_client: Client, app: DjangoApp,
) -> None:
    done = app.tasks["admin_tests.double"].delay(2)
    failed = app.tasks["admin_tests.flaky"].delay(1)
    run_until_idle(app)

    page = admin_client.get(reverse(LIST)).content.decode()
    only_failed = admin_client.get(reverse(LIST), {"state__exact": "FAILURE"}).content.decode()
    only_double = admin_client.get(reverse(LIST), {"task_name": "admin_tests.double"})
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    today = admin_client.get(reverse(LIST), {  # what "Today" links to
        "created__gte": str(midnight), "created__lt": str(midnight + timedelta(days=1))})
    yesterday = admin_client.get(reverse(LIST), {
        "created__gte": str(midnight - timedelta(days=1)), "created__lt": str(midnight)})

    for title in ("state", "task", "created", "updated"):
        assert f'data-filter-title="{title}"' in page
    assert done.id in page and failed.id in page
    assert failed.id in only_failed and done.id not in only_failed
    assert done.id in only_double.content.decode()
    assert failed.id not in only_double.content.decode()
    assert done.id in today.content.decode() and failed.id in today.content.decode()
    assert done.id not in yesterday.content.decode()


def test_search_finds_a_task_by_the_beginning_of_its_id(
    admin_client: Client, app: DjangoApp,
) -> None:
    one = app.tasks["admin_tests.double"].delay(1)
    other = app.tasks["admin_tests.double"].delay(2)

    found = admin_client.get(reverse(LIST), {"q": one.id[:12]}).content.decode()

    assert one.id in found and other.id not in found


def test_the_detail_page_shows_the_call_the_error_and_the_traceback(
    admin_client: Client, app: DjangoApp,
) -> None:
    failed = app.tasks["admin_tests.flaky"].delay(7)
    run_until_idle(app)

    page = admin_client.get(reverse("admin:conveyor_taskresult_change", args=[failed.id]))

    html = page.content.decode()
    assert page.status_code == 200
    assert "ValueError: boom on 7" in html
    assert "Traceback (most recent call last)" in html
    assert "<pre" in html and "FAILURE" in html
    assert 'name="_save"' not in html  # read-only


def test_nobody_adds_task_results_by_hand(admin_client: Client, app: DjangoApp) -> None:
    assert admin_client.get(reverse("admin:conveyor_taskresult_add")).status_code == 403


def test_retry_re_queues_a_failed_task_from_its_dead_letter(
    admin_client: Client, app: DjangoApp,
) -> None:
    result = app.tasks["admin_tests.flaky"].delay(3)
    run_until_idle(app)
    assert row(result.id).state == "FAILURE"
    assert [d.id for d in app.broker.dead_letters()] == [result.id]

    said = act(admin_client, "retry_failed", result.id)

    assert said == ["Re-queued 1 task(s)."]
    assert row(result.id).state == "PENDING"  # until a worker takes it again
    assert app.broker.dead_letters() == []
    run_until_idle(app)
    assert result.get(timeout=5) == 3
    assert calls == ["flaky(3)", "flaky(3)"]


def test_retry_says_which_tasks_had_no_dead_letter_left(
    admin_client: Client, app: DjangoApp,
) -> None:
    gone = ResultRecord(id="gone-1", state=State.FAILURE, task="admin_tests.flaky",
                        error=ErrorInfo("ValueError", "boom"), updated=1.0)
    app.results.store([(gone, 60.0)])
    done = app.tasks["admin_tests.double"].delay(1)
    run_until_idle(app)

    said = act(admin_client, "retry_failed", gone.id)
    said_for_success = act(admin_client, "retry_failed", done.id)

    assert said == ["1 task(s) had no dead letter left (already retried or purged): gone-1."]
    assert row(gone.id).state == "FAILURE"
    assert said_for_success == ["None of the selected tasks failed."]


def test_revoke_stops_a_pending_task_from_ever_running(
    admin_client: Client, app: DjangoApp,
) -> None:
    result = app.tasks["admin_tests.double"].delay(4)
    assert row(result.id).state == "PENDING"  # queued tasks are listed at once

    said = act(admin_client, "revoke_waiting", result.id)

    assert said == ["Revoked 1 task(s)."]
    assert row(result.id).state == "REVOKED"
    assert result.state is State.REVOKED
    assert run_until_idle(app) == 0
    assert calls == []


def test_stop_running_asks_the_worker_running_the_task_to_stop_it(
    admin_client: Client, app: DjangoApp,
) -> None:
    from conveyor.lifecycle import stopping

    result = app.tasks["admin_tests.double"].delay(4)
    assert app.broker.reserve(["default"], 1, 0)  # a worker took it and runs it
    app.results.store([(ResultRecord(id=result.id, state=State.STARTED,
                                     task="admin_tests.double", updated=time.time()), 60)])

    said = act(admin_client, "terminate_running", result.id)

    assert said == ["Asked 1 running task(s) to stop: they end REVOKED within seconds."]
    assert stopping.termination_requested(app.coordination, [result.id]) == {result.id}
    assert act(admin_client, "terminate_running", "no-such-task") == [
        "None of the selected tasks is running."]


def test_revoke_leaves_finished_tasks_alone(admin_client: Client, app: DjangoApp) -> None:
    done = app.tasks["admin_tests.double"].delay(1)
    run_until_idle(app)

    said = act(admin_client, "revoke_waiting", done.id)

    assert said == ["None of the selected tasks is waiting to run."]
    assert row(done.id).state == "SUCCESS"


def test_an_unreachable_broker_is_reported_not_raised(
    admin_client: Client, app: DjangoApp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    waiting = app.tasks["admin_tests.double"].delay(1)

    def unreachable(ids: Any) -> list[str]:
        raise BrokerUnavailable("the broker is down")

    monkeypatch.setattr(app, "revoke", unreachable)
    said = act(admin_client, "revoke_waiting", waiting.id)

    assert said == ["Nothing was revoked: the broker is down"]
    assert row(waiting.id).state == "PENDING"


def test_the_actions_need_the_change_permission(app: DjangoApp, client: Client) -> None:
    from django.contrib.auth.models import Permission, User

    viewer = User.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_taskresult"))
    client.force_login(viewer)
    app.tasks["admin_tests.double"].delay(1)

    page = client.get(reverse(LIST)).content.decode()

    assert "admin_tests.double" in page
    assert "Retry failed tasks" not in page and "Revoke pending tasks" not in page


def test_a_django_tasks_task_shows_its_own_path_not_the_runners(
        app: DjangoApp, admin_client: Client) -> None:
    # Given a task queued through the django.tasks backend (its message names the runner)
    queued = app.send_task("conveyor.django.run", args=[{"task": "shop.tasks.send_receipt"}])
    # When a worker records how it ended, under the runner's name
    app.results.store([(ResultRecord(id=queued.id, state=State.SUCCESS,
                                     task="conveyor.django.run", result=1,
                                     updated=timezone.now().timestamp()), 60.0)])
    # Then the row, the list and its filter name the task's own path
    assert row(queued.id).task_name == "shop.tasks.send_receipt"
    assert row(queued.id).state == "SUCCESS"
    page = admin_client.get(reverse(LIST), {"task_name": "shop.tasks.send_receipt"})
    assert queued.id in page.content.decode()
    assert "conveyor.django.run" not in page.content.decode()


def test_the_list_says_why_it_is_empty_when_results_are_kept_elsewhere(
        monkeypatch: pytest.MonkeyPatch, admin_client: Client) -> None:
    # Given a project whose results are kept in its broker's store, not the database
    elsewhere = DjangoApp("elsewhere", broker="memory://")
    monkeypatch.setattr(apps.get_app_config("conveyor"), "app", elsewhere)
    # When the results list is opened / Then it says where they are and what to set
    response = admin_client.get(reverse(LIST))
    said = [str(m) for m in response.context["messages"]]
    assert len(said) == 1
    assert said[0].startswith("Results are kept in memory://, not in this database")
    assert '"RESULTS_URL": "django://"' in said[0]
    elsewhere.close()


def test_the_list_has_no_warning_when_results_are_here(
        app: DjangoApp, admin_client: Client) -> None:
    response = admin_client.get(reverse(LIST))
    assert [str(m) for m in response.context["messages"]] == []
