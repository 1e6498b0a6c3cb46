"""The admin page of periodic schedules (issue 14; what django-celery-beat gives Celery
users): it lists the project's schedules and adds, edits, pauses, resumes and removes
runtime ones in the App's coordination store (here the Django database), through
Django's test client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from conveyor import every
from conveyor.contrib.django import DjangoApp

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "admin:conveyor_runtimeschedule_changelist"
ADD = "admin:conveyor_runtimeschedule_add"


def op(name: str, what: str) -> str:
    return reverse("admin:conveyor_runtimeschedule_op", args=[name, what])


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[DjangoApp]:
    """The project's App: a schedule in code; runtime ones stored in the database."""
    test_app = DjangoApp("schedule-admin", broker="memory://", results="django://")

    @test_app.periodic(every(hours=1), name="hourly")
    def cleanup(days: int = 30) -> None: ...

    test_app.task(name="shop.report")(lambda kind: None)
    monkeypatch.setattr(apps.get_app_config("conveyor"), "app", test_app)
    yield test_app
    test_app.close()


def form(**fields: object) -> dict[str, object]:
    return {"name": "weekly", "task": "shop.report", "cron": "0 8 * * mon", "tz": "UTC",
            "every": "", "args": '["weekly"]', "kwargs": "{}", "queue": "", "priority": "",
            "catch_up": "once", **fields}


def test_the_page_is_in_the_admin_index_and_lists_code_and_runtime_schedules(
    admin_client: Client, app: DjangoApp,
) -> None:
    app.schedules.add("often", "shop.report", every(minutes=5), args=("daily",))

    index = admin_client.get(reverse("admin:index")).content.decode()
    page = admin_client.get(reverse(LIST)).content.decode()

    assert "Periodic schedules" in index and reverse(LIST) in index
    assert 'data-name="hourly"' in page and 'data-name="often"' in page
    assert "every 5m" in page and "&quot;daily&quot;" in page and " UTC (in " in page
    assert page.count('value="Pause"') == 1  # only the runtime one has buttons


def test_adding_a_schedule_stores_it_for_the_beats(admin_client: Client, app: DjangoApp) -> None:
    response = admin_client.post(reverse(ADD), form(), follow=True)

    assert response.status_code == 200
    assert "Schedule &#x27;weekly&#x27; added" in response.content.decode()
    info = app.schedules.get("weekly")
    assert (info.task, info.args, str(info.schedule)) == (
        "shop.report", ("weekly",), "cron 0 8 * * mon")


@pytest.mark.parametrize(("fields", "says"), [
    ({"cron": "0 25 * * *"}, "hour &#x27;25&#x27; is out of range 0-23"),
    ({"cron": "", "every": "often"}, "use a number of seconds or spans"),
    ({"every": "5m"}, "Give a cron expression or an interval (one of them)."),
    ({"args": "[1,"}, "Not JSON"),
    ({"task": "shop.reprot"}, "did you mean &#x27;shop.report&#x27;?"),
    ({"args": "[]"}, "missing a required argument: &#x27;kind&#x27;"),
    ({"name": "hourly"}, "is declared in code"),
])
def test_a_mistake_shows_on_the_form_and_stores_nothing(
    admin_client: Client, app: DjangoApp, fields: dict[str, str], says: str,
) -> None:
    response = admin_client.post(reverse(ADD), form(**fields))

    assert response.status_code == 200
    assert says in response.content.decode()
    assert app.schedules.stored() == {}


def test_pause_resume_edit_and_remove(admin_client: Client, app: DjangoApp) -> None:
    app.schedules.add("weekly", "shop.report", every(minutes=5), args=("weekly",))

    paused = admin_client.post(op("weekly", "pause"), follow=True).content.decode()
    assert app.schedules.get("weekly").paused and "Schedule &#x27;weekly&#x27; paused." in paused
    assert 'value="Resume"' in paused
    admin_client.post(op("weekly", "resume"))
    assert not app.schedules.get("weekly").paused

    change = reverse("admin:conveyor_runtimeschedule_change", args=["weekly"])
    prefilled = admin_client.get(change).content.decode()
    assert 'value="300"' in prefilled and "&quot;weekly&quot;" in prefilled
    admin_client.post(change, form(name="ignored", cron="", every="1h"))
    assert str(app.schedules.get("weekly").schedule) == "every 1h"

    admin_client.post(op("weekly", "remove"))
    assert [i.name for i in app.schedules.list()] == ["hourly"]
    assert admin_client.get(op("weekly", "remove")).status_code == 405


def test_a_user_who_may_only_view_cannot_change_anything(app: DjangoApp) -> None:
    app.schedules.add("weekly", "shop.report", every(minutes=5), args=("weekly",))
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_runtimeschedule"))
    client = Client()
    client.force_login(user)

    page = client.get(reverse(LIST)).content.decode()

    assert 'data-name="weekly"' in page and 'value="Pause"' not in page
    assert client.post(op("weekly", "pause")).status_code == 403
    assert client.get(reverse(ADD)).status_code == 403
    assert not app.schedules.get("weekly").paused
