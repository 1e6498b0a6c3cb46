"""HMAC signing: signed messages run; unsigned or forged ones are dead-lettered with the
reason, never run, and write no result."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conveyor import App, State, TaskContext
from conveyor.message import Envelope, Message, encode, new_id, now
from conveyor.signing import SignatureError, sign, verify
from conveyor.testing import run_until_idle

LIMIT = 10 * 2**20


@pytest.fixture
def ran() -> list[int]:
    return []


def make_app(keys: str | list[str] | None, ran: list[int]) -> App:
    app = App("t", broker="memory://", signing_key=keys)

    @app.task(name="add")
    def add(x: int, y: int) -> int:
        ran.append(x + y)
        return x + y

    return app


@pytest.fixture
def signed_app(ran: list[int]) -> Iterator[App]:
    app = make_app("k", ran)
    yield app
    app.close()


def producer_for(app: App, keys: str | list[str] | None) -> App:
    """Another App (another deployment's producer) publishing into `app`'s broker."""
    producer = App("producer", broker="memory://", signing_key=keys)
    producer.use(broker=app.broker, results=app.results)
    return producer


def publish_raw(app: App, body: bytes, message_id: str) -> None:
    app.broker.publish([Envelope(message_id, "default", 0, None, body)])


def test_signed_round_trip(signed_app: App, ran: list[int]) -> None:
    result = signed_app.send_task("add", args=(2, 3))
    run_until_idle(signed_app)
    assert result.get(timeout=1) == 5
    assert ran == [5]


def test_signed_message_body_carries_a_signature(signed_app: App) -> None:
    signed_app.send_task("add", args=(2, 3))
    delivery = signed_app.broker.reserve(["default"], 1, 0)[0]
    assert delivery.body.startswith(b"sig1.")
    assert delivery.body.endswith(b"}")  # the JSON itself is readable after the signature


def test_an_unsigned_message_is_dead_lettered_and_never_run(
    signed_app: App, ran: list[int]
) -> None:
    # Given a plain JSON message put straight onto the broker of an app that signs
    message = Message(id=new_id(), task="add", args=[1, 2], created=now())
    publish_raw(signed_app, encode(message, LIMIT), message.id)
    # When the queue is run
    run_until_idle(signed_app)
    # Then the task did not run, the message is a dead letter saying why
    assert ran == []
    letters = signed_app.broker.dead_letters()
    assert [letter.id for letter in letters] == [message.id]
    assert "sign" in letters[0].reason
    # And no result was written: a forger can't choose what a task id reports
    result = signed_app.AsyncResult(message.id)
    assert result.state is State.PENDING
    assert signed_app.results.get(message.id) is None


def test_a_message_signed_with_another_key_is_rejected(signed_app: App, ran: list[int]) -> None:
    # Given a producer signing with a key the worker doesn't have
    forger = producer_for(signed_app, "not-the-key")
    result = forger.send_task("add", args=(1, 2))
    # When the queue is run
    run_until_idle(signed_app)
    # Then it is dead-lettered unrun, with the reason, and writes no result
    assert ran == []
    letters = signed_app.broker.dead_letters()
    assert [letter.id for letter in letters] == [result.id]
    assert "sign" in letters[0].reason
    assert result.state is State.PENDING


def test_a_tampered_body_is_rejected(signed_app: App, ran: list[int]) -> None:
    # Given a correctly signed message whose arguments were changed afterwards
    message = Message(id=new_id(), task="add", args=[1, 2], created=now())
    body = sign(encode(message, LIMIT), ["k"]).replace(b"[1,2]", b"[1,9]")
    publish_raw(signed_app, body, message.id)
    run_until_idle(signed_app)
    assert ran == []
    assert "sign" in signed_app.broker.dead_letters()[0].reason


def test_key_rotation_verifies_messages_signed_with_the_old_key(ran: list[int]) -> None:
    # Given a worker configured with ["new", "old"]
    app = make_app(["new", "old"], ran)
    try:
        # When a producer still on the old key sends a task
        old_producer = producer_for(app, "old")
        result = old_producer.send_task("add", args=(4, 4))
        run_until_idle(app)
        # Then it runs
        assert result.get(timeout=1) == 8
        assert app.broker.dead_letters() == []
    finally:
        app.close()


def test_key_rotation_signs_with_the_first_key(ran: list[int]) -> None:
    # Given an app configured with ["new", "old"] producing
    app = make_app(["new", "old"], ran)
    try:
        result = app.send_task("add", args=(1, 1))
        # When a worker that only knows "new" runs it / Then it verifies
        worker = make_app("new", ran)
        worker.use(broker=app.broker, results=app.results)
        run_until_idle(worker)
        assert result.get(timeout=1) == 2
    finally:
        app.close()


def test_retries_of_signed_tasks_are_signed_too() -> None:
    app = App("t", broker="memory://", signing_key="k")

    @app.task(bind=True, retries=2, backoff=0.01)
    def flaky(task: TaskContext) -> int:
        if task.attempt < 3:
            raise ConnectionError("down")
        return task.attempt

    result = flaky.delay()
    run_until_idle(app)
    assert result.get(timeout=1) == 3
    assert app.broker.dead_letters() == []


def test_retry_dead_re_signs_messages() -> None:
    app = App("t", broker="memory://", signing_key="k")
    healthy: list[bool] = []

    @app.task
    def flaky() -> str:
        if not healthy:
            raise ConnectionError("down")
        return "ok"

    result = flaky.delay()
    run_until_idle(app)
    assert result.state is State.FAILURE
    healthy.append(True)
    assert app.retry_dead() == 1
    run_until_idle(app)
    assert result.get(timeout=1) == "ok"


def test_an_app_without_keys_accepts_plain_messages(ran: list[int]) -> None:
    app = make_app(None, ran)
    message = Message(id=new_id(), task="add", args=[1, 2], created=now())
    publish_raw(app, encode(message, LIMIT), message.id)
    run_until_idle(app)
    assert ran == [3]


# -- sign / verify -------------------------------------------------------------------------


def test_sign_without_keys_is_the_plain_payload() -> None:
    assert sign(b'{"a":1}', []) == b'{"a":1}'


def test_verify_returns_the_exact_payload() -> None:
    payload = b'{"id":"x","task":"t"}'
    assert verify(sign(payload, ["k"]), ["k"]) == payload
    assert verify(sign(payload, ["old"]), ["new", "old"]) == payload


@pytest.mark.parametrize(
    "body",
    [b'{"id":"x"}', sign(b'{"id":"x"}', ["other"]), b"sig1.deadbeef"],
)
def test_verify_rejects_unsigned_forged_and_malformed_bodies(body: bytes) -> None:
    with pytest.raises(SignatureError):
        verify(body, ["k"])
