"""Rate limits in one process: the option's checks, what a worker does with a task over
the limit (it goes back to its queue, due at its slot, as it was), and the `Defer` seam
any middleware may use. Real worker processes: tests/worker/test_rate_limits_e2e.py."""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec
import pytest

from conveyor import App, ConfigurationError, Defer, Middleware, chain
from conveyor.backends.memory import MemoryBroker, MemoryCoordination, MemoryResultStore
from conveyor.errors import BrokerUnavailable
from conveyor.message import Message, unseal
from conveyor.middleware.rate_limits import HEADER, interval, schedule_key
from conveyor.records import State
from conveyor.task import Task
from conveyor.testing import eager, run_until_idle
from conveyor.worker.worker import Worker


def run_ready(app: App, queues: tuple[str, ...] = ("default",)) -> int:
    """Run what is ready now (not what waits in the schedule); how many tasks ran."""
    worker = Worker(app, queues, threads=2)
    worker.run(burst=True)
    return worker.consumer.processed


def waiting(app: App, queue: str = "default") -> list[Message]:
    """The messages waiting in `queue`'s schedule, as the broker holds them (they are
    made due, looked at and put back ready, unrun)."""
    broker = app.broker
    assert isinstance(broker, MemoryBroker)
    broker.make_all_due()
    messages = []
    for delivery in broker.reserve([queue], 100, 0.0):
        message = unseal(delivery.body, ())
        assert (delivery.queue, delivery.priority) == (message.queue, message.priority)
        messages.append(message)
        broker.retry(delivery, delivery.body, None)
    return messages


# -- the option -----------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "seconds"), [
    ("100/m", 0.6), ("10/s", 0.1), ("0.5/s", 2.0), ("2/h", 1800.0), (" 30 / m ", 2.0),
    ("1.5/m", 40.0),
])
def test_a_rate_is_a_number_per_second_minute_or_hour(rate: str, seconds: float) -> None:
    assert interval("shop.send", rate) == pytest.approx(seconds)


@pytest.mark.parametrize("rate", ["100", "100/min", "100/d", "0/s", "-5/m", "/m", "m",
                                  "1e3/s", "nan/s", 100, 1.5, True, ["100/m"]])
def test_a_bad_rate_fails_the_declaration_naming_the_task_and_the_forms(
        app: App, rate: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        app.task(name="shop.send", rate_limit=rate)(lambda: None)

    said = str(info.value)
    assert said.startswith("task 'shop.send': rate_limit must be 'N/s', 'N/m' or 'N/h'")
    assert repr(rate) in said
    assert "shop.send" not in app.tasks


def test_rate_limit_reads_back_as_declared_and_defaults_to_none(app: App) -> None:
    limited = app.task(name="limited", rate_limit="100/m")(lambda: None)
    free = app.task(name="free")(lambda: None)

    assert (limited.options["rate_limit"], free.options["rate_limit"]) == ("100/m", None)


def test_task_defaults_give_every_task_a_rate_limit_a_task_overrides() -> None:
    app = App("shop", broker="memory://", task_defaults={"rate_limit": "10/s"})
    default = app.task(name="default")(lambda: None)
    own = app.task(name="own", rate_limit="1/m")(lambda: None)
    unlimited = app.task(name="unlimited", rate_limit=None)(lambda: None)

    assert [t.options["rate_limit"] for t in (default, own, unlimited)] == [
        "10/s", "1/m", None]
    app.close()


def test_a_call_cant_set_its_own_rate_limit(app: App) -> None:
    # A limit is shared by every call of the task: one call can't have another
    send = app.task(name="send", rate_limit="1/s")(lambda: None)

    with pytest.raises(TypeError, match="rate_limit"):
        send.apply_async(rate_limit="100/s")  # type: ignore[call-arg]


# -- a worker and tasks over the limit -------------------------------------------------


@pytest.fixture
def ran(app: App) -> list[tuple[str, int]]:
    return []


@pytest.fixture
def limited(app: App, ran: list[tuple[str, int]]) -> Task[..., Any]:
    @app.task(name="shop.limited", rate_limit="1/s", bind=True, queue="emails", retries=3)
    def limited(task: Any, label: str) -> str:
        ran.append((label, task.attempt))
        return label

    return limited


def test_a_task_over_the_limit_waits_in_its_queue_keeping_attempt_priority_and_queue(
        app: App, limited: Task[..., Any], ran: list[tuple[str, int]]) -> None:
    started = time.time()
    first = limited.apply_async(("first",), priority=9)
    later = limited.message(["later"], None, priority=7)
    app.publish([msgspec.structs.replace(later, attempt=3)])  # as a third attempt is

    run_ready(app, ("emails",))

    assert ran == [("first", 1)]  # one slot per second: the other one waits...
    assert app.broker.stats()["emails"].scheduled == 1  # ...in the broker's schedule
    assert app.AsyncResult(later.id).state is State.PENDING  # nothing written for it
    assert first.get(timeout=1) == "first"
    (deferred,) = waiting(app, "emails")
    assert (deferred.id, deferred.attempt, deferred.priority, deferred.queue) == (
        later.id, 3, 7, "emails")
    assert deferred.headers[HEADER].startswith("3:")
    assert started + 1.0 <= deferred.eta <= time.time() + 1.0  # due at its slot, 1 s on


def test_a_deferred_task_runs_at_its_slot_without_taking_another(
        app: App, limited: Task[..., Any], ran: list[tuple[str, int]]) -> None:
    started = time.monotonic()
    limited.delay("first")
    second = limited.delay("second")
    run_ready(app, ("emails",))  # "second" took the slot 1 s from now, and waits for it

    app.broker.make_all_due()  # type: ignore[attr-defined]
    run_ready(app, ("emails",))

    assert ran == [("first", 1), ("second", 1)]
    assert second.get(timeout=1) == "second"
    # The schedule's next free slot is the third, 2 s after the first was taken (3 s had
    # "second" taken another when it came back). `pace` answers from now: add the time
    # since the test began, however slow the machine was meanwhile.
    next_slot = app.coordination.pace(schedule_key("shop.limited"), 1.0)
    assert 1.95 <= next_slot + (time.monotonic() - started) < 2.95


def test_a_deferral_is_not_counted_as_a_processed_task(
        app: App, limited: Task[..., Any]) -> None:
    limited.map([("a",), ("b",), ("c",)])

    processed = run_ready(app, ("emails",))

    assert processed == 1  # --max-tasks-per-child counts tasks run, not tasks put back


def test_a_retry_takes_a_new_slot(app: App, ran: list[tuple[str, int]]) -> None:
    @app.task(name="shop.flaky", rate_limit="1/s", bind=True, retry_delay=0.0, retries=1)
    def flaky(task: Any) -> str:
        ran.append(("flaky", task.attempt))
        if task.attempt == 1:
            raise ConnectionError("try again")
        return "ok"

    result = flaky.delay()
    run_ready(app)  # attempt 1 runs in the slot it took now, and fails
    run_ready(app)  # attempt 2 comes back at once, takes the next slot: 1 s away

    assert ran == [("flaky", 1)]
    (retried,) = waiting(app)
    assert (retried.attempt, retried.headers[HEADER][:2]) == (2, "2:")
    run_ready(app)  # back at its slot (the memory broker skips the wait): it runs
    assert result.get(timeout=1) == "ok"


def test_a_rate_limited_chain_step_runs_after_waiting_for_its_slot(app: App) -> None:
    @app.task(name="shop.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="shop.slow_double", rate_limit="1/h")
    def slow_double(x: int) -> int:
        return 2 * x

    app.coordination.pace(schedule_key("shop.slow_double"), 3600.0)  # the slot now is gone
    result = chain(add.s(1, 2), slow_double.s()).delay()

    run_until_idle(app, fail_fast=True)  # the memory broker skips the hour's wait

    assert result.get(timeout=1) == 6


def test_eager_mode_applies_no_limit(app: App) -> None:
    @app.task(name="shop.hourly", rate_limit="1/h")
    def hourly(n: int) -> int:
        return n

    with eager(app):
        results = [hourly.delay(n).get(timeout=1) for n in range(5)]

    assert results == [0, 1, 2, 3, 4]


class Unreachable(MemoryCoordination):
    def pace(self, key: str, interval: float) -> float:
        raise BrokerUnavailable("coordination store at memory:// is unreachable")


def test_while_the_store_is_unreachable_limited_tasks_wait_and_it_is_logged_once(
        app: App, limited: Task[..., Any], ran: list[tuple[str, int]],
        caplog: pytest.LogCaptureFixture) -> None:
    app.use(MemoryBroker(), MemoryResultStore(), Unreachable())
    limited.map([("a",), ("b",), ("c",)])

    with caplog.at_level(logging.ERROR, logger="conveyor.worker"):
        run_ready(app, ("emails",))

    assert ran == []  # the limit holds: nothing runs without a slot
    assert app.broker.stats()["emails"].scheduled == 3
    assert [r.getMessage()[:35] for r in caplog.records] == [
        "rate limits: can't take slots, the "]
    assert all(HEADER not in m.headers for m in waiting(app, "emails"))  # no slot taken


# -- Defer, for any middleware -----------------------------------------------------------


class Maintenance(Middleware):
    """Defers every task of a queue under maintenance by a minute, marking it."""

    def before_start(self, task: Task[..., Any], message: Message) -> None:
        if task.options["queue"] == "billing" and "deferred" not in message.headers:
            raise Defer(time.time() + 60, {"deferred": "maintenance"})


def test_a_users_middleware_can_defer_a_task_to_later() -> None:
    app = App("shop", broker="memory://", middleware=[Maintenance()])
    ran: list[str] = []

    @app.task(name="shop.charge", queue="billing", bind=True)
    def charge(task: Any) -> str:
        ran.append(task.headers.get("deferred", ""))
        return "charged"

    result = charge.delay()
    run_ready(app, ("billing",))
    assert ran == []
    assert app.broker.stats()["billing"].scheduled == 1

    run_until_idle(app, ["billing"])

    assert (ran, result.get(timeout=1)) == (["maintenance"], "charged")
    app.close()
