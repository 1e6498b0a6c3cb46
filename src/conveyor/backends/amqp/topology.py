"""The queues and exchanges Conveyor keeps in RabbitMQ, with namespace `ns`, per queue `q`:

| name | kind | holds |
|---|---|---|
| `ns.q` | queue, durable (classic with x-max-priority 10, or quorum) | ready messages |
| `ns.q.delay.L`, L = 0..25 | queue, durable, TTL 2^L x 64 ms, dead-lettering | waiting messages |
| `ns.q.delay.L` | topic exchange | routes a message to wait at level L, or on to L-1 |
| `ns.q.dead` | queue, durable | dead letters; headers say why and when |
| `ns.queues` | queue, durable, newest 10,000 kept | one message per queue name a process used |
| `ns.workers` | queue, durable, newest 10,000 kept | worker heartbeats |

**Delays without a plugin, never in a worker's memory.** A message due in D ticks of
64 ms (rounded up) is published to exchange `ns.q.delay.25` with D's 26 bits as its
routing key (`"0.0. ... .1.0.1"`, highest first). Exchange L sends it to queue
`ns.q.delay.L` when bit L is 1, else straight on to exchange L-1. Queue L's messages all
live 2^L ticks, so they expire in the order they came, and each is then dead-lettered to
exchange L-1 (L = 0: to `ns.q`) with its routing key. So a message waits D ticks in all,
in at most 26 durable queues RabbitMQ moves it between by itself. A delay beyond
2^26 - 1 ticks (49 days) waits that long, then the worker that meets it sends it round
again.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

import aiormq.abc

LEVELS = 26
TICK_MS = 64  # the unit of delays: a delay is rounded up to a multiple of it
MAX_TICKS = 2**LEVELS - 1  # what one pass through the levels can wait
MAX_PRIORITY = 10  # Conveyor priorities 0..9
REGISTRY_LENGTH = 10_000


class Names:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def ready(self, queue: str) -> str:
        return f"{self.namespace}.{queue}"

    def delay(self, queue: str, level: int) -> str:
        return f"{self.namespace}.{queue}.delay.{level}"

    def dead(self, queue: str) -> str:
        return f"{self.namespace}.{queue}.dead"

    @property
    def queues(self) -> str:
        return f"{self.namespace}.queues"

    @property
    def workers(self) -> str:
        return f"{self.namespace}.workers"


def delay_key(seconds: float) -> tuple[str, float]:
    """The routing key that makes a message wait `seconds` (rounded up to whole ticks, at
    most MAX_TICKS), and how long it will really wait."""
    ticks = min(MAX_TICKS, max(1, math.ceil(seconds * 1000 / TICK_MS)))
    return ".".join(format(ticks, f"0{LEVELS}b")), ticks * TICK_MS / 1000


def _bit_pattern(level: int, bit: str) -> str:
    """The topic pattern matching keys whose bit `level` is `bit` (bits highest first)."""
    words = ["*"] * LEVELS
    words[LEVELS - 1 - level] = bit
    return ".".join(words)


async def declare_queue(channels: Sequence[aiormq.abc.AbstractChannel], names: Names,
                        queue: str, queue_type: str) -> int:
    """Declare queue `queue` (its ready, delay and dead queues and the exchanges between
    them; idempotent); returns how many messages are ready in it. The first time, this
    creates 28 durable queues and 26 exchanges, each written to disk by RabbitMQ: the
    levels go out on several channels at once (0.15 s instead of 0.5 s)."""
    ready = names.ready(queue)

    async def levels(channel: aiormq.abc.AbstractChannel, start: int) -> None:
        for level in range(start, LEVELS, len(channels)):
            name = names.delay(queue, level)
            onward = ({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": ready}
                      if level == 0 else {"x-dead-letter-exchange": names.delay(queue, level - 1)})
            await channel.exchange_declare(name, exchange_type="topic", durable=True)
            await channel.queue_declare(name, durable=True, arguments={
                "x-message-ttl": TICK_MS * 2**level, **onward})
            await channel.queue_bind(name, name, routing_key=_bit_pattern(level, "1"))

    arguments: dict[str, Any] = ({"x-queue-type": "quorum"} if queue_type == "quorum"
                                 else {"x-max-priority": MAX_PRIORITY})
    first = channels[0]
    declared = await first.queue_declare(ready, durable=True, arguments=arguments)
    await first.queue_declare(names.dead(queue), durable=True)
    await asyncio.gather(*(levels(channel, i) for i, channel in enumerate(channels)))

    async def onward(channel: aiormq.abc.AbstractChannel, start: int) -> None:
        for level in range(start, LEVELS, len(channels)):  # every exchange exists now
            if level == 0:
                await channel.queue_bind(ready, names.delay(queue, 0),
                                         routing_key=_bit_pattern(0, "0"))
            else:
                await channel.exchange_bind(names.delay(queue, level - 1),
                                            names.delay(queue, level),
                                            routing_key=_bit_pattern(level, "0"))

    await asyncio.gather(*(onward(channel, i) for i, channel in enumerate(channels)))
    return int(declared.message_count or 0)


async def declare_registry(channel: aiormq.abc.AbstractChannel, names: Names) -> None:
    for name in (names.queues, names.workers):
        await channel.queue_declare(name, durable=True, arguments={
            "x-max-length": REGISTRY_LENGTH, "x-overflow": "drop-head"})


async def count(channel: aiormq.abc.AbstractChannel, queue: str) -> int:
    """Messages ready in an existing queue (a declare of one that exists changes nothing)."""
    declared = await channel.queue_declare(queue, passive=True)
    return int(declared.message_count or 0)
