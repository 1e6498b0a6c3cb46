"""The Flask extension in-process: configuration, the app factory, the app context in
tasks, declaring tasks before any app exists, and clear errors for bad input."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask, current_app, g

from conveyor import App, State, every
from conveyor.contrib.flask import Conveyor
from conveyor.errors import ConfigurationError, TaskError
from conveyor.testing import eager, run_until_idle


def make_flask(name: str, **config: object) -> Flask:
    app = Flask(name)
    app.config.update({"CONVEYOR_BROKER_URL": "memory://", **config})
    return app


@pytest.fixture
def conveyor() -> Iterator[Conveyor]:
    extension = Conveyor()
    yield extension
    for app in list(extension.apps.values()):
        app.close()


def test_config_makes_the_app_and_extensions_holds_it(conveyor: Conveyor, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    flask_app = make_flask("shop", CONVEYOR_BROKER_URL=url, CONVEYOR_RESULT_TTL=60,
                           CONVEYOR_NAME="orders")
    app = conveyor.init_app(flask_app)
    assert flask_app.extensions["conveyor"] is app
    assert isinstance(app, App)
    assert (app.name, app.settings.broker_url, app.settings.result_ttl) == ("orders", url, 60)
    assert make_flask_named_after_the_flask_app(conveyor) == "inventory"


def make_flask_named_after_the_flask_app(conveyor: Conveyor) -> str:
    return conveyor.init_app(make_flask("inventory")).name


def test_conveyor_app_argument_is_init_app(conveyor: Conveyor) -> None:
    flask_app = make_flask("shop")
    extension = Conveyor(flask_app)
    assert flask_app.extensions["conveyor"] is extension.app
    extension.app.close()


def test_a_misspelt_setting_is_an_error_naming_the_right_one(conveyor: Conveyor) -> None:
    with pytest.raises(ConfigurationError, match="did you mean 'CONVEYOR_BROKER_URL'"):
        conveyor.init_app(make_flask("shop", CONVEYOR_BROKER="redis://x"))


def test_a_bad_url_is_an_error_at_init(conveyor: Conveyor) -> None:
    with pytest.raises(ConfigurationError, match="no scheme"):
        conveyor.init_app(make_flask("shop", CONVEYOR_BROKER_URL="localhost:6379"))


def test_init_app_twice_is_an_error(conveyor: Conveyor) -> None:
    flask_app = make_flask("shop")
    conveyor.init_app(flask_app)
    with pytest.raises(ConfigurationError, match="already has Conveyor"):
        conveyor.init_app(flask_app)


def test_a_bad_task_option_fails_at_the_decorator(conveyor: Conveyor) -> None:
    with pytest.raises(ConfigurationError, match="did you mean 'retries'"):
        @conveyor.task(retires=3)
        def send() -> None: ...
    with pytest.raises(ConfigurationError, match="priority"):
        @conveyor.task(priority=12)
        def other() -> None: ...


def test_delay_before_any_app_says_what_to_do(conveyor: Conveyor) -> None:
    @conveyor.task
    def add(x: int, y: int) -> int:
        return x + y

    assert add(2, 3) == 5  # a plain call works without an app, as in a unit test
    with pytest.raises(ConfigurationError, match="init_app"):
        add.delay(2, 3)


def test_tasks_run_inside_the_app_context_and_tear_it_down(conveyor: Conveyor) -> None:
    torn_down: list[str] = []

    @conveyor.task
    def settings() -> str:
        g.seen = True
        return f"{current_app.name}:{current_app.config['MAIL_SENDER']}"

    @conveyor.task
    async def settings_async() -> str:
        return str(current_app.config["MAIL_SENDER"])

    @conveyor.task
    def fails() -> None:
        g.seen = True
        raise KeyError("no such user")

    flask_app = make_flask("shop", MAIL_SENDER="shop@example.com")

    @flask_app.teardown_appcontext
    def teardown(error: BaseException | None) -> None:
        if g.get("seen"):
            torn_down.append(type(error).__name__ if error else "ok")

    app = conveyor.init_app(flask_app)
    ok, ok_async, bad = settings.delay(), settings_async.delay(), fails.delay()
    run_until_idle(app)
    assert ok.get(timeout=5) == "shop:shop@example.com"
    assert ok_async.get(timeout=5) == "shop@example.com"
    assert bad.state is State.FAILURE
    with pytest.raises(TaskError, match="no such user"):
        bad.get(timeout=5)
    assert sorted(torn_down) == ["KeyError", "ok"]


def test_factory_pattern_keeps_two_apps_apart(conveyor: Conveyor, tmp_path: Path) -> None:
    @conveyor.task
    def colour() -> str:
        return str(current_app.config["COLOUR"])

    blue = make_flask("blue", COLOUR="blue", CONVEYOR_BROKER_URL=f"sqlite:///{tmp_path}/b.db")
    red = make_flask("red", COLOUR="red", CONVEYOR_BROKER_URL=f"sqlite:///{tmp_path}/r.db")
    blue_app, red_app = conveyor.init_app(blue), conveyor.init_app(red)

    with blue.app_context():
        from_blue = colour.delay()
    with red.test_request_context():
        from_red = colour.delay()
    outside = colour.delay()  # no app context: the app initialised last

    assert blue_app.broker.stats()["default"].ready == 1
    assert red_app.broker.stats()["default"].ready == 2
    run_until_idle(blue_app)
    run_until_idle(red_app)
    assert blue_app.AsyncResult(from_blue.id).get(timeout=5) == "blue"
    assert red_app.AsyncResult(from_red.id).get(timeout=5) == "red"
    assert red_app.AsyncResult(outside.id).get(timeout=5) == "red"
    with blue.app_context():
        assert conveyor.AsyncResult(from_blue.id).get(timeout=5) == "blue"
        assert conveyor.app is blue_app


def test_an_app_context_without_conveyor_is_an_error(conveyor: Conveyor) -> None:
    @conveyor.task
    def noop() -> None: ...

    conveyor.init_app(make_flask("shop"))
    with make_flask("other").app_context(), pytest.raises(ConfigurationError, match="other"):
        noop.delay()


def test_a_task_called_inline_from_a_view_shares_the_request_context(
        conveyor: Conveyor) -> None:
    @conveyor.task
    def user() -> str:
        return str(g.user)

    flask_app = make_flask("shop")
    conveyor.init_app(flask_app)

    @flask_app.get("/")
    def index() -> str:
        g.user = "ada"
        first = user()
        return f"{first} {g.user}"  # the request's context is still there afterwards

    assert flask_app.test_client().get("/").text == "ada ada"


def test_tasks_declared_after_init_app_reach_every_app(conveyor: Conveyor) -> None:
    flask_apps = make_flask("a"), make_flask("b")
    first, second = (conveyor.init_app(flask_app) for flask_app in flask_apps)

    @conveyor.task(name="late.task", queue="late")
    def late() -> int:
        return 1

    assert first.tasks["late.task"].options.queue == "late"
    assert "late.task" in second.tasks
    assert conveyor.registered["late.task"] is second.tasks["late.task"]  # the last app


def test_two_tasks_with_one_name_is_an_error(conveyor: Conveyor) -> None:
    @conveyor.task(name="same")
    def one() -> None: ...

    with pytest.raises(ConfigurationError, match="already registered"):
        @conveyor.task(name="same")
        def two() -> None: ...


@pytest.fixture
def blueprint_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module of tasks that imports only the extension, as a blueprint's would."""
    (tmp_path / "ext_holder.py").write_text("from conveyor.contrib.flask import Conveyor\n"
                                            "conveyor = Conveyor()\n")
    (tmp_path / "bp_tasks.py").write_text(
        "from ext_holder import conveyor\n\n"
        "@conveyor.task\ndef ping() -> str:\n    return 'pong'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "bp_tasks"
    holder: ModuleType | None = sys.modules.pop("ext_holder", None)
    sys.modules.pop("bp_tasks", None)
    if holder is not None:
        for app in list(holder.conveyor.apps.values()):
            app.close()


def test_conveyor_imports_registers_tasks_of_modules_that_dont_import_the_app(
        blueprint_module: str) -> None:
    from ext_holder import conveyor  # type: ignore[import-not-found]

    app = conveyor.init_app(make_flask("shop", CONVEYOR_IMPORTS=[blueprint_module]))
    assert "bp_tasks.ping" in app.tasks
    with eager(app):
        assert sys.modules["bp_tasks"].ping.delay().get(timeout=5) == "pong"


def test_bad_imports_setting_is_an_error(conveyor: Conveyor) -> None:
    with pytest.raises(ConfigurationError, match="CONVEYOR_IMPORTS"):
        conveyor.init_app(make_flask("shop", CONVEYOR_IMPORTS=3))


def test_periodic_tasks_are_scheduled_on_every_app(conveyor: Conveyor) -> None:
    @conveyor.periodic(every(minutes=5), name="cleanup", queue="maintenance")
    def cleanup() -> int:
        return 0

    app = conveyor.init_app(make_flask("shop", CONVEYOR_BEAT_SCHEDULE={
        "report": {"task": cleanup.name, "schedule": 3600}}))
    assert set(app.periodic_tasks) == {"cleanup", "report"}
    assert app.periodic_tasks["cleanup"].queue == "maintenance"
    with pytest.raises(ConfigurationError, match="task options"):
        conveyor.periodic(60, retries=2)(cleanup)


def test_periodic_arguments_are_checked_against_the_task(conveyor: Conveyor) -> None:
    conveyor.init_app(make_flask("shop"))
    with pytest.raises(ConfigurationError, match="greet.*missing a required argument: 'name'"):
        @conveyor.periodic(60, kwargs={"nobody": 1})
        def greet(name: str) -> str:
            return name


def test_eager_mode_runs_tasks_from_views(conveyor: Conveyor) -> None:
    @conveyor.task(bind=True)
    def signup(task: object, email: str) -> str:
        return f"welcome {email} from {current_app.name}"

    flask_app = make_flask("shop")
    app = conveyor.init_app(flask_app)

    @flask_app.post("/signup")
    def view() -> str:
        return signup.delay("ada@example.com").get(timeout=5)

    with eager(app):
        assert flask_app.test_client().post("/signup").text == "welcome ada@example.com from shop"


def test_task_defaults_and_routes_come_from_the_config(conveyor: Conveyor) -> None:
    @conveyor.task(name="emails.welcome")
    def welcome() -> str:  # declared before any Flask app exists
        return "sent"

    @conveyor.task(name="shop.tidy", retries=0)
    def tidy() -> None: ...

    shop = make_flask("shop", CONVEYOR_TASK_DEFAULTS={"retries": 4, "time_limit": 60},
                      CONVEYOR_ROUTES={"emails.*": {"queue": "emails", "priority": 3}})
    app = conveyor.init_app(shop)

    @conveyor.task(name="emails.receipt")
    def receipt() -> None: ...  # declared after init_app

    for name in ("emails.welcome", "emails.receipt"):
        assert app.tasks[name].options["retries"] == 4
        assert app.tasks[name].options["time_limit"] == 60
    assert app.tasks["shop.tidy"].options["retries"] == 0  # its own option wins
    sent, later = welcome.delay(), receipt.delay()
    tidy.delay()
    assert {q: s.ready for q, s in app.broker.stats().items()} == {"emails": 2, "default": 1}
    assert {d.id: d.priority for d in app.broker.reserve(["emails"], 10, 0)} == {
        sent.id: 3, later.id: 3}


def test_each_flask_app_routes_by_its_own_config(conveyor: Conveyor) -> None:
    @conveyor.task(name="emails.welcome")
    def welcome() -> None: ...

    routed = make_flask("routed", CONVEYOR_ROUTES={"emails.*": {"queue": "emails"}})
    plain = make_flask("plain")
    routed_app, plain_app = conveyor.init_app(routed), conveyor.init_app(plain)
    with routed.app_context():
        welcome.delay()
    with plain.app_context():
        welcome.delay()
    assert routed_app.broker.stats()["emails"].ready == 1
    assert plain_app.broker.stats()["default"].ready == 1
    assert "emails" not in plain_app.broker.stats()


@pytest.mark.parametrize(("config", "message"), [
    ({"CONVEYOR_TASK_DEFAULTS": {"retrys": 3}}, "did you mean 'retries'"),
    ({"CONVEYOR_ROUTES": {"emails.*": {"queue": "a,b"}}}, r"routes\['emails.\*'\]: queue"),
    ({"CONVEYOR_ROUTE": {}}, "did you mean 'CONVEYOR_ROUTES'"),
])
def test_bad_defaults_or_routes_fail_at_init_app(conveyor: Conveyor, config: dict[str, Any],
                                                 message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        conveyor.init_app(make_flask("shop", **config))


def test_the_worker_prefetch_comes_from_the_config(conveyor: Conveyor) -> None:
    app = conveyor.init_app(make_flask("slow", CONVEYOR_WORKER_PREFETCH=1))
    assert app.settings.worker_prefetch == 1
