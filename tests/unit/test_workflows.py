"""Chains, groups, chords, error handlers and the run-once guard, in-process: what values
reach which step, how failures travel, and what is refused before anything is queued.
(End to end through real workers: tests/worker/test_workflows.py.)"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from conveyor import App, State, TaskContext, TaskError, chain, chord, group
from conveyor.result import GroupResult
from conveyor.testing import eager, run_until_idle


class Tasks:
    """The tasks most tests share, registered on one App. `ran` records every call in
    order; `handled` every error-handler call as (label, failed task id)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.ran: list[str] = []
        self.handled: list[tuple[str, str]] = []
        ran, handled = self.ran, self.handled

        @app.task(name="add")
        def add(x: int, y: int) -> int:
            ran.append(f"add({x}, {y})")
            return x + y

        @app.task(name="mul")
        def mul(x: int, y: int) -> int:
            ran.append(f"mul({x}, {y})")
            return x * y

        @app.task(name="scale")
        def scale(x: int, factor: int = 1, offset: int = 0) -> int:
            ran.append(f"scale({x}, factor={factor}, offset={offset})")
            return x * factor + offset

        @app.task(name="total")
        def total(values: list[int]) -> int:
            ran.append(f"total({values})")
            return sum(values)

        @app.task(name="fail")
        def fail(*args: Any) -> None:
            ran.append("fail")
            raise ValueError("bad row 7")

        @app.task(name="on_error")
        def on_error(failed_id: str, label: str = "") -> None:
            handled.append((label, failed_id))

        self.add, self.mul, self.scale, self.total = add, mul, scale, total
        self.fail, self.on_error = fail, on_error


@pytest.fixture
def tasks(app: App) -> Tasks:
    return Tasks(app)


def queued(app: App) -> int:
    """Every message the broker holds, in any queue, ready, scheduled or running."""
    return sum(s.ready + s.scheduled + s.running for s in app.broker.stats().values())


def dead(app: App) -> int:
    return sum(s.dead for s in app.broker.stats().values())


def failure(result: Any) -> TaskError:
    with pytest.raises(TaskError) as caught:
        result.get(timeout=1)
    return caught.value


# -- values ------------------------------------------------------------------------------


def test_a_chain_passes_each_value_to_the_next_step(app: App, tasks: Tasks) -> None:
    with eager(app):
        result = chain(tasks.add.s(1, 2), tasks.add.s(3), tasks.mul.s(10)).delay()
        assert result.get(timeout=1) == 60
    assert tasks.ran == ["add(1, 2)", "add(3, 3)", "mul(6, 10)"]


def test_si_ignores_the_previous_value(app: App, tasks: Tasks) -> None:
    with eager(app):
        result = chain(tasks.add.s(1, 2), tasks.add.si(5, 5), tasks.add.s(1)).delay()
        assert result.get(timeout=1) == 11
    assert tasks.ran == ["add(1, 2)", "add(5, 5)", "add(10, 1)"]


def test_delay_on_a_signature_or_chain_prepends_its_arguments(app: App, tasks: Tasks) -> None:
    with eager(app):
        assert tasks.add.s(10).delay(5).get(timeout=1) == 15
        assert chain(tasks.add.s(2), tasks.mul.s(3)).delay(1).get(timeout=1) == 9
        assert tasks.add.si(1, 1).delay(100).get(timeout=1) == 2  # immutable: ignored
    assert tasks.ran == ["add(5, 10)", "add(1, 2)", "mul(3, 3)", "add(1, 1)"]


def test_keyword_arguments_travel_with_signatures(app: App, tasks: Tasks) -> None:
    with eager(app):
        result = chain(tasks.add.s(1, 1), tasks.scale.s(factor=3, offset=1)).delay()
        assert result.get(timeout=1) == 7
        assert tasks.scale.s(2, factor=5).delay(offset=1).get(timeout=1) == 11
    assert tasks.ran[-1] == "scale(2, factor=5, offset=1)"


def test_the_pipe_operator_builds_one_flat_chain(app: App, tasks: Tasks) -> None:
    workflow = tasks.add.s(1, 2) | tasks.add.s(3) | tasks.mul.s(2)

    assert isinstance(workflow, chain) and len(workflow.steps) == 3
    with eager(app):
        assert workflow.delay().get(timeout=1) == 12


def test_a_chain_inside_a_chain_is_flattened(app: App, tasks: Tasks) -> None:
    inner = chain(tasks.add.s(10), tasks.add.s(100))
    workflow = chain(tasks.add.s(1, 1), inner, tasks.mul.s(2))

    assert len(workflow.steps) == 4
    with eager(app):
        assert workflow.delay().get(timeout=1) == 224
    assert tasks.ran == ["add(1, 1)", "add(2, 10)", "add(12, 100)", "mul(112, 2)"]


def test_a_group_followed_by_a_step_in_a_chain_is_a_chord(app: App, tasks: Tasks) -> None:
    workflow = chain(tasks.add.s(1, 1), group(tasks.add.s(1), tasks.mul.s(10)), tasks.total.s())

    with eager(app):
        assert workflow.delay().get(timeout=1) == 23  # total([2 + 1, 2 * 10])
    assert tasks.ran[-1] == "total([3, 20])"


def test_a_group_at_the_end_of_a_chain_gives_the_list(app: App, tasks: Tasks) -> None:
    workflow = chain(tasks.add.s(1, 1), group(tasks.add.s(1), tasks.add.s(2), tasks.mul.s(3)))

    with eager(app):
        assert workflow.delay().get(timeout=1) == [3, 4, 6]


def test_a_chord_member_may_be_a_chain_and_its_callback_a_chain(app: App, tasks: Tasks) -> None:
    members = [chain(tasks.add.s(1, 1), tasks.mul.s(10)), tasks.add.s(5, 5)]
    workflow = chord(members, chain(tasks.total.s(), tasks.add.s(1)))

    with eager(app):
        assert workflow.delay().get(timeout=1) == 31  # total([20, 10]) + 1


def test_a_chord_may_be_a_member_of_a_chord(app: App, tasks: Tasks) -> None:
    inner = chord([tasks.add.s(1, 1), tasks.add.s(2, 2)], tasks.total.s())
    outer = chord([inner, tasks.add.s(10, 10)], tasks.total.s())

    with eager(app):
        assert outer.delay().get(timeout=1) == 26  # total([total([2, 4]), 20])
    assert tasks.ran.count("total([6, 20])") == 1


def test_a_group_may_be_a_member_of_a_chord(app: App, tasks: Tasks) -> None:
    @app.task(name="keep")
    def keep(values: list[Any]) -> list[Any]:
        return values

    workflow = chord([group(tasks.add.s(0, 1), tasks.add.s(0, 2)), tasks.add.s(1, 1)], keep.s())

    with eager(app):
        assert workflow.delay().get(timeout=1) == [[1, 2], 2]


def test_a_chord_of_one_member_calls_back_with_a_list_of_one(app: App, tasks: Tasks) -> None:
    with eager(app):
        assert chord([tasks.add.s(1, 1)], tasks.total.s()).delay().get(timeout=1) == 2
    assert tasks.ran == ["add(1, 1)", "total([2])"]


def test_a_chord_takes_a_group_or_a_generator_and_prepends_delay_args(
    app: App, tasks: Tasks
) -> None:
    with eager(app):
        from_group = chord(group(tasks.add.s(i, i) for i in range(10)), tasks.total.s())
        assert from_group.delay().get(timeout=1) == 90
        partial = chord((tasks.add.s(i) for i in range(3)), tasks.total.s())
        assert partial.delay(10).get(timeout=1) == 33  # (10+0) + (10+1) + (10+2)


def test_a_group_of_async_tasks_gives_their_values_in_order(app: App) -> None:
    @app.task(name="adouble")
    async def adouble(x: int) -> int:
        return 2 * x

    with eager(app):
        result = group(adouble.s(i) for i in range(6)).delay()
        assert result.get(timeout=1) == [0, 2, 4, 6, 8, 10]


def test_a_chain_of_async_and_sync_steps(app: App, tasks: Tasks) -> None:
    @app.task(name="ahalf")
    async def ahalf(x: int) -> int:
        return x // 2

    with eager(app):
        assert chain(tasks.add.s(3, 5), ahalf.s(), tasks.mul.s(3)).delay().get(timeout=1) == 12


def test_group_result_follows_its_members_and_keeps_the_given_order(
    app: App, tasks: Tasks
) -> None:
    # Given a group whose first member runs last (it waits in another queue)
    result = group(tasks.add.s(0, 1).set(queue="later"), tasks.add.s(1, 1),
                   tasks.add.s(2, 1)).delay()
    assert isinstance(result, GroupResult) and len(result) == 3
    assert list(result) == [result[0], result[1], result[2]] == result.results
    assert not result.ready() and result.completed_count() == 0 and not result.failed()

    # When only the later members have run
    run_until_idle(app, ["default"])
    # Then the group is partly done
    assert sorted(tasks.ran) == ["add(1, 1)", "add(2, 1)"]
    assert result.completed_count() == 2
    assert not result.ready() and not result.successful() and not result.failed()
    assert [r.state for r in result] == [State.PENDING, State.SUCCESS, State.SUCCESS]
    with pytest.raises(TimeoutError):
        result.get(timeout=0.05)

    # And once the first has run too, get() gives the values in the order given
    run_until_idle(app, ["later"])
    assert result.ready() and result.successful() and result.completed_count() == 3
    assert result.get(timeout=1) == [1, 2, 3]


def test_group_result_with_a_failed_member(app: App, tasks: Tasks) -> None:
    result = group(tasks.add.s(1, 1), tasks.fail.s(), tasks.add.s(2, 2)).delay()
    run_until_idle(app)

    assert result.ready() and result.failed() and not result.successful()
    assert result.completed_count() == 2
    assert failure(result).type == "ValueError"
    assert result[2].get(timeout=1) == 4  # the others still ran


# -- failures ----------------------------------------------------------------------------


def test_a_failed_middle_step_stops_the_chain_and_names_itself(app: App, tasks: Tasks) -> None:
    result = chain(tasks.add.s(1, 2), tasks.fail.s(), tasks.add.s(3), tasks.mul.s(2)).delay()

    assert run_until_idle(app) == 2
    error = failure(result)
    assert error.type == "ValueError"
    assert "an earlier step of the chain, fail [" in error.message
    assert "bad row 7" in error.message
    assert tasks.ran == ["add(1, 2)", "fail"]  # the later steps never ran
    assert result.state is State.FAILURE
    assert queued(app) == 0


def test_a_failed_chord_member_fails_the_chord_and_skips_the_callback(
    app: App, tasks: Tasks
) -> None:
    result = chord([tasks.add.s(1, 1), tasks.fail.s(), tasks.add.s(2, 2)], tasks.total.s()).delay()
    run_until_idle(app)

    error = failure(result)
    assert error.type == "ValueError"
    assert "chord member 2 of 3, fail [" in error.message and "bad row 7" in error.message
    assert not any(step.startswith("total") for step in tasks.ran)
    assert sorted(tasks.ran) == ["add(1, 1)", "add(2, 2)", "fail"]  # the others still ran


def test_link_error_on_a_task_is_called_once_with_its_id(app: App, tasks: Tasks) -> None:
    failed = tasks.fail.apply_async(("x",), link_error=tasks.on_error.s("single"))
    ok = tasks.add.apply_async((1, 1), link_error=tasks.on_error.s("ok"))
    run_until_idle(app)

    assert tasks.handled == [("single", failed.id)]
    assert ok.get(timeout=1) == 2


def test_link_error_on_a_chain_is_called_once_with_the_failed_step(
    app: App, tasks: Tasks
) -> None:
    result = chain(tasks.add.s(1, 2), tasks.fail.s(), tasks.add.s(3)).apply_async(
        link_error=[tasks.on_error.s("a"), tasks.on_error.s("b")])
    run_until_idle(app)

    assert sorted(label for label, _ in tasks.handled) == ["a", "b"]
    failed_ids = {task_id for _, task_id in tasks.handled}
    assert len(failed_ids) == 1
    failed_id = failed_ids.pop()
    assert failed_id != result.id
    assert failure(app.AsyncResult(failed_id)).message == "bad row 7"
    assert app.results.get(failed_id).task == "fail"  # type: ignore[union-attr]


def test_link_error_on_a_chord_is_called_once_even_if_several_members_fail(
    app: App, tasks: Tasks
) -> None:
    members = [tasks.fail.s(), tasks.add.s(1, 1), tasks.fail.s(), tasks.fail.s()]
    result = chord(members, tasks.total.s()).apply_async(link_error=tasks.on_error.s("chord"))
    run_until_idle(app)

    assert len(tasks.handled) == 1
    label, failed_id = tasks.handled[0]
    assert label == "chord" and app.AsyncResult(failed_id).failed()
    assert app.results.get(failed_id).task == "fail"  # type: ignore[union-attr]
    assert failure(result).type == "ValueError"


def test_link_error_on_a_chord_whose_callback_fails(app: App, tasks: Tasks) -> None:
    result = chord([tasks.add.s(1, 1)], tasks.fail.s()).apply_async(
        link_error=tasks.on_error.s("cb"))
    run_until_idle(app)

    assert tasks.handled == [("cb", result.id)]


def test_link_error_on_a_group_is_called_for_each_failed_member(
    app: App, tasks: Tasks
) -> None:
    result = group(tasks.fail.s(), tasks.add.s(1, 1)).apply_async(
        link_error=tasks.on_error.s("group"))
    run_until_idle(app)

    assert tasks.handled == [("group", result[0].id)]


def test_retrying_chord_members_give_the_callback_every_value_once(app: App) -> None:
    attempts: dict[int, list[int]] = {}
    called: list[list[int]] = []

    @app.task(name="flaky_double", bind=True, retries=2, backoff=0)
    def flaky_double(task: TaskContext, x: int) -> int:
        attempts.setdefault(x, []).append(task.attempt)
        if task.attempt == 1:
            raise ConnectionError("try again")
        return 2 * x

    @app.task(name="record")
    def record(values: list[int]) -> int:
        called.append(values)
        return sum(values)

    result = chord([flaky_double.s(i) for i in range(6)], record.s()).delay()
    run_until_idle(app)

    assert result.get(timeout=1) == 30
    assert called == [[0, 2, 4, 6, 8, 10]]
    assert attempts == {i: [1, 2] for i in range(6)}


def test_a_failed_member_of_a_nested_chord_fails_the_outer_chord(
    app: App, tasks: Tasks
) -> None:
    inner = chord([tasks.add.s(1, 1), tasks.fail.s()], tasks.total.s())
    result = chord([inner, tasks.add.s(2, 2)], tasks.total.s()).apply_async(
        link_error=tasks.on_error.s("outer"))
    run_until_idle(app)

    error = failure(result)
    assert error.type == "ValueError"
    assert error.message.startswith("chord member 1 of 2")
    assert "chord member 2 of 2, fail [" in error.message and "bad row 7" in error.message
    assert not any(step.startswith("total") for step in tasks.ran)  # neither callback ran
    assert [label for label, _ in tasks.handled] == ["outer"]


def test_a_failing_step_of_a_chain_that_is_a_chord_member_fails_the_chord(
    app: App, tasks: Tasks
) -> None:
    members = [chain(tasks.add.s(1, 1), tasks.fail.s(), tasks.add.s(1)), tasks.add.s(2, 2)]
    result = chord(members, tasks.total.s()).delay()
    run_until_idle(app)

    error = failure(result)
    assert "chord member 1 of 2, fail [" in error.message
    assert tasks.ran.count("fail") == 1 and "add(None, 1)" not in tasks.ran
    assert not any(step.startswith("total") for step in tasks.ran)


# -- refused when built or enqueued ------------------------------------------------------


def test_wrong_arity_in_a_later_step_is_refused_naming_the_task(app: App, tasks: Tasks) -> None:
    workflow = chain(tasks.add.s(1, 2), tasks.add.s(3), tasks.mul.s(1, 2))

    with pytest.raises(TypeError, match="task 'mul'"):
        workflow.delay()
    with pytest.raises(TypeError, match="task 'total'"):
        chord([tasks.add.s(1, 1)], tasks.total.s(1)).delay()
    with pytest.raises(TypeError, match="task 'add'"):
        group(tasks.add.s(1, 1), tasks.add.s(1)).delay()
    with pytest.raises(TypeError, match="task 'add'"):
        tasks.add.si(1)  # an immutable signature is complete: checked at once
    assert queued(app) == 0  # nothing half-published


def test_empty_groups_and_chains_are_refused(tasks: Tasks) -> None:
    with pytest.raises(ValueError, match="group\\(\\) needs at least one member"):
        group()
    with pytest.raises(ValueError, match="group\\(\\) needs at least one member"):
        group(tasks.add.s(i, i) for i in range(0))
    with pytest.raises(ValueError, match="chain\\(\\) needs at least one step"):
        chain()
    with pytest.raises(ValueError, match="chain\\(\\) needs at least one step"):
        chain([])


def test_things_that_are_not_signatures_are_refused(tasks: Tasks) -> None:
    with pytest.raises(TypeError, match="expected a signature"):
        group([tasks.add.s(1, 1), 5])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="expected a signature"):
        group(tasks.add)  # type: ignore[arg-type]  # the task, not task.s()
    with pytest.raises(TypeError, match="expected a signature"):
        chain(tasks.add.s(1, 1), "add")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a signature"):
        chain(tasks.add.s(1, 1), {"task": "add"})  # type: ignore[arg-type]


def test_a_chord_callback_must_be_a_signature(tasks: Tasks) -> None:
    with pytest.raises(TypeError, match="a chord's callback must be a signature"):
        chord([tasks.add.s(1, 1)], tasks.total)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a chord's callback must be a signature"):
        chord([tasks.add.s(1, 1)], group(tasks.total.s()))  # type: ignore[arg-type]


def test_link_error_must_be_signatures_that_fit(app: App, tasks: Tasks) -> None:
    with pytest.raises(TypeError):
        tasks.add.apply_async((1, 1), link_error=tasks.on_error)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="link_error takes a signature"):
        chain(tasks.add.s(1, 1)).apply_async(
            link_error=[tasks.on_error.s(), "on_error"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="task 'on_error'"):
        chord([tasks.add.s(1, 1)], tasks.total.s()).apply_async(
            link_error=tasks.on_error.s("a", "b"))  # three arguments with the id
    assert queued(app) == 0


def test_link_error_given_a_task_or_a_name_says_to_use_a_signature(
    app: App, tasks: Tasks
) -> None:
    with pytest.raises(TypeError, match="link_error takes a signature.*write handler.s.*<Task"):
        tasks.add.apply_async((1, 1), link_error=tasks.on_error)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="link_error takes a signature.*'on_error'"):
        tasks.add.apply_async((1, 1), link_error="on_error")  # type: ignore[arg-type]


def test_signature_set_checks_its_options(tasks: Tasks) -> None:
    with pytest.raises(ValueError, match="priority must be an int from 0 to 9"):
        tasks.add.s(1).set(priority=12)
    with pytest.raises(ValueError, match="queue must be a non-empty name"):
        tasks.add.s(1).set(queue="")
    with pytest.raises(ValueError, match="countdown must be >= 0"):
        tasks.add.s(1).set(countdown=-1)
    fast = tasks.add.s(1).set(priority=9, queue="fast")
    assert fast.options["priority"] == 9 and fast.options["queue"] == "fast"


def test_signature_options_reach_the_message(app: App, tasks: Tasks) -> None:
    chain(tasks.add.s(1, 1).set(queue="first"), tasks.add.s(1)).delay()

    assert app.broker.stats()["first"].ready == 1
    run_until_idle(app, ["first"])
    assert tasks.ran == ["add(1, 1)"] and app.broker.stats()["default"].ready == 1


# -- what a worker publishes that can't be sent ------------------------------------------


def test_an_unencodable_value_fails_its_step_instead_of_wedging(app: App, tasks: Tasks) -> None:
    @app.task(name="make_object")
    def make_object() -> object:
        return object()

    result = chain(make_object.s(), tasks.add.s(1)).delay()

    assert run_until_idle(app, timeout=10) == 1
    error = failure(result)
    assert error.type == "SerializationError"
    assert "make_object" in error.message
    assert tasks.ran == [] and queued(app) == 0


def test_a_value_too_large_for_the_next_step_fails_that_step(tasks: Tasks) -> None:
    app = App("t", broker="memory://", results="memory://", max_message_size=2000)

    @app.task(name="big")
    def big() -> str:
        return "x" * 5000

    @app.task(name="length")
    def length(text: str) -> int:
        return len(text)

    result = chain(big.s(), length.s(), length.s()).delay()

    assert run_until_idle(app, timeout=10) == 1
    assert failure(result).type == "MessageTooLarge"
    assert queued(app) == 0
    app.close()


def test_a_chord_member_whose_next_step_is_too_large_fails_the_chord() -> None:
    app = App("t", broker="memory://", results="memory://", max_message_size=2000)
    handled: list[str] = []

    @app.task(name="big")
    def big() -> str:
        return "x" * 5000

    @app.task(name="length")
    def length(text: str) -> int:
        return len(text)

    @app.task(name="total")
    def total(values: list[int]) -> int:
        return sum(values)

    @app.task(name="on_error")
    def on_error(failed_id: str) -> None:
        handled.append(failed_id)

    result = chord([chain(big.s(), length.s()), length.s("abc")], total.s()).apply_async(
        link_error=on_error.s())
    run_until_idle(app, timeout=10)

    try:
        assert failure(result).type == "MessageTooLarge"  # today: TimeoutError, PENDING
        assert len(handled) == 1
    finally:
        app.close()


# -- the run-once guard ------------------------------------------------------------------


def test_a_run_once_message_published_twice_runs_once(app: App) -> None:
    calls: list[int] = []

    @app.task(name="step")
    def step(x: int) -> int:
        calls.append(x)
        return x * 2

    message = msgspec.structs.replace(step.message((21,), None), once=True)
    app.publish([message, message])
    assert app.broker.stats()["default"].ready == 2

    assert run_until_idle(app) == 2
    assert calls == [21]
    assert queued(app) == 0 and dead(app) == 0  # both entries consumed, none dead
    assert app.AsyncResult(message.id).get(timeout=1) == 42


def test_a_run_once_message_that_failed_for_good_can_run_again(app: App) -> None:
    calls: list[int] = []

    @app.task(name="flaky")
    def flaky(x: int) -> int:
        calls.append(x)
        if len(calls) == 1:
            raise ValueError("first time")
        return x

    message = msgspec.structs.replace(flaky.message((7,), None), once=True)
    app.publish([message])
    run_until_idle(app)
    assert [letter.id for letter in app.broker.dead_letters()] == [message.id]
    assert failure(app.AsyncResult(message.id)).type == "ValueError"

    # The dead letter runs again (the failure released the claim), and once it succeeded a
    # copy of the same step published again is a duplicate: it doesn't run a third time.
    assert app.retry_dead() == 1
    run_until_idle(app)
    app.publish([message])
    run_until_idle(app)
    assert calls == [7, 7]
    assert app.AsyncResult(message.id).get(timeout=1) == 7
    assert queued(app) == 0 and dead(app) == 0


def test_an_early_acked_workflow_step_that_retries_still_finishes(
    app: App, tasks: Tasks
) -> None:
    attempts: list[int] = []

    @app.task(name="early", bind=True, acks_late=False, retries=2, backoff=0)
    def early(task: TaskContext, x: int) -> int:
        attempts.append(task.attempt)
        if task.attempt == 1:
            raise ConnectionError("try again")
        return x * 10

    result = chain(tasks.add.s(1, 1), early.s()).delay()
    run_until_idle(app)

    assert attempts == [1, 2]
    assert result.get(timeout=1) == 20


# -- on the SQLite broker ----------------------------------------------------------------


def test_workflows_on_sqlite(sqlite_app: App) -> None:
    tasks = Tasks(sqlite_app)
    chained = chain(tasks.add.s(1, 2), tasks.add.s(3), tasks.mul.s(10)).delay()
    chorded = chord([chain(tasks.add.s(i, i), tasks.mul.s(10)) for i in range(5)],
                    tasks.total.s()).delay()
    grouped = group(tasks.add.s(i, 1) for i in range(5)).delay()

    run_until_idle(sqlite_app, timeout=15)

    assert chained.get(timeout=1) == 60
    assert chorded.get(timeout=1) == 200
    assert grouped.get(timeout=1) == [1, 2, 3, 4, 5]
    assert tasks.ran.count("total([0, 20, 40, 60, 80])") == 1


def test_failures_on_sqlite(sqlite_app: App) -> None:
    tasks = Tasks(sqlite_app)
    chained = chain(tasks.add.s(1, 2), tasks.fail.s(), tasks.add.s(3)).apply_async(
        link_error=tasks.on_error.s("chain"))
    chorded = chord([tasks.add.s(1, 1), tasks.fail.s()], tasks.total.s()).apply_async(
        link_error=tasks.on_error.s("chord"))

    run_until_idle(sqlite_app, timeout=15)

    assert "an earlier step of the chain, fail [" in failure(chained).message
    assert "chord member 2 of 2, fail [" in failure(chorded).message
    assert sorted(label for label, _ in tasks.handled) == ["chain", "chord"]
    assert sorted(tasks.ran) == ["add(1, 1)", "add(1, 2)", "fail", "fail"]  # nothing after


def test_retrying_chord_members_on_sqlite(sqlite_app: App) -> None:
    called: list[list[int]] = []

    @sqlite_app.task(name="flaky_double", bind=True, retries=2, backoff=0)
    def flaky_double(task: TaskContext, x: int) -> int:
        if task.attempt == 1:
            raise ConnectionError("try again")
        return 2 * x

    @sqlite_app.task(name="record")
    def record(values: list[int]) -> int:
        called.append(values)
        return sum(values)

    result = chord([flaky_double.s(i) for i in range(4)], record.s()).delay()
    run_until_idle(sqlite_app, timeout=15)

    assert result.get(timeout=1) == 12
    assert called == [[0, 2, 4, 6]]


def test_a_run_once_message_published_twice_runs_once_on_sqlite(sqlite_app: App) -> None:
    calls: list[int] = []

    @sqlite_app.task(name="step")
    def step(x: int) -> int:
        calls.append(x)
        return x

    message = msgspec.structs.replace(step.message((3,), None), once=True)
    sqlite_app.publish([message, message])
    run_until_idle(sqlite_app, timeout=15)

    assert calls == [3]
    assert queued(sqlite_app) == 0 and dead(sqlite_app) == 0


def test_retrying_a_dead_chain_step_continues_the_chain(app: App) -> None:
    calls: list[int] = []

    @app.task(name="once_flaky")
    def once_flaky(x: int) -> int:
        calls.append(x)
        if len(calls) == 1:
            raise ValueError("first time")
        return x

    @app.task(name="plus_one")
    def plus_one(x: int) -> int:
        return x + 1

    result = chain(once_flaky.s(7), plus_one.s()).delay()
    run_until_idle(app)
    assert failure(result).type == "ValueError"  # the chain failed at its first step

    assert app.retry_dead() == 1
    run_until_idle(app)

    assert result.get(timeout=1) == 8  # the re-run step went on with the rest of the chain
