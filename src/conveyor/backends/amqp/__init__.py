"""The RabbitMQ backend (``amqp://``, ``amqps://``; aiormq): a broker only. Results and
coordination live in another store, given as `results=` (docs/rabbitmq.md).

aiormq is imported only when a connection is made: `url.check` needs none."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.backends.amqp.url import check

if TYPE_CHECKING:
    from conveyor.backends.amqp.broker import AmqpBroker

__all__ = ["check", "open_broker"]


def open_broker(url: str, lease_seconds: float) -> AmqpBroker:
    from conveyor.backends.amqp.broker import AmqpBroker

    return AmqpBroker(url, lease_seconds)
