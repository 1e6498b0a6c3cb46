"""The run-once guard on RabbitMQ. Workflow steps and beat ticks are `once`: a copy
published twice (its publisher died before acking) runs once, but the same broker entry
handed out again (its worker was killed, or it retries) runs again. Two Apps on one
RabbitMQ namespace and one results file stand for two worker processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from conveyor import App, TaskContext, chain
from conveyor.broker import Delivery
from conveyor.message import Message
from conveyor.testing import run_until_idle
from conveyor.worker.executor import Executor, Prepared
from tests.conftest import amqp_url_for

MakeApp = Callable[[], App]


@pytest.fixture
def ran() -> list[int]:
    return []


@pytest.fixture(params=["amqp", "amqp-quorum"])
def make_app(request: pytest.FixtureRequest, tmp_path: Path, ran: list[int]
             ) -> Iterator[MakeApp]:
    """Apps ("worker processes") sharing the broker and the store; `step` records its
    calls in `ran`, whichever App ran it."""
    url = amqp_url_for(request)
    if request.param == "amqp-quorum":
        url += "&queue_type=quorum"
    made: list[App] = []

    def make() -> App:
        app = App("t", broker=url, results=f"sqlite:///{tmp_path / 'results.db'}")

        @app.task(name="step")
        def step(x: int) -> int:
            ran.append(x)
            return x * 2

        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


def once_step(app: App, x: int) -> Message:
    return msgspec.structs.replace(app.tasks["step"].message((x,), None), once=True)


def reserve(app: App, n: int) -> list[Delivery]:
    got: list[Delivery] = []
    for _ in range(20):
        got += app.broker.reserve(["default"], n - len(got), 0.5)
        if len(got) == n:
            return got
    raise AssertionError(f"expected {n} messages, got {len(got)}")


def executor(app: App) -> Executor:
    return Executor(app, lambda record, ttl: None, lambda delivery: None)


def prepared(app: App, delivery: Delivery) -> Prepared:
    ready = executor(app).prepare(delivery)
    assert isinstance(ready, Prepared), ready
    return ready


def test_a_step_whose_worker_was_killed_runs_on_the_next_worker(
    make_app: MakeApp, ran: list[int]
) -> None:
    # Given a worker process that ran two tasks, then took a run-once step and claimed it
    first = make_app()
    first.publish([first.tasks["step"].message((1,), None),
                   first.tasks["step"].message((2,), None)])
    message = once_step(first, 21)
    first.publish([message])
    one, two, held = reserve(first, 3)
    first.broker.ack([one, two])
    assert executor(first).first_run(prepared(first, held))

    # When it is killed before the step ends (its connection drops, nothing acked)
    first.broker.close()

    # Then the next worker process gets the step back and runs it: not a duplicate
    second = make_app()
    assert run_until_idle(second) == 1
    assert ran == [21]
    assert second.AsyncResult(message.id).get(timeout=5) == 42


def test_a_step_published_twice_runs_once_across_workers(
    make_app: MakeApp, ran: list[int]
) -> None:
    # Given a run-once step published twice (two publishes, one task id)
    first, second = make_app(), make_app()
    message = once_step(first, 21)
    first.publish([message])
    first.publish([message])

    # When one worker process holds the first copy while another runs the second
    held = reserve(first, 1)[0]
    assert run_until_idle(second) == 1

    # Then the first copy is a duplicate: the step ran once
    assert not executor(first).first_run(prepared(first, held))
    first.broker.ack([held])
    assert ran == [21]
    assert second.AsyncResult(message.id).get(timeout=5) == 42


def test_a_chain_step_that_retries_finishes(make_app: MakeApp, ran: list[int]) -> None:
    # Given a chain whose second step (a run-once message) fails once, then succeeds
    app = make_app()
    attempts: list[int] = []

    @app.task(name="flaky", bind=True, retries=2, backoff=0)
    def flaky(task: TaskContext, x: int) -> int:
        attempts.append(task.attempt)
        if task.attempt == 1:
            raise ConnectionError("try again")
        return x + 1

    # When it runs
    result = chain(app.tasks["step"].s(5), flaky.s()).delay()
    run_until_idle(app)

    # Then the retry ran (it is the same broker entry, published anew), and the chain ended
    assert attempts == [1, 2]
    assert result.get(timeout=5) == 11
