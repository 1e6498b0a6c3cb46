"""RabbitMQ broker (aiormq): the Broker protocol on AMQP 0-9-1 (docs/rabbitmq.md).

Layout in topology.py. What AMQP gives and what Conveyor adds to keep the contract every
broker keeps:
- **Reserve takes from a prefetch**: a consumer per queue (`basic.consume`) with a
  window of twice what the worker asked for (its slots: 2 x threads; see AHEAD), so
  RabbitMQ pushes the next messages while tasks run and `reserve` takes them without a
  round trip (holding.py); purge, revoke and stats reach those of their own process.
  A new consumer, or one whose prefetch no longer fits, is made on the next reserve.
- **Leases**: RabbitMQ gives a message back when its consumer's connection closes (a
  SIGKILLed worker's tasks come back at once). A reserved message also has a lease its
  worker's heartbeat renews (`extend`); if it runs out, the broker puts the message back
  itself, counted (`x-conveyor-deliveries`), and stops consuming that queue until the
  next reserve, so a stuck worker's tasks come back too.
- **consumer_timeout**: a message held for most of it is parked (parking.py).
- **Publisher confirms**: `publish` returns once RabbitMQ has every message of the batch.
- **Delays**: through the per-queue delay levels, never in a worker's memory.
- **Admin** (revoke, dead letters, workers, queue names): admin.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import aiormq.abc

from conveyor.backends.amqp import admin
from conveyor.backends.amqp.acks import Acks
from conveyor.backends.amqp.client import LOST, AmqpClient, Session, confirmed, properties
from conveyor.backends.amqp.headers import (
    counted,
    entry_of,
    eta_of,
    headers_for,
    stamped,
)
from conveyor.backends.amqp.holding import Held, Holdings, Subscription, consuming
from conveyor.backends.amqp.parking import Parking
from conveyor.backends.amqp.topology import LEVELS, Names, count, declare_queue, delay_key
from conveyor.backends.amqp.url import parse_url
from conveyor.backends.waiting import retry_while_unavailable
from conveyor.broker import DeadLetter, Delivery, QueueStats, Revoked, WorkerInfo
from conveyor.errors import BrokerUnavailable
from conveyor.message import Envelope, new_id

logger = logging.getLogger("conveyor.amqp")
SWEEP_EVERY = 0.1  # how often lapsed leases and long-held messages are looked for
DECLARE_CHANNELS = 6  # RabbitMQ creates queues of different channels at once
SETTLE = 0.05  # how long a new consumer waits for RabbitMQ's first push of ready messages
# RabbitMQ's window (basic.qos) is this many times the slots a reserve asked for: the next
# batch has arrived by the time tasks end. Measured on no-op tasks, -p 1 -t 8: 1x 3,570/s,
# 2x 4,170/s, 4x no better. The messages ahead wait in the process, given back (in their
# place) if it stops asking for them; revoke can't reach them meanwhile. A reserve of 1
# (`--prefetch 1`, long tasks) gets a window of 1: nothing waits behind a running task.
AHEAD = 2


class AmqpBroker:
    def __init__(self, url: str, lease_seconds: float = 30.0) -> None:
        self.url = url
        self.lease_seconds = lease_seconds
        self.target = parse_url(url)
        self.names = Names(self.target.namespace)
        self.client = AmqpClient(self.target)
        self.holdings = Holdings()
        self.acks = Acks()  # used on the loop only
        self.parking = Parking(self.names, uuid.uuid4().hex[:12],
                               self.target.consumer_timeout)
        self.declared: set[str] = set()
        self._subscriptions: dict[str, Subscription] = {}  # queue -> its consumer
        self._order: dict[str, int] = {}  # queue -> its place in the last reserve
        self._sweeper: asyncio.Task[None] | None = None
        self.own_workers: set[str] = set()

    # -- producing -------------------------------------------------------------------

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Every message of the batch confirmed by RabbitMQ, retried while it is
        unreachable for up to `publish_timeout` seconds (at least once, never zero)."""
        retry_while_unavailable(lambda: self.client.run(lambda s: self._publish(s, envelopes)),
                                self.target.publish_timeout)

    async def _publish(self, session: Session, envelopes: Sequence[Envelope]) -> None:
        await self.declare(session, {e.queue for e in envelopes})
        channel = await session.channel("publish", confirms=True)
        now = time.time()
        await confirmed(await asyncio.gather(*(
            self._send(channel, e.queue, e.id, e.priority, e.body, e.eta, 0, new_id(), now)
            for e in envelopes)))

    async def _send(self, channel: aiormq.abc.AbstractChannel, queue: str, task_id: str,
                    priority: int, body: bytes, eta: float | None, deliveries: int,
                    entry: str, now: float) -> Any:
        """Publish one message; `entry` is its stamp: new from `publish`, carried over
        when the broker publishes a message anew (headers.py)."""
        headers = headers_for(eta, deliveries, entry)
        exchange, key = "", self.names.ready(queue)
        if eta is not None and eta > now:
            exchange, key = self.names.delay(queue, LEVELS - 1), delay_key(eta - now)[0]
        return await channel.basic_publish(body, exchange=exchange, routing_key=key,
                                           properties=properties(
                                               message_id=task_id, priority=priority,
                                               headers=headers or None))

    async def declare(self, session: Session, queues: set[str]) -> None:
        """Declare the queues this process hasn't yet (and record their names). The
        first time a queue is used anywhere this takes about 0.15 s (RabbitMQ writes its
        28 queues and 26 exchanges to disk); `default` goes first, with the first."""
        new = (queues | {"default"}) - self.declared
        if not new:
            return
        channels = [await session.channel(f"declare-{i}") for i in range(DECLARE_CHANNELS)]
        for queue in sorted(new):
            await declare_queue(channels, self.names, queue, self.target.queue_type)
        await admin.remember_queues(self, session, new)
        self.declared |= new

    # -- consuming -------------------------------------------------------------------

    def reserve(self, queues: Sequence[str], n: int, wait: float) -> list[Delivery]:
        wanted = list(dict.fromkeys(queues))
        if n <= 0 or not wanted:
            return []
        if self._must_subscribe(wanted, n):
            self.client.run(lambda s: self._subscribe(s, wanted, n), timeout=wait + 30.0)
        taken = self.holdings.take(n, wait, self.lease_seconds)
        if not taken and wait < SETTLE:
            # A push takes a moment: a short reserve (a burst worker's last) mustn't take
            # "on its way" or "not pushed yet" for "nothing ready".
            taken = self.holdings.take(n, SETTLE - wait, self.lease_seconds)
            if not taken and self.client.run(lambda s: self._any_ready(s, wanted)):
                taken = self.holdings.take(n, 10 * SETTLE, self.lease_seconds)
        taken.sort(key=lambda h: (-h.delivery.priority, h.order))  # stable: then as pushed
        return [h.delivery for h in taken]

    def _must_subscribe(self, queues: list[str], n: int) -> bool:
        """Whether the consumers don't match this reserve: other queues, a consumer gone
        (connection or channel closed, or cancelled by RabbitMQ), or a prefetch too
        small to hand out `n` more."""
        if list(self._subscriptions) != queues:
            return True
        return not all(s.serves(n) for s in self._subscriptions.values())

    async def _subscribe(self, session: Session, queues: list[str], n: int) -> None:
        """Consume exactly `queues`, each with room for `n` more; then wait a moment for
        RabbitMQ's first push, so a reserve of a full queue gets a full batch."""
        await self.declare(session, set(queues))
        channel = await session.channel("consume")
        for queue, old in list(self._subscriptions.items()):
            if queue not in queues or not old.serves(n):
                await self._unsubscribe(old)
                del self._subscriptions[queue]
        self._order = {queue: i for i, queue in enumerate(queues)}
        await self._give_back(self.holdings.unwanted(lambda h: h.queue in queues))
        new, expected = [], 0
        for queue in queues:
            if queue in self._subscriptions:
                continue
            sub = Subscription(queue, channel, n)
            await channel.basic_qos(prefetch_count=n if n == 1 else AHEAD * n)
            expected += min(n, await count(channel, self.names.ready(queue)))
            ok = await channel.basic_consume(self.names.ready(queue),
                                             self._arrival(session, sub))
            sub.tag = str(ok.consumer_tag)
            self._subscriptions[queue] = sub
            new.append(sub)
        self._start_sweeper(session)
        deadline = time.monotonic() + SETTLE
        while new and self.holdings.waiting_for(new) < expected and \
                time.monotonic() < deadline:
            await asyncio.sleep(0.002)

    async def _any_ready(self, session: Session, queues: list[str]) -> bool:
        channel = await session.channel("admin")
        for queue in queues:
            if await count(channel, self.names.ready(queue)):
                return True
        return False

    async def _unsubscribe(self, sub: Subscription) -> None:
        sub.cancelled = True
        if not sub.channel.is_closed and consuming(sub.channel, sub.tag):
            await sub.channel.basic_cancel(sub.tag)

    def _arrival(self, session: Session, sub: Subscription
                 ) -> Callable[[aiormq.abc.DeliveredMessage], Coroutine[Any, Any, None]]:
        async def arrive(message: aiormq.abc.DeliveredMessage) -> None:
            await self._arrive(session, sub, message)

        return arrive

    async def _arrive(self, session: Session, sub: Subscription,
                      message: aiormq.abc.DeliveredMessage) -> None:
        """A message RabbitMQ pushed (on the loop): waiting to be reserved, or, if its
        eta is still ahead, sent round the delay levels again."""
        props = message.header.properties
        headers = props.headers or {}
        tag = int(message.delivery_tag or 0)
        self.acks.delivered(sub.channel, tag)
        eta = eta_of(headers)
        if eta is not None and eta > time.time() + 0.001:  # a delay beyond the levels
            await self._again(session, sub.queue, message, eta)
            return
        deliveries = counted(headers) + 1 + int(
            bool(getattr(message.delivery, "redelivered", False)))
        delivery = Delivery(id=props.message_id or "", queue=sub.queue,
                            priority=props.priority or 0, body=message.body,
                            receipt=self.holdings.receipt(),
                            entry=entry_of(headers, props.message_id or ""),
                            deliveries=deliveries, fence=str(session.generation))
        self.holdings.arrive(Held(sub.queue, self._order.get(sub.queue, 0), delivery,
                                  message, sub.channel, tag, sub))

    async def _again(self, session: Session, queue: str, message: aiormq.abc.DeliveredMessage,
                     eta: float) -> None:
        """Send a message whose eta is still ahead round the delay levels again, then
        drop this copy (published first: never lost)."""
        props = message.header.properties
        headers = props.headers or {}
        channel = await session.channel("publish", confirms=True)
        await confirmed([await self._send(
            channel, queue, props.message_id or "", props.priority or 0, message.body, eta,
            counted(headers), stamped(headers), time.time())])
        if message.channel is not None:
            await self.acks.ack([(message.channel, int(message.delivery_tag or 0))])

    async def _give_back(self, waiting: list[Held]) -> None:
        """Put messages pushed to this process but never reserved back in their place."""
        for held in waiting:
            await self.acks.nack(held.channel, held.tag)

    # -- finishing -------------------------------------------------------------------

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Acks go out without waiting: RabbitMQ answers none, and one lost with the
        connection changes nothing (the connection's end gives the message back)."""
        held = self.holdings.settle(deliveries)
        if held:
            self.client.submit(lambda s: self._ack(held))

    async def _ack(self, held: list[Held]) -> None:
        for h in held:
            await h.idle()  # a move (parking) changes its channel and tag
        await self.acks.ack([(h.channel, h.tag) for h in held])

    def retry(self, delivery: Delivery, body: bytes, at: float | None) -> None:
        held = self.holdings.settle([delivery])
        if held:
            self.client.run(lambda s: self._replace(s, held[0], body, at, 0))

    async def _replace(self, session: Session, held: Held, body: bytes, at: float | None,
                       deliveries: int) -> None:
        """Publish the message anew (a retry's new body, due `at`), confirmed, then ack
        the held copy: a crash in between leaves both, never neither. If its channel
        closed, RabbitMQ has given the original back already: nothing to do."""
        await held.idle()
        if not held.live:
            return
        props = held.message.header.properties
        channel = await session.channel("publish", confirms=True)
        await confirmed([await self._send(channel, held.queue, props.message_id or "",
                                          props.priority or 0, body, at, deliveries,
                                          stamped(props.headers or {}), time.time())])
        await self._ack([held])

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        held = self.holdings.settle([delivery])
        if held:
            self.client.run(lambda s: admin.bury(self, s, held[0], reason, self._ack))

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        self.holdings.extend(deliveries, self.lease_seconds)

    def _start_sweeper(self, session: Session) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep(session))
            self._sweeper.add_done_callback(_log_failure)

    async def _sweep(self, session: Session) -> None:
        """While this connection lives: put back what a lapsed lease or a stale wait
        left here, and park what is held too long (on the loop)."""
        while session.alive:
            await asyncio.sleep(SWEEP_EVERY)
            await self._sweep_once(session, time.monotonic())

    async def _sweep_once(self, session: Session, now: float) -> None:
        lapsed = self.holdings.lapsed(now)
        stale = self.holdings.stale_waiting(now - self.lease_seconds)
        stopped = {id(h.subscription): h.subscription for h in lapsed + stale
                   if h.subscription is not None}
        for sub in stopped.values():
            await self._unsubscribe(sub)  # this process stopped asking: stop sending
        await self._give_back(self.holdings.unwanted(
            lambda h: id(h.subscription) not in stopped))
        for held in lapsed:
            await self._put_back(session, held)
        for held in self.holdings.older_than(now - self.parking.after):
            await self.parking.park(session, held, self.holdings, self.acks)

    async def _put_back(self, session: Session, held: Held) -> None:
        """A message whose lease ran out goes back to its queue, counted; if that fails,
        back uncounted (RabbitMQ's requeue) rather than held here for nothing."""
        headers = held.message.header.properties.headers or {}
        try:
            await self._replace(session, held, held.message.body, eta_of(headers),
                                counted(headers) + 1)
        except (BrokerUnavailable, *LOST):
            await self.acks.nack(held.channel, held.tag)

    # -- managing --------------------------------------------------------------------

    def purge(self, queue: str) -> int:
        return self.client.run(lambda s: self._purge(s, queue))

    async def _purge(self, session: Session, queue: str) -> int:
        removed = await admin.purge(self, session, queue)
        return removed + len(await self._take_ahead(lambda h: h.queue == queue))

    def revoke(self, ids: Sequence[str]) -> list[Revoked]:
        return self.client.run(lambda s: self._revoke(s, list(ids)), timeout=300)

    async def _revoke(self, session: Session, ids: list[str]) -> list[Revoked]:
        wanted = set(ids)
        ahead = [Revoked(h.delivery.id, h.queue, h.delivery.body) for h in
                 await self._take_ahead(lambda h: h.delivery.id in wanted)]
        return ahead + await admin.revoke(self, session, ids)

    async def _take_ahead(self, match: Callable[[Held], bool]) -> list[Held]:
        """Delete the messages RabbitMQ pushed to this process ahead (not reserved yet)
        that `match`: purge and revoke reach them here. Other processes' stay theirs."""
        taken = [h for h in self.holdings.unwanted(lambda h: not match(h)) if h.live]
        await self.acks.ack([(h.channel, h.tag) for h in taken])
        return taken

    def stats(self) -> dict[str, QueueStats]:
        return self.client.run(lambda s: admin.stats(self, s))

    def running(self) -> dict[str, int]:
        """What this process holds, per queue."""
        return self.holdings.running()

    def ahead(self) -> dict[str, int]:
        """What RabbitMQ pushed to this process ahead, not reserved yet, per queue: ready
        for `stats()` (other processes' are RabbitMQ's unacked, counted nowhere)."""
        return self.holdings.ahead()

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        return self.client.run(lambda s: admin.dead_letters(self, s, queue, limit), timeout=300)

    def purge_dead(self, queue: str | None = None, ids: Sequence[str] | None = None) -> int:
        return self.client.run(lambda s: admin.purge_dead(self, s, queue, ids), timeout=300)

    def heartbeat(self, worker: WorkerInfo, ttl: float) -> None:
        self.own_workers.add(worker.id)
        self.client.run(lambda s: admin.heartbeat(self, s, worker, ttl))

    def workers(self) -> list[WorkerInfo]:
        return self.client.run(lambda s: admin.workers(self, s))

    def forget_worker(self, worker_id: str) -> None:
        self.client.run(lambda s: admin.forget_worker(self, s, worker_id))

    def close(self) -> None:
        """Stop consuming and give back what waits here unreserved, then close: RabbitMQ
        would give it back anyway, after pushing more to a connection on its way out."""
        if self._subscriptions:
            try:
                self.client.run(lambda s: self._stop_consuming(), timeout=5.0)
            except BrokerUnavailable:
                pass  # the connection is gone: RabbitMQ has everything back already
        self.client.close()

    async def _stop_consuming(self) -> None:
        subscriptions, self._subscriptions = list(self._subscriptions.values()), {}
        for sub in subscriptions:
            await self._unsubscribe(sub)
        await self._give_back(self.holdings.unwanted(lambda h: False))


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("the lease sweeper stopped (lapsed leases are put back when the "
                     "connection closes; the next reserve starts it again)",
                     exc_info=task.exception())

