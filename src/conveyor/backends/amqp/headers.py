"""The headers Conveyor adds to a message on RabbitMQ: when it is due, and how many
times a lapsed lease put it back (RabbitMQ's own `redelivered` flag says only "at least
once", and is lost when the message is published anew)."""

from __future__ import annotations

from typing import Any

ETA = "x-conveyor-eta"
DELIVERIES = "x-conveyor-deliveries"


def headers_for(eta: float | None, deliveries: int) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if eta is not None:
        headers[ETA] = repr(eta)  # text: AMQP's float header is 32 bits, too coarse
    if deliveries:
        headers[DELIVERIES] = deliveries
    return headers


def counted(headers: dict[str, Any]) -> int:
    """How many times a message was put back after a lease ran out."""
    count = headers.get(DELIVERIES)
    return count if isinstance(count, int) else 0


def eta_of(headers: dict[str, Any]) -> float | None:
    return number(headers.get(ETA))


def number(raw: Any) -> float | None:
    """A number kept as text in a header (AMQP's float header is 32 bits, too coarse for
    a time), or None when it isn't one."""
    try:
        return float(raw.decode() if isinstance(raw, bytes) else raw)
    except (TypeError, ValueError):
        return None
