"""The Django integration's own App: settings.CONVEYOR, autodiscovery, enqueue on commit,
database connections in workers, and ``manage.py conveyor`` with a real worker."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings

from conveyor import App
from conveyor.contrib.django import DjangoApp, project_app
from conveyor.contrib.django.config import parse
from conveyor.errors import ConfigurationError
from tests.conftest import require_service
from tests.django.conftest import DjangoProcess
from tests.django.testapp.models import Order

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def app() -> Iterator[DjangoApp]:
    """A DjangoApp of its own on the memory broker, with one task."""
    app = DjangoApp("unit", broker="memory://")

    @app.task
    def ship(order_id: int) -> int:
        return order_id

    yield app
    app.close()


def ready(app: DjangoApp) -> int:
    return app.broker.stats()["default"].ready


def test_the_project_app_is_loaded_from_settings_and_finds_tasks_py() -> None:
    app = project_app()
    from tests.django.proj_conveyor import app as defined

    assert app is defined
    assert "tests.django.testapp.tasks.confirm" in app.tasks  # autodiscovered, never imported
    assert app.settings.broker_url.startswith("sqlite:///")


@pytest.mark.parametrize(("config", "message"), [
    ({"BROKER": "redis://"}, "did you mean 'BROKER_URL'"),
    ({"APP": "proj.conveyor"}, "'module:attribute'"),
    ({"ENQUEUE_ON_COMMIT": "yes"}, "True or False"),
    ({"ROUTE": {}}, "did you mean 'ROUTES'"),
    ("redis://", "must be a dict"),
])
def test_bad_settings_are_clear_errors(config: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse(config)


def test_settings_fill_in_what_the_app_was_not_given() -> None:
    with override_settings(CONVEYOR={"NAME": "shop", "BROKER_URL": "memory://",
                                     "RESULT_TTL": 60}):
        configured = DjangoApp()
        explicit = DjangoApp("mine", broker="sqlite:///x.db")
        assert (configured.name, configured.settings.broker_url) == ("shop", "memory://")
        assert configured.settings.result_ttl == 60
        assert (explicit.name, explicit.settings.broker_url) == ("mine", "sqlite:///x.db")


def test_settings_are_read_on_first_use_not_at_definition() -> None:
    with override_settings(CONVEYOR={"BROKER_URL": "nowhere"}):
        app = DjangoApp("late")  # defining it reads nothing
        with pytest.raises(ConfigurationError, match="no scheme"):
            app.settings  # noqa: B018


def test_task_defaults_and_routes_come_from_settings() -> None:
    app = DjangoApp("routed")  # settings are read on first use, after these are declared

    @app.task(name="emails.welcome")
    def welcome() -> None: ...

    @app.task(name="shop.tidy", retries=0)
    def tidy() -> None: ...

    with override_settings(CONVEYOR={
            "BROKER_URL": "memory://", "TASK_DEFAULTS": {"retries": 4, "time_limit": 60},
            "ROUTES": {"emails.*": {"queue": "emails", "priority": 3}}}):
        sent = welcome.delay()  # the first use: reads the settings, then routes this call

        @app.task(name="emails.receipt")
        def receipt() -> None: ...

        receipt.delay()
        tidy.delay()
        stats = app.broker.stats()
        assert (stats["emails"].ready, stats["default"].ready) == (2, 1)
        routed = {d.id: d.priority for d in app.broker.reserve(["emails"], 10, 0)}
        assert routed[sent.id] == 3 and set(routed.values()) == {3}
        assert welcome.options["retries"] == receipt.options["retries"] == 4
        assert welcome.options["time_limit"] == 60
        assert tidy.options["retries"] == 0
        explicit = DjangoApp("mine", routes={"emails.*": {"queue": "mine"}})  # wins
        explicit.register(lambda: None, name="emails.x").delay()
        assert set(explicit.broker.stats()) == {"default", "mine"}
    app.close()
    explicit.close()


@pytest.mark.parametrize(("config", "message"), [
    ({"TASK_DEFAULTS": {"retrys": 3}}, "task_defaults: unknown option 'retrys'; did you "
                                       "mean 'retries'"),
    ({"ROUTES": {"emails.*": {"priority": 11}}}, r"routes\['emails.\*'\]: priority"),
])
def test_bad_defaults_or_routes_in_settings_fail_at_first_use(config: dict[str, Any],
                                                               message: str) -> None:
    with override_settings(CONVEYOR={"BROKER_URL": "memory://", **config}):
        app = DjangoApp("bad")
        with pytest.raises(ConfigurationError, match=message):
            app.settings  # noqa: B018


# For a django.tasks backend with OPTIONS = {"APP": "tests.django.test_django_app:quiet_app"}
quiet_app = App("dj-quiet", broker="memory://", task_defaults={"ignore_result": True})


def test_an_apps_task_defaults_keep_django_task_results(settings: Any) -> None:
    pytest.importorskip("django.tasks")
    from django.tasks import TaskResultStatus

    from conveyor.contrib.django.testing import run_worker
    from tests.django import dj_tasks

    settings.TASKS = {**settings.TASKS, "quiet": {
        "BACKEND": "conveyor.contrib.django.backend.ConveyorBackend",
        "OPTIONS": {"APP": "tests.django.test_django_app:quiet_app"}}}
    result = dj_tasks.add.using(backend="quiet").enqueue(1, 2)

    assert run_worker("quiet") == 1

    result.refresh()  # get_result reads what the task stored: ignore_result doesn't apply
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 3


def test_delay_on_commit_waits_for_the_commit(app: DjangoApp) -> None:
    ship = app.tasks[next(n for n in app.tasks if n.endswith("ship"))]
    with transaction.atomic():
        result = ship.delay_on_commit(7)  # type: ignore[attr-defined]
        assert ready(app) == 0
    assert ready(app) == 1
    assert result.id == app.broker.reserve(["default"], 1, 0)[0].id


def test_delay_on_commit_enqueues_nothing_on_rollback(app: DjangoApp) -> None:
    ship = next(t for n, t in app.tasks.items() if n.endswith("ship"))
    with pytest.raises(RuntimeError), transaction.atomic():
        ship.delay_on_commit(7)  # type: ignore[attr-defined]
        raise RuntimeError("the view failed")
    assert ready(app) == 0


def test_delay_on_commit_checks_arguments_at_once(app: DjangoApp) -> None:
    ship = next(t for n, t in app.tasks.items() if n.endswith("ship"))
    with transaction.atomic():
        with pytest.raises(TypeError, match="ship"):
            ship.delay_on_commit("a", "b")  # type: ignore[attr-defined]
        with pytest.raises(Exception, match="JSON|serializ|encode"):
            ship.delay_on_commit(object())  # type: ignore[attr-defined]


def test_delay_on_commit_outside_a_transaction_is_delay(app: DjangoApp) -> None:
    ship = next(t for n, t in app.tasks.items() if n.endswith("ship"))
    ship.delay_on_commit(1)  # type: ignore[attr-defined]
    assert ready(app) == 1


def test_enqueue_on_commit_makes_every_delay_wait() -> None:
    with override_settings(CONVEYOR={"BROKER_URL": "memory://", "ENQUEUE_ON_COMMIT": True}):
        app = DjangoApp("oncommit")

        @app.task
        def ship(order_id: int) -> int:
            return order_id

        with transaction.atomic():
            ship.delay(1)
            ship.apply_async((2,), countdown=0)
            assert ready(app) == 0
        assert ready(app) == 2
        with pytest.raises(RuntimeError), transaction.atomic():
            ship.delay(3)
            raise RuntimeError("rolled back")
        assert ready(app) == 2
        ship.delay(4)  # no transaction: at once
        assert ready(app) == 3
        app.close()


@pytest.fixture
def project() -> Iterator[DjangoApp]:
    app = project_app()
    app.broker.purge("default")
    yield app
    app.broker.purge("default")
    app.close()


def test_a_worker_sees_the_row_its_task_was_enqueued_for(
        project: DjangoApp, start_django: Callable[..., DjangoProcess]) -> None:
    from tests.django.testapp.tasks import confirm

    with transaction.atomic():
        order = Order.objects.create(email="ada@example.com")
        result = confirm.delay_on_commit(order.id)
    worker = start_django("conveyor", "worker", "-p", "1", "-t", "2")
    assert result.get(timeout=30) == "ada@example.com"
    order.refresh_from_db()
    assert order.confirmed
    # Stopped warm, so its ack is written: a SIGKILL between the result and the ack would
    # leave the message to come back, a lease later, to another test's in-process worker.
    assert worker.stop() == 0


def test_status_command_shows_the_queue(project: DjangoApp,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from tests.django.testapp.tasks import count_orders

    count_orders.delay()
    call_command("conveyor", "status")
    assert "default  1" in capsys.readouterr().out


def test_manage_py_conveyor_refuses_the_a_option() -> None:
    out = subprocess.run([sys.executable, "-m", "django", "conveyor", "status", "-A", "x"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "-A is not used here" in out.stderr


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_worker_survives_the_database_closing_its_connection(
        project: DjangoApp, start_django: Callable[..., DjangoProcess]) -> None:
    """PostgreSQL drops the worker's persistent connection between two tasks (a restart,
    an idle timeout, a failover): the next task reconnects instead of failing."""
    psycopg = pytest.importorskip("psycopg")
    require_service("127.0.0.1", 5432, "PostgreSQL")
    from tests.django.testapp.tasks import backend_pid

    worker = start_django("conveyor", "worker", "-p", "1", "-t", "1",
                          env={"DJANGO_SETTINGS_MODULE": "tests.django.settings_pg"})
    first = backend_pid.delay().get(timeout=30)
    assert backend_pid.delay().get(timeout=10) == first  # the connection is kept...
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as db:
        db.execute("SELECT pg_terminate_backend(%s)", (first,))
    second = backend_pid.delay()
    assert second.get(timeout=10) != first  # ...and replaced when the server closed it
    assert worker.stop() == 0  # warm: its acks are written (see above)


def test_the_worker_prefetch_comes_from_settings() -> None:
    with override_settings(CONVEYOR={"BROKER_URL": "memory://", "WORKER_PREFETCH": 1}):
        app = DjangoApp("slow")
        assert app.settings.worker_prefetch == 1
    app.close()
