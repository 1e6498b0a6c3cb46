"""@app.task: the decorator forms, option checking, plain calls, and what delay() /
apply_async() / map() refuse before anything is queued."""

from __future__ import annotations

import asyncio
import collections
import decimal
import enum
import inspect
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor import App, AsyncResult, TaskContext
from conveyor.errors import ConfigurationError, MessageTooLarge, SerializationError
from conveyor.records import State
from conveyor.task import Task
from conveyor.testing import run_until_idle


class Colour(enum.Enum):
    RED = "red"


def ready(app: App, queue: str = "default") -> int:
    stats = app.broker.stats()
    return stats[queue].ready if queue in stats else 0


def queued(app: App) -> int:
    """Every message the broker holds, in any queue, ready or scheduled."""
    return sum(s.ready + s.scheduled + s.running for s in app.broker.stats().values())


def module_level_function(x: int) -> int:
    return x + 1


# -- decorator forms -------------------------------------------------------------------


def test_bare_decorator_registers_a_task_that_still_works_as_a_function(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        """Add two numbers."""
        return x + y

    assert isinstance(add, Task)
    assert app.tasks[add.name] is add
    assert add(2, 3) == 5
    assert add.__doc__ == "Add two numbers."
    assert add.__name__ == "add"


def test_decorator_with_options_applies_them(app: App) -> None:
    @app.task(queue="emails", priority=5, retries=3, backoff=2.0, ignore_result=True)
    def send(to: str) -> None:
        return None

    assert send.options.queue == "emails"
    assert send.options.priority == 5
    assert send.options["retries"] == 3
    assert send.options["backoff"] == 2.0
    assert send.options.ignore_result is True
    # And delay() routes to the task's queue
    send.delay("a@b.c")
    assert ready(app, "emails") == 1
    assert ready(app, "default") == 0


def test_default_options_match_the_documented_defaults(app: App) -> None:
    task = app.task(module_level_function)
    options = task.options
    assert (options.queue, options.priority, options["retries"]) == ("default", 0, 0)
    assert options.acks_late is True
    assert options.ignore_result is False


def test_default_name_is_module_dot_function(app: App) -> None:
    task = app.task(module_level_function)
    assert task.name == f"{__name__}.module_level_function"
    assert app.tasks[task.name] is task


def test_explicit_name_is_used(app: App) -> None:
    @app.task(name="math.add")
    def add(x: int, y: int) -> int:
        return x + y

    assert add.name == "math.add"
    assert "math.add" in app.tasks


def test_bound_task_receives_its_context_and_delay_omits_it(app: App) -> None:
    # Given a bind=True task
    seen: list[tuple[str, int, str]] = []

    @app.task(bind=True)
    def export(task: TaskContext, month: str) -> str:
        seen.append((task.id, task.attempt, task.name))
        return f"report-{month}"

    # Then its public signature has no context parameter
    assert list(inspect.signature(export.fn).parameters) == ["task", "month"]
    assert export.param_names == ["month"]
    # When it is delayed with only the user's arguments and run
    result = export.delay("2024-05")
    run_until_idle(app)
    # Then it got a TaskContext for this very task, attempt 1
    assert result.get(timeout=1) == "report-2024-05"
    assert seen == [(result.id, 1, export.name)]


def test_bound_task_rejects_an_explicit_context_argument_at_delay(app: App) -> None:
    @app.task(bind=True)
    def export(task: TaskContext, month: str) -> str:
        return month

    with pytest.raises(TypeError):
        export.delay("ctx", "2024-05")  # type: ignore[call-arg]
    assert queued(app) == 0


def test_bound_task_plain_call_gets_a_fresh_context(app: App) -> None:
    @app.task(bind=True)
    def whoami(task: TaskContext) -> tuple[str, int]:
        return task.name, task.attempt

    assert whoami() == (whoami.name, 1)


def test_bind_without_any_parameter_is_refused(app: App) -> None:
    with pytest.raises(TypeError, match="bind=True"):
        @app.task(bind=True)
        def nothing() -> None:  # type: ignore[misc]
            return None


def test_plain_call_runs_inline_without_touching_the_broker(app: App) -> None:
    calls: list[int] = []

    @app.task
    def record(x: int) -> int:
        calls.append(x)
        return x * 2

    assert record(4) == 8
    assert calls == [4]
    assert app._broker is None  # nothing connected, nothing queued


def test_plain_call_raises_the_functions_own_exception(app: App) -> None:
    @app.task
    def boom() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError):
        boom()


# -- registration errors -------------------------------------------------------------------


def test_same_name_for_a_different_function_is_refused(app: App) -> None:
    @app.task(name="jobs.run")
    def first() -> None:
        return None

    with pytest.raises(ConfigurationError, match="jobs.run"):
        @app.task(name="jobs.run")
        def second() -> None:
            return None

    assert app.tasks["jobs.run"] is first


def test_registering_the_same_function_twice_is_harmless(app: App) -> None:
    first = app.task(module_level_function)
    again = app.task(module_level_function)
    assert again.name == first.name
    assert again(1) == 2


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("retrys", "retries"), ("rate_lmit", "rate_limit"), ("prority", "priority"),
     ("ignore_results", "ignore_result"), ("soft_timelimit", "soft_time_limit")],
)
def test_unknown_option_names_the_closest_option(app: App, typo: str, meant: str) -> None:
    # Given a misspelt option / When the decorator is applied to the function
    with pytest.raises(ConfigurationError) as info:
        app.task(**{typo: 1})(module_level_function)
    # Then the error names the task, the typo and the option the user meant
    assert str(info.value).startswith("task 'tests.unit.test_task.module_level_function': ")
    assert repr(typo) in str(info.value)
    assert repr(meant) in str(info.value)


def user_tasks(app: App) -> list[str]:
    """Registered task names, without Conveyor's own (`conveyor.collect` ends groups)."""
    return [name for name in app.tasks if not name.startswith("conveyor.")]


def test_unknown_option_is_refused_with_the_bare_function_form_too(app: App) -> None:
    with pytest.raises(ConfigurationError, match="'retries'"):
        app.task(module_level_function, retrys=3)
    assert user_tasks(app) == []


@pytest.mark.parametrize(
    "options",
    [
        {"priority": 12},
        {"priority": -1},
        {"priority": "high"},
        {"retries": -1},
        {"retries": 1.5},
        {"soft_time_limit": 60, "time_limit": 60},
        {"soft_time_limit": 61, "time_limit": 60},
        {"time_limit": 0},
        {"time_limit": -3},
        {"retry_on": "ConnectionError"},
        {"retry_on": (ConnectionError, 42)},
        {"retry_on": int},
        {"backoff": -1},
        {"queue": ""},
    ],
)
def test_bad_option_values_are_configuration_errors(app: App, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        @app.task(**options)
        def job() -> None:
            return None

    assert user_tasks(app) == []


def test_a_single_exception_class_is_accepted_for_retry_on(app: App) -> None:
    @app.task(retry_on=ConnectionError)
    def fetch() -> None:
        return None

    assert fetch.options["retry_on"] == (ConnectionError,)


# -- delay / apply_async validation --------------------------------------------------------


def test_arguments_that_dont_fit_raise_type_error_naming_the_task(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    for args, kwargs in [((1,), {}), ((1, 2, 3), {}), ((1, 2), {"z": 3}), ((), {"x": 1})]:
        with pytest.raises(TypeError) as info:
            add.apply_async(args, kwargs)
        assert add.name in str(info.value)
    # And nothing was queued
    assert ready(app) == 0


@pytest.mark.parametrize(("args", "fits"), [
    ((), False), ((1,), True), ((1, 2), True), ((1, 2, 3), True), ((1, 2, 3, 4), False),
])
def test_positional_calls_are_checked_against_required_and_optional_parameters(
    app: App, args: tuple[int, ...], fits: bool,
) -> None:
    """Positional-only calls are checked by counting (no Signature.bind): the count must
    still honour defaults, and a bound task's context parameter takes no argument."""

    @app.task(bind=True)
    def scale(task: TaskContext, x: int, y: int = 2, z: int = 3) -> int:
        return x * y * z

    if fits:
        scale.apply_async(args)
    else:
        with pytest.raises(TypeError, match="scale"):
            scale.apply_async(args)
    assert ready(app) == (1 if fits else 0)


def test_tasks_with_star_args_or_keyword_only_parameters_are_checked_by_their_signature(
    app: App,
) -> None:
    @app.task
    def spread(*values: int, sep: str) -> str:
        return sep.join(map(str, values))

    @app.task
    def gather(first: int, *rest: int) -> int:
        return first + sum(rest)

    with pytest.raises(TypeError, match="spread"):
        spread.apply_async((1, 2))  # sep is keyword-only and required
    spread.apply_async((1, 2), {"sep": ","})
    gather.apply_async((1, 2, 3, 4, 5))
    with pytest.raises(TypeError, match="gather"):
        gather.apply_async(())
    assert ready(app) == 2


def test_delay_with_wrong_arguments_queues_nothing(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(TypeError, match="add"):
        add.delay(1)  # type: ignore[call-arg]
    assert ready(app) == 0


def test_non_json_positional_argument_is_named_by_parameter(app: App) -> None:
    @app.task
    def save(name: str, payload: object) -> None:
        return None

    # When an argument JSON can't carry is passed
    with pytest.raises(SerializationError) as info:
        save.delay("a", object())
    # Then the error names the parameter, and nothing is queued
    assert "'payload'" in str(info.value)
    assert save.name in str(info.value)
    assert ready(app) == 0


def test_non_json_keyword_argument_is_named(app: App) -> None:
    @app.task
    def save(name: str, payload: object = None) -> None:
        return None

    with pytest.raises(SerializationError, match="'payload'"):
        save.delay("a", payload=object())
    assert ready(app) == 0


def test_non_json_argument_nested_in_a_list_is_still_named(app: App) -> None:
    @app.task
    def save(items: list[object]) -> None:
        return None

    with pytest.raises(SerializationError, match="'items'"):
        save.delay([1, object()])
    assert ready(app) == 0


@pytest.mark.parametrize(("value", "why"), [
    ({3, 1, 2}, "is a set"),
    (datetime(2026, 1, 1, tzinfo=UTC), "is a datetime"),
    (uuid.UUID(int=7), "is a UUID"),
    (decimal.Decimal("1.5"), "is a Decimal"),
    (Colour.RED, "is the enum member"),
    ({1: "a"}, "has the key 1 of type int"),
    (float("nan"), "is nan"),
    ([1, {"at": [b"raw"]}], r"\[1\]\['at'\]\[0\] is a bytes"),
    ("\ud800", "lone surrogate"),
])
def test_values_json_would_change_are_refused_naming_where_they_are(
        app: App, value: object, why: str) -> None:
    # msgspec would send each of these, but the task would get another value back
    # (a list, a string, {"1": "a"}, None): Conveyor refuses them instead
    @app.task
    def keep(values: object) -> None: ...

    with pytest.raises(SerializationError, match=f"argument 'values' can't be sent as "
                                                 f"JSON: .*{why}"):
        keep.delay(value)
    assert app.broker.stats()["default"].ready == 0


def test_dict_and_list_subclasses_go_as_dicts_and_lists(app: App) -> None:
    class Label(str): ...

    @app.task
    def echo(value: object) -> object:
        return value

    result = echo.delay(collections.OrderedDict(a="x", b=(1, 2)))
    run_until_idle(app)
    assert result.get(timeout=1) == {"a": "x", "b": [1, 2]}
    with pytest.raises(SerializationError, match=r"\['a'\] is a Label, a str subclass: "
                                                 r"pass str\(value\)"):
        echo.delay({"a": Label("x")})


def test_message_over_max_message_size_raises_before_sending() -> None:
    app = App("t", broker="memory://", max_message_size=1000)

    @app.task
    def store(blob: str) -> None:
        return None

    with pytest.raises(MessageTooLarge, match="max_message_size"):
        store.delay("x" * 2000)
    assert ready(app) == 0
    # A message under the limit is fine
    store.delay("x" * 10)
    assert ready(app) == 1


@pytest.mark.parametrize("priority", [10, -1, 12])
def test_priority_outside_0_to_9_is_a_value_error(app: App, priority: int) -> None:
    @app.task
    def job() -> None:
        return None

    with pytest.raises(ValueError, match="priority"):
        job.apply_async(priority=priority)
    assert ready(app) == 0


def test_countdown_and_eta_together_are_refused(app: App) -> None:
    @app.task
    def job() -> None:
        return None

    with pytest.raises(ValueError, match="countdown or eta"):
        job.apply_async(countdown=5, eta=datetime.now(UTC) + timedelta(seconds=5))
    assert queued(app) == 0


def test_negative_countdown_is_refused(app: App) -> None:
    @app.task
    def job() -> None:
        return None

    with pytest.raises(ValueError, match="countdown"):
        job.apply_async(countdown=-1)
    assert queued(app) == 0


def test_args_must_be_a_sequence(app: App) -> None:
    @app.task
    def job(x: str) -> None:
        return None

    with pytest.raises(TypeError, match="tuple or list"):
        job.apply_async("abc")  # type: ignore[arg-type]
    assert queued(app) == 0


def test_apply_async_uses_the_given_task_id(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.apply_async((1, 1), task_id="order-42")
    assert result.id == "order-42"
    run_until_idle(app)
    assert app.AsyncResult("order-42").get(timeout=1) == 2


def test_apply_async_queue_overrides_the_tasks_queue(app: App) -> None:
    @app.task(queue="emails")
    def send(to: str) -> str:
        return to

    result = send.apply_async(("a@b.c",), queue="urgent")
    assert ready(app, "urgent") == 1
    assert ready(app, "emails") == 0
    run_until_idle(app)
    assert result.get(timeout=1) == "a@b.c"


def test_countdown_schedules_instead_of_queueing_ready(app: App) -> None:
    @app.task
    def later() -> str:
        return "done"

    result = later.apply_async(countdown=3600)
    stats = app.broker.stats()["default"]
    assert (stats.ready, stats.scheduled) == (0, 1)
    assert result.state is State.PENDING
    # run_until_idle runs scheduled work too, without waiting on the memory broker
    run_until_idle(app)
    assert result.get(timeout=1) == "done"


def test_eta_in_the_future_schedules_the_task(app: App) -> None:
    @app.task
    def later() -> str:
        return "done"

    later.apply_async(eta=datetime.now(UTC) + timedelta(hours=1))
    assert app.broker.stats()["default"].scheduled == 1
    run_until_idle(app, include_scheduled=False)
    assert app.broker.stats()["default"].scheduled == 1


# -- map ---------------------------------------------------------------------------------


def test_map_returns_one_result_per_item_in_one_publish(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    broker = app.broker
    publishes: list[int] = []
    real_publish = broker.publish

    def counting_publish(envelopes: Any) -> None:
        publishes.append(len(envelopes))
        real_publish(envelopes)

    monkeypatch.setattr(broker, "publish", counting_publish)
    # When mapping over tuples and dicts
    results = add.map([(1, 2), (3, 4), {"x": 5, "y": 6}])
    # Then there is one AsyncResult per item, all queued by a single publish
    assert len(results) == 3
    assert all(isinstance(r, AsyncResult) for r in results)
    assert len({r.id for r in results}) == 3
    assert publishes == [3]
    assert ready(app) == 3
    run_until_idle(app)
    assert [r.get(timeout=1) for r in results] == [3, 7, 11]


def test_map_with_one_bad_item_queues_none(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(TypeError, match="add"):
        add.map([(1, 2), (3,)])
    with pytest.raises(SerializationError):
        add.map([(1, 2), (3, object())])
    assert ready(app) == 0


def test_map_of_nothing_returns_nothing(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert add.map([]) == []
    assert ready(app) == 0


def test_adelay_enqueues_from_async_code(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    async def produce() -> AsyncResult[int]:
        return await add.adelay(20, 22)

    result = asyncio.run(produce())
    assert ready(app) == 1
    run_until_idle(app)
    assert result.get(timeout=1) == 42


def test_adelay_validates_like_delay(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    async def produce() -> None:
        await add.adelay(1)  # type: ignore[call-arg]

    with pytest.raises(TypeError, match="add"):
        asyncio.run(produce())
    assert ready(app) == 0


def test_aget_waits_without_blocking_the_loop(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(1, 2)
    run_until_idle(app)

    async def consume() -> int:
        return await result.aget(timeout=1)

    assert asyncio.run(consume()) == 3
