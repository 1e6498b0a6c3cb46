"""App-wide task defaults and the routing table (docs/routing.md): what each task ends up
with, where its messages go, and clear errors for a bad configuration."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conveyor import App, Middleware, TaskError, chain, group
from conveyor.errors import ConfigurationError
from conveyor.records import State
from conveyor.testing import run_until_idle

ROUTES = {"emails.*": {"queue": "emails"}, "reports.*": {"queue": "slow", "priority": 2}}


@pytest.fixture
def apps() -> Iterator[list[App]]:
    made: list[App] = []
    yield made
    for app in made:
        app.close()


def make(apps: list[App], **options: Any) -> App:
    apps.append(App("shop", broker="memory://", **options))
    return apps[-1]


def placed(app: App, task_id: str) -> tuple[str, int]:
    """(queue, priority) of the waiting message of `task_id`."""
    queues = sorted(app.broker.stats())
    for delivery in app.broker.reserve(queues, 1000, 0):
        if delivery.id == task_id:
            return delivery.queue, delivery.priority
    raise AssertionError(f"no message for {task_id} in {queues}")


# -- task_defaults ----------------------------------------------------------------------


def test_task_defaults_become_every_tasks_options(apps: list[App]) -> None:
    app = make(apps, task_defaults={
        "retries": 3, "time_limit": 300, "soft_time_limit": 200, "ignore_result": True,
        "queue": "x", "result_ttl": 60, "acks_late": False, "backoff": 2.0,
        "retry_on": ConnectionError})

    @app.task
    def plain() -> None: ...

    options = plain.options
    assert (options["retries"], options["time_limit"], options["soft_time_limit"]) == (
        3, 300, 200)
    assert (options.ignore_result, options.queue, options.result_ttl, options.acks_late) == (
        True, "x", 60, False)
    assert options["backoff"] == 2.0
    assert options["retry_on"] == (ConnectionError,)  # normalized as @app.task does


def test_a_tasks_own_options_override_the_defaults(apps: list[App]) -> None:
    app = make(apps, task_defaults={"retries": 3, "queue": "x", "ignore_result": True})

    @app.task(retries=1, queue="mine", ignore_result=False)
    def own() -> None: ...

    @app.task(retries=0)
    def never_retried() -> None: ...

    assert (own.options["retries"], own.options.queue, own.options.ignore_result) == (
        1, "mine", False)
    assert never_retried.options["retries"] == 0 and never_retried.options.queue == "x"


def test_default_retries_make_a_failing_task_run_again(apps: list[App]) -> None:
    app = make(apps, task_defaults={"retries": 2, "backoff": 0.01})
    runs: list[int] = []

    @app.task
    def flaky() -> None:
        runs.append(1)
        raise ConnectionError("partner down")

    result = flaky.delay()
    run_until_idle(app)
    assert len(runs) == 3  # 1 + the default retries=2
    with pytest.raises(TaskError):
        result.get(timeout=1)


def test_default_ignore_result_stores_no_value(apps: list[App]) -> None:
    app = make(apps, task_defaults={"ignore_result": True})

    @app.task
    def quiet() -> int:
        return 1

    @app.task(ignore_result=False)
    def loud() -> int:
        return 2

    q, loud_result = quiet.delay(), loud.delay()
    run_until_idle(app)
    assert q.state is State.PENDING  # ran, but nothing stored
    assert loud_result.get(timeout=1) == 2


def test_a_middlewares_own_option_can_be_a_default(apps: list[App]) -> None:
    class Audit(Middleware):
        options = {"audit": False}

    app = make(apps, middleware=[Audit()], task_defaults={"audit": True})

    @app.task
    def audited() -> None: ...

    @app.task(audit=False)
    def not_audited() -> None: ...

    assert audited.options["audit"] is True and not_audited.options["audit"] is False


def test_defaults_apply_to_workflows_internal_tasks_too(apps: list[App]) -> None:
    """A group inside a chain ends in a built-in task: it goes to the default queue too,
    so a worker consuming only that queue finishes the workflow."""
    app = make(apps, task_defaults={"queue": "work"})

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def total(values: list[int]) -> int:
        return sum(values)

    result = chain(group(add.s(i, i) for i in range(3)), total.s()).delay()
    assert set(app.broker.stats()) - {"default"} == {"work"}
    run_until_idle(app, ["work"])
    assert result.get(timeout=1) == 6


# -- routes -----------------------------------------------------------------------------


def test_routes_send_tasks_to_their_queue_by_name(apps: list[App]) -> None:
    app = make(apps, routes=ROUTES)

    @app.task(name="emails.send")
    def send() -> None: ...

    @app.task(name="reports.monthly")
    def monthly() -> None: ...

    @app.task(name="shop.add")
    def add() -> None: ...

    assert placed(app, send.delay().id) == ("emails", 0)
    assert placed(app, monthly.delay().id) == ("slow", 2)
    assert placed(app, add.delay().id) == ("default", 0)


def test_the_first_matching_route_wins_alone(apps: list[App]) -> None:
    app = make(apps, routes={"emails.urgent.*": {"priority": 9},
                             "emails.*": {"queue": "emails", "priority": 1},
                             "*": {"queue": "catch-all"}})

    @app.task(name="emails.urgent.page")
    def page() -> None: ...

    @app.task(name="emails.digest")
    def digest() -> None: ...

    @app.task(name="billing.charge")
    def charge() -> None: ...

    # the first match sets the priority only; "emails.*" below it doesn't add its queue
    assert placed(app, page.delay().id) == ("default", 9)
    assert placed(app, digest.delay().id) == ("emails", 1)
    assert placed(app, charge.delay().id) == ("catch-all", 0)


def test_patterns_are_fnmatch_globs_and_case_sensitive(apps: list[App]) -> None:
    app = make(apps, routes={"*.export_?": {"queue": "exports"},
                             "[ab]*.sync": {"queue": "sync"}})
    names = {"shop.export_1": "exports", "shop.export_10": "default",
             "api.sync": "sync", "billing.sync": "sync", "crm.sync": "default",
             "Shop.Export_1": "default", "API.sync": "default"}
    for name, queue in names.items():
        task = app.register(lambda: None, name=name)
        assert placed(app, task.delay().id)[0] == queue, name


def test_precedence_call_then_route_then_decorator_then_defaults(apps: list[App]) -> None:
    app = make(apps, task_defaults={"queue": "defaults", "priority": 1},
               routes={"routed.*": {"queue": "routed", "priority": 5},
                       "half.*": {"priority": 7}})

    @app.task(name="routed.t", queue="decorator", priority=3)
    def routed() -> None: ...

    @app.task(name="half.t", queue="decorator", priority=3)
    def half() -> None: ...

    @app.task(name="plain.t", queue="decorator")
    def decorated() -> None: ...

    @app.task(name="bare.t")
    def bare() -> None: ...

    assert placed(app, routed.apply_async(queue="call", priority=9).id) == ("call", 9)
    assert placed(app, routed.apply_async(priority=0).id) == ("routed", 0)
    assert placed(app, routed.delay().id) == ("routed", 5)  # route over decorator
    assert placed(app, half.delay().id) == ("decorator", 7)  # the route sets priority only
    assert placed(app, decorated.delay().id) == ("decorator", 1)  # priority: the default
    assert placed(app, bare.delay().id) == ("defaults", 1)
    bare_app = make(apps)
    assert placed(bare_app, bare_app.register(lambda: None, name="x.t").delay().id) == (
        "default", 0)  # built in


def test_send_task_by_name_is_routed_too(apps: list[App]) -> None:
    app = make(apps, routes=ROUTES, task_defaults={"queue": "x", "priority": 4})
    assert placed(app, app.send_task("reports.daily").id) == ("slow", 2)
    assert placed(app, app.send_task("emails.send").id) == ("emails", 4)
    assert placed(app, app.send_task("other.task").id) == ("x", 4)
    assert placed(app, app.send_task("emails.send", queue="now", priority=0).id) == ("now", 0)


def test_workflow_steps_go_to_their_routed_queues(apps: list[App]) -> None:
    app = make(apps, routes=ROUTES)

    @app.task(name="emails.send")
    def send(to: str) -> str:
        return to

    result = group(send.s(f"{i}@x") for i in range(3)).delay()
    assert app.broker.stats()["emails"].ready == 3
    run_until_idle(app, ["emails"])
    assert result.get(timeout=1) == ["0@x", "1@x", "2@x"]


# -- bad configuration ---------------------------------------------------------------


@pytest.mark.parametrize(("defaults", "message"), [
    ({"retrys": 3}, "task_defaults: unknown option 'retrys'; did you mean 'retries'?"),
    ({"time_limt": 3}, "unknown option 'time_limt'; did you mean 'time_limit'?"),
    ({"retries": -1}, "task_defaults: retries must be an int >= 0.*got -1"),
    ({"time_limit": "5m"}, "task_defaults: time_limit must be seconds > 0, got '5m'"),
    ({"queue": "a,b"}, "task_defaults: queue 'a,b' can't be consumed"),
    ({"priority": 12}, "task_defaults: priority must be an int from 0 to 9.*got 12"),
    ({"soft_time_limit": 60, "time_limit": 30}, r"task_defaults: soft_time_limit \(60\)"),
    ({"name": "x"}, "task_defaults: 'name' can't be a default"),
    ({"bind": True}, "task_defaults: 'bind' can't be a default"),
    ({"rate_limit": "100/min"}, "task_defaults: rate_limit must be 'N/s', 'N/m' or 'N/h'"),
    ([("retries", 3)], "task_defaults must be a dict of task options"),
])
def test_bad_task_defaults_fail_at_app_naming_the_problem(defaults: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        App("shop", broker="memory://", task_defaults=defaults)


@pytest.mark.parametrize(("routes", "message"), [
    ({"emails.*": {"queu": "emails"}},
     r"routes\['emails.\*'\]: unknown key 'queu'; did you mean 'queue'\?"),
    ({"emails.*": {"queue": "emails", "retries": 3}}, "unknown key 'retries'"),
    ({"emails.*": {"queue": "a b "}}, r"routes\['emails.\*'\]: queue 'a b ' can't be consumed"),
    ({"emails.*": {"queue": ""}}, r"routes\['emails.\*'\]: queue must be a non-empty name"),
    ({"emails.*": {"priority": 10}}, r"routes\['emails.\*'\]: priority must be .* got 10"),
    ({"emails.*": {"priority": "high"}}, "got 'high'"),
    ({"emails.*": {}}, r"routes\['emails.\*'\] sets nothing"),
    ({"emails.*": "emails"}, r"routes\['emails.\*'\] must be a dict.*got 'emails'"),
    ({3: {"queue": "q"}}, "routes: pattern 3 must be a non-empty str"),
    ({"": {"queue": "q"}}, "routes: pattern '' must be a non-empty str"),
    ([("emails.*", {"queue": "q"})], "routes must be a dict of task-name patterns"),
])
def test_bad_routes_fail_at_app_naming_the_problem(routes: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        App("shop", broker="memory://", routes=routes)


def test_a_task_clashing_with_the_defaults_names_both(apps: list[App]) -> None:
    app = make(apps, task_defaults={"time_limit": 30})
    with pytest.raises(ConfigurationError,
                       match=r"task 'slow': soft_time_limit \(60\) must be below time_limit "
                             r"\(30\).*task_defaults"):
        app.register(lambda: None, name="slow", soft_time_limit=60)
