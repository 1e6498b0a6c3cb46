"""An idle Redis consumer waits in BLPOP with its reserve script pipelined behind it, so a
wake-up is one round trip. These check the cases that pipeline must survive."""

from __future__ import annotations

import threading
import time

from conveyor.backends.redis.broker import RedisBroker
from conveyor.message import Envelope
from tests.redis_servers import RedisServer


def envelope(task_id: str) -> Envelope:
    return Envelope(task_id, "default", 0, None, b'{"task": "t"}')


def test_a_waiting_consumer_still_gets_the_message_after_the_server_forgot_its_scripts(
    own_redis: RedisServer,
) -> None:
    """SCRIPT FLUSH (or a restart without the script cache) while the consumer is blocked:
    the reserve queued behind its BLPOP fails with NOSCRIPT, and the consumer reserves again
    the ordinary way instead of losing the wake-up or raising."""
    url = own_redis.url("t-waking")
    producer, consumer = RedisBroker(url), RedisBroker(url)
    got: list[str] = []
    waiting = threading.Thread(
        target=lambda: got.extend(d.id for d in consumer.reserve(["default"], 1, 8.0)))
    waiting.start()
    try:
        time.sleep(0.3)  # the consumer tried once, found nothing and now blocks
        own_redis.command("SCRIPT", "FLUSH")
        producer.publish([envelope("after-flush")])
    finally:
        waiting.join(10)

    assert got == ["after-flush"]
    assert consumer.reserve(["default"], 1, 0.1) == []  # it was reserved once, not twice
    producer.client.close()
    consumer.client.close()


def test_a_waiting_consumer_gives_up_at_its_wait_when_nothing_comes(
    own_redis: RedisServer,
) -> None:
    consumer = RedisBroker(own_redis.url("t-waking"))
    started = time.monotonic()

    assert consumer.reserve(["default", "other"], 5, 1.5) == []
    assert 1.4 <= time.monotonic() - started < 4.0
    consumer.client.close()
