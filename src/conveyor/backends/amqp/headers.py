"""The headers Conveyor adds to a message on RabbitMQ: when it is due, how many times a
lapsed lease put it back (RabbitMQ's own `redelivered` flag says only "at least once",
and is lost when the message is published anew), and which published entry it is."""

from __future__ import annotations

from typing import Any

ETA = "x-conveyor-eta"
DELIVERIES = "x-conveyor-deliveries"
# A random id (`message.new_id`) stamped on each message `publish` stores, carried over
# when the broker itself publishes it anew (a retry, a lapsed lease, a delay round, a
# park), so it names the entry in any process: what `Delivery.entry` is on the other
# brokers, a row or ref.
ENTRY = "x-conveyor-entry"


def headers_for(eta: float | None, deliveries: int, entry: str) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if eta is not None:
        headers[ETA] = repr(eta)  # text: AMQP's float header is 32 bits, too coarse
    if deliveries:
        headers[DELIVERIES] = deliveries
    if entry:
        headers[ENTRY] = entry
    return headers


def stamped(headers: dict[str, Any]) -> str:
    """The entry stamp of a message, or "" if it has none (published before the stamp
    existed: it stays without one when published anew)."""
    raw = headers.get(ENTRY)
    if isinstance(raw, bytes):
        return raw.decode(errors="replace")
    return raw if isinstance(raw, str) else ""


def entry_of(headers: dict[str, Any], task_id: str) -> str:
    """What names a message's entry in any process: its stamp. A message without one
    (published before Conveyor stamped them) is named by its task id, so all its copies
    count as one entry: a run-once duplicate of it may run twice, but a redelivered or
    retried one is never taken for a duplicate and dropped."""
    return stamped(headers) or f"task:{task_id}"


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
