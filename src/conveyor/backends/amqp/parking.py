"""Tasks that run longer than RabbitMQ's `consumer_timeout` (30 minutes by default).

RabbitMQ closes a channel whose oldest unacknowledged delivery is older than
`consumer_timeout`, and gives back everything the channel held: the long task would run
a second time somewhere else, and the acks of every other task on the channel would
fail. RabbitMQ 3.10 has no per-queue setting for it, and a worker can't ask the server
what it is.

So a message held for 80% of `consumer_timeout` (the URL option of that name, default
1800 s: set it to the server's value) is *parked*: published, confirmed, to a durable
queue of this connection's own, taken straight back from there with `basic.get` (a new
delivery, whose clock starts at zero), and only then is the original acked. The copy is
held on the connection like the original was, for another 80%, and so on.

If the worker dies, RabbitMQ gives the copy back to the parking queue, where it has
outlived its TTL (60 s): RabbitMQ dead-letters it to the ready queue it came from at
once, and another worker runs it, as it would have the original. Nothing is lost; a
crash between the publish and the ack leaves two copies, never none. The parking queue
deletes itself once unused for twice the timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time

from pamqp import commands as spec

from conveyor.backends.amqp.acks import Acks
from conveyor.backends.amqp.client import Session, properties
from conveyor.backends.amqp.holding import Held, Holdings
from conveyor.backends.amqp.topology import Names

logger = logging.getLogger("conveyor.amqp")
PARK_AT = 0.8  # of consumer_timeout
COPY_TTL_MS = 60_000  # a parked copy whose holder died goes back to its queue after this


class Parking:
    def __init__(self, names: Names, token: str, consumer_timeout: float) -> None:
        self.names = names
        self.token = token  # this process's connection, in the parking queues' names
        self.after = consumer_timeout * PARK_AT
        self.expires_ms = int((2 * consumer_timeout + 60) * 1000)
        self._lock: asyncio.Lock | None = None  # one park at a time: basic.get takes ours

    def queue(self, queue: str, generation: int) -> str:
        return f"{self.names.ready(queue)}.parked.{self.token}.{generation}"

    async def park(self, session: Session, held: Held, holdings: Holdings, acks: Acks) -> None:
        """Move `held` to this connection's parking queue and hold it from there (on the
        loop). Acks, retries and lease expiries of it wait until the move is over."""
        if not holdings.holds(held) or not held.live or held.busy is not None:
            return  # finished (or its connection closed) meanwhile: nothing to keep
        held.busy = asyncio.get_running_loop().create_future()
        try:
            self._lock = self._lock or asyncio.Lock()
            async with self._lock:
                await self._move(session, held, holdings, acks)
        finally:
            busy, held.busy = held.busy, None
            busy.set_result(None)

    async def _move(self, session: Session, held: Held, holdings: Holdings, acks: Acks) -> None:
        name = self.queue(held.queue, session.generation)
        channel = await session.channel("park", confirms=True)
        # Declared every time (parks are rare): the queue deletes itself when unused.
        await channel.queue_declare(name, durable=True, arguments={
            "x-message-ttl": COPY_TTL_MS, "x-expires": self.expires_ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.names.ready(held.queue)})
        props = held.message.header.properties
        reply = await channel.basic_publish(held.message.body, routing_key=name,
                                            properties=properties(
                                                message_id=props.message_id,
                                                priority=props.priority,
                                                headers=props.headers))
        if not isinstance(reply, spec.Basic.Ack):
            logger.error("RabbitMQ didn't take the parked copy of task %s; it stays where "
                         "it is", held.delivery.id)
            return
        copy = await channel.basic_get(name)
        if not isinstance(copy.delivery, spec.Basic.GetOk) or \
                copy.header.properties.message_id != props.message_id:
            logger.error("parking queue %s didn't hand back task %s; its copy goes back to "
                         "the queue in %d s", name, held.delivery.id, COPY_TTL_MS // 1000)
            if isinstance(copy.delivery, spec.Basic.GetOk):
                await channel.basic_nack(int(copy.delivery_tag or 0), requeue=True)
            return
        original, tag = held.channel, held.tag
        holdings.moved(held, channel, int(copy.delivery_tag or 0), copy, time.monotonic())
        await acks.ack([(original, tag)])
        logger.info("task %s held over %.0f s: parked in %s (consumer_timeout)",
                    held.delivery.id, self.after, name)
