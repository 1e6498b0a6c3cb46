"""A producer facing an unreachable Redis: a clear, masked error after publish_timeout."""

from __future__ import annotations

import socket
import time

import pytest

from conveyor import App
from conveyor.errors import BrokerUnavailable, ConfigurationError


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_delay_raises_broker_unavailable_after_the_publish_timeout() -> None:
    url = f"redis://:hunter2@127.0.0.1:{closed_port()}/0?publish_timeout=0.5"
    app = App("down", broker=url)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as caught:
        add.delay(1, 2)

    assert time.monotonic() - started >= 0.4  # it kept trying, then gave up
    assert "unreachable" in str(caught.value)
    assert "hunter2" not in str(caught.value) and ":***@" in str(caught.value)
    app.close()


@pytest.mark.parametrize("url, complaint", [
    ("redis://127.0.0.1:6379/0?publish_timeout=soon", "publish_timeout must be a number"),
    ("redis://127.0.0.1:6379/0?publish_timeout=-1", "publish_timeout must be positive"),
    ("redis+sentinel://127.0.0.1:26379", "names no master"),
    ("redis+cluster://127.0.0.1:7000/?colour=blue", "unknown option"),
    ("redis://127.0.0.1:6379/0?namespace={x}", "namespace must be non-empty"),
])
def test_bad_redis_urls_are_configuration_errors(url: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        _ = App("bad", broker=url).broker
