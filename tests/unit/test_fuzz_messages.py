"""Fuzzing the way in: whatever bytes reach a worker, reading them never raises, and only
a registered task ever runs."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor import App
from conveyor.broker import Delivery
from conveyor.lifecycle.completion import Completion
from conveyor.message import Message, encode
from conveyor.plain import problem
from conveyor.testing import run_until_idle
from conveyor.worker.executor import Executor, Prepared

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

app = App("fuzz", broker="memory://")


@app.task
def add(x: int, y: int) -> int:
    return x + y


executor = Executor(app, lambda record, ttl: None, lambda delivery: None)
GOOD = encode(Message(id="good", task=add.name, args=[1, 2], created=time.time()), 10**6)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)
fields = {"v": st.integers(), "id": st.text(), "task": st.sampled_from([add.name, "nope", ""]),
          "args": json_values, "kwargs": json_values, "queue": st.text(),
          "priority": st.integers(), "eta": json_values, "expires": json_values,
          "attempt": json_values, "created": json_values, "headers": json_values,
          "then": json_values, "chord": json_values, "link_error": json_values,
          "once": json_values, "unique": json_values}
envelopes = st.fixed_dictionaries({}, optional=fields).map(msgspec.json.encode)


def mutations(body: bytes) -> st.SearchStrategy[bytes]:
    def mutate(edits: list[tuple[int, int, bytes]]) -> bytes:
        out = bytearray(body)
        for at, cut, insert in edits:
            at %= len(out) + 1
            out[at:at + cut] = insert
        return bytes(out)

    edit = st.tuples(st.integers(0, 10**4), st.integers(0, 8), st.binary(max_size=8))
    return st.lists(edit, min_size=1, max_size=4).map(mutate)


def read(body: Any) -> Prepared | Completion:
    return executor.prepare(Delivery(id="d", queue="default", priority=0, body=body,
                                     receipt="1", entry="1"))


@FUZZ
@given(st.binary() | envelopes | mutations(GOOD) | st.text().map(str.encode))
def test_reading_any_body_never_raises_and_runs_only_registered_tasks(body: bytes) -> None:
    outcome = read(body)

    if isinstance(outcome, Prepared):
        assert outcome.task is app.tasks[outcome.message.task]
    else:
        assert outcome.action in ("dead", "ack")  # dead-lettered, or expired (REVOKED)
        assert outcome.action == "ack" or outcome.reason


@FUZZ
@given(st.text() | st.integers() | st.none() | st.lists(st.integers()))
def test_a_body_of_the_wrong_type_is_dead_lettered(body: Any) -> None:
    outcome = read(body)

    assert isinstance(outcome, Completion) and outcome.action == "dead"


@FUZZ
@given(json_values)
def test_what_the_plain_data_check_lets_through_comes_back_unchanged(value: Any) -> None:
    if problem(value) is None:
        assert msgspec.json.decode(msgspec.json.encode(value)) == _as_json(value)


def _as_json(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_as_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    return value


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary() | envelopes | mutations(GOOD), min_size=1, max_size=10))
def test_a_worker_goes_on_past_any_bodies_and_runs_what_follows(bodies: list[bytes]) -> None:
    from conveyor.message import Envelope

    app.broker.publish([Envelope(f"fuzz-{i}", "default", 0, None, body)
                        for i, body in enumerate(bodies)])
    after = add.delay(20, 22)

    run_until_idle(app, ["default"], include_scheduled=False)

    assert after.get(timeout=1) == 42
    assert app.broker.stats()["default"].ready == 0
