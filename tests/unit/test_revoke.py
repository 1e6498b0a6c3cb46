"""`App.revoke` and `conveyor revoke`: tasks that haven't started never run and end REVOKED;
running, finished and unknown ones are left alone."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from conveyor import App, TaskError, chain, chord, group
from conveyor.backends.memory import MemoryBroker, MemoryResultStore
from conveyor.errors import BrokerUnavailable
from conveyor.message import Message
from conveyor.middleware.base import Middleware
from conveyor.records import ResultRecord, State
from conveyor.testing import run_until_idle


class Published(Middleware):
    """Remembers every message published: how a test learns a workflow step's id."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def after_publish(self, app: App, message: Message) -> None:
        self.messages.append(message)

    def ids_of(self, task: str) -> list[str]:
        return [m.id for m in self.messages if m.task == task]


class Tasks:
    def __init__(self, app: App) -> None:
        self.ran: list[tuple[str, Any]] = []
        ran = self.ran

        @app.task(name="add")
        def add(x: int, y: int) -> int:
            ran.append(("add", (x, y)))
            return x + y

        @app.task(name="total")
        def total(values: list[int]) -> int:
            ran.append(("total", values))
            return sum(values)

        @app.task(name="on_error")
        def on_error(task_id: str) -> None:
            ran.append(("on_error", task_id))

        self.add, self.total, self.on_error = add, total, on_error


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
def app(published: Published) -> Iterator[App]:
    app = App("t", broker="memory://", middleware=[published])
    yield app
    app.close()


@pytest.fixture
def tasks(app: App) -> Tasks:
    return Tasks(app)


def waiting(app: App, queue: str = "default") -> tuple[int, int, int]:
    """(ready, scheduled, running) as `conveyor status` shows them."""
    stats = app.broker.stats()[queue]
    return stats.ready, stats.scheduled, stats.running


def test_a_revoked_task_never_runs_and_get_raises_task_revoked(app: App, tasks: Tasks) -> None:
    # Given a queued task
    result = tasks.add.delay(2, 3)
    # When it is revoked before any worker took it
    revoked = app.revoke(result.id)
    ran = run_until_idle(app)
    # Then it never ran, and its result says why
    assert revoked == [result.id]
    assert ran == 0 and tasks.ran == []
    assert result.state is State.REVOKED and result.ready() and not result.failed()
    assert result.result == "revoked before it started"
    with pytest.raises(TaskError) as caught:
        result.get(timeout=1)
    assert caught.value.type == "TaskRevoked"
    assert "revoked before it started" in str(caught.value)


def test_a_task_waiting_for_its_countdown_can_be_revoked(app: App, tasks: Tasks) -> None:
    later = tasks.add.apply_async((1, 1), countdown=3600)
    assert waiting(app) == (0, 1, 0)

    assert app.revoke([later.id]) == [later.id]

    assert waiting(app) == (0, 0, 0)
    run_until_idle(app)  # makes scheduled tasks due at once on the memory broker
    assert tasks.ran == [] and later.state is State.REVOKED


def test_only_tasks_still_waiting_are_revoked_in_the_order_given(app: App, tasks: Tasks) -> None:
    # Given a finished task, two waiting ones and an id nobody sent
    done = tasks.add.delay(0, 0)
    run_until_idle(app)
    first, second = tasks.add.delay(1, 1), tasks.add.delay(2, 2)
    # When all of them are revoked at once
    revoked = app.revoke([second.id, "never-sent", done.id, first.id, second.id])
    # Then only the waiting ones were, and the finished one keeps its result
    assert revoked == [second.id, first.id]
    assert done.get(timeout=1) == 0
    assert app.AsyncResult("never-sent").state is State.PENDING
    assert waiting(app) == (0, 0, 0)


def test_a_task_a_worker_already_took_is_not_stopped(app: App, tasks: Tasks) -> None:
    # Given a task a worker has reserved (it may be running)
    result = tasks.add.delay(4, 4)
    taken = app.broker.reserve(["default"], 1, 1.0)
    assert [d.id for d in taken] == [result.id]
    # When it is revoked
    revoked = app.revoke(result.id)
    # Then nothing happened to it: it still runs to the end
    assert revoked == []
    assert result.state is State.PENDING and waiting(app) == (0, 0, 1)
    app.broker.ack(taken)


def test_revoking_nothing_does_nothing(app: App, tasks: Tasks) -> None:
    kept = tasks.add.delay(1, 2)

    assert app.revoke([]) == []

    assert waiting(app) == (1, 0, 0) and kept.state is State.PENDING


@pytest.mark.parametrize("bad", ["", ["ok", ""]])
def test_an_empty_task_id_is_a_value_error(app: App, bad: str | list[str]) -> None:
    with pytest.raises(ValueError, match="empty task id"):
        app.revoke(bad)


@pytest.mark.parametrize("bad", [None, 42, [b"abc"], ["ok", 7], {"a-set"}])
def test_a_task_id_that_is_not_a_string_is_a_type_error(app: App, bad: Any) -> None:
    with pytest.raises(TypeError, match="task id"):
        app.revoke(bad)


# -- what a revoked task would have set off ----------------------------------------------


def test_revoking_a_chains_first_step_fails_the_rest_instead_of_leaving_them_waiting(
    app: App, tasks: Tasks, published: Published
) -> None:
    # Given a chain whose first step hasn't run
    result = chain(tasks.add.s(1, 2), tasks.add.s(3), tasks.add.s(4)).delay()
    [first] = published.ids_of("add")
    # When the first step is revoked
    assert app.revoke(first) == [first]
    run_until_idle(app)
    # Then no step runs, and the chain's result says which step was revoked
    assert tasks.ran == []
    assert app.AsyncResult(first).state is State.REVOKED
    with pytest.raises(TaskError) as caught:
        result.get(timeout=1)
    assert caught.value.type == "TaskRevoked"
    assert f"an earlier step of the chain, add [{first}]" in caught.value.message
    assert "revoked before it started" in caught.value.message


def test_revoking_a_chord_member_fails_the_chord_and_calls_its_error_handler(
    app: App, tasks: Tasks, published: Published
) -> None:
    # Given a chord of three members, none run yet
    result = chord(group(tasks.add.s(i, i) for i in range(3)),
                   tasks.total.s()).apply_async(link_error=tasks.on_error.s())
    members = published.ids_of("add")
    # When one member is revoked
    assert app.revoke(members[1]) == [members[1]]
    run_until_idle(app)
    # Then the others run, the callback never does, and whoever waits learns why
    assert sorted(args for name, args in tasks.ran if name == "add") == [(0, 0), (2, 2)]
    assert ("on_error", members[1]) in tasks.ran
    assert not any(name == "total" for name, _ in tasks.ran)
    with pytest.raises(TaskError) as caught:
        result.get(timeout=1)
    assert caught.value.type == "TaskRevoked"
    assert "chord member 2 of 3" in caught.value.message


def test_a_revoked_group_member_fails_the_groups_get_and_the_others_run(
    app: App, tasks: Tasks
) -> None:
    results = group(tasks.add.s(i, i) for i in range(3)).delay()

    assert app.revoke(results[0].id) == [results[0].id]
    run_until_idle(app)

    assert sorted(args for _, args in tasks.ran) == [(1, 1), (2, 2)]
    assert [r.state for r in results] == [State.REVOKED, State.SUCCESS, State.SUCCESS]
    with pytest.raises(TaskError, match="TaskRevoked"):
        results.get(timeout=1)


def test_a_revoked_tasks_error_handler_is_called_with_its_id(app: App, tasks: Tasks) -> None:
    result = tasks.add.apply_async((1, 1), link_error=tasks.on_error.s())

    app.revoke(result.id)
    run_until_idle(app)

    assert tasks.ran == [("on_error", result.id)]


def test_a_revoked_unique_tasks_key_is_free_at_once(app: App, tasks: Tasks) -> None:
    # Given a unique task waiting for its countdown
    first = tasks.add.apply_async((1, 1), unique_key="sum:1", countdown=3600)
    assert tasks.add.apply_async((1, 1), unique_key="sum:1").id == first.id
    # When it is revoked
    app.revoke(first.id)
    # Then the same call enqueues a new task, which runs
    again = tasks.add.apply_async((1, 1), unique_key="sum:1")
    assert again.id != first.id
    run_until_idle(app)
    assert again.get(timeout=1) == 2 and first.state is State.REVOKED


def test_revoking_works_with_signed_messages() -> None:
    app = App("signed", broker="memory://", signing_key="s3cret")
    tasks = Tasks(app)
    try:
        first = tasks.add.apply_async((1, 1), unique_key="k", countdown=3600)

        assert app.revoke(first.id) == [first.id]

        assert app.AsyncResult(first.id).state is State.REVOKED
        assert tasks.add.apply_async((1, 1), unique_key="k").id != first.id
    finally:
        app.close()


class BrokenStore(MemoryResultStore):
    def store(self, records: Sequence[tuple[ResultRecord, float]]) -> None:
        raise BrokerUnavailable("the result store is down")


def test_if_the_revocation_cant_be_recorded_the_task_is_put_back_and_runs(
    app: App, tasks: Tasks
) -> None:
    # Given a queued task and a result store that can't be written
    result = tasks.add.delay(5, 5)
    app.use(results=BrokenStore())
    # When it is revoked, the revoke fails
    with pytest.raises(BrokerUnavailable):
        app.revoke(result.id)
    # Then the task is still queued (nothing lost), and runs once the store is back
    assert waiting(app) == (1, 0, 0)
    app.use(results=MemoryResultStore())
    run_until_idle(app)
    assert result.get(timeout=1) == 10


def test_async_result_revoke_revokes_a_waiting_task_once(app: App) -> None:
    pending = app.send_task("any.task", countdown=60)
    assert pending.revoke() is True
    assert pending.state is State.REVOKED
    assert pending.revoke() is False  # nothing left to revoke
    assert pending.revoke(terminate=True) is False  # finished (REVOKED): left alone


def test_terminate_of_a_task_reserved_but_not_started_ends_it_revoked_unrun(app: App) -> None:
    # Given a task whose record says it runs (its worker reserved it)
    ran: list[int] = []

    @app.task
    def job() -> None:
        ran.append(1)

    now = [1000.0]
    app.use(broker=MemoryBroker(clock=lambda: now[0]))
    result = job.delay()
    assert app.broker.reserve(["default"], 1, 0)  # a worker holds it, then dies
    app.results.store([(ResultRecord(id=result.id, state=State.STARTED, task=job.name,
                                     updated=time.time()), 60)])

    # When it is revoked with terminate: it can't be removed, so it is asked to stop
    assert app.revoke(result.id, terminate=True) == [result.id]
    # Then the worker that gets it redelivered, once the lease ran out, never runs it
    now[0] += 31
    run_until_idle(app)
    assert ran == []
    assert result.state is State.REVOKED
