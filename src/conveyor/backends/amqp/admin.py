"""What RabbitMQ has no command for, done with queues: revoking, dead letters, the list of
queue names and of live workers, queue depths (no management plugin needed).

RabbitMQ can't take a message out of the middle of a queue, nor list one. So these read
a queue through (`basic.get` until it is empty, on a channel of their own), keep or drop
each message, then close the channel: RabbitMQ puts every message not acked back where
it was. While a queue is read, its messages are held, not lost: a crash gives them back.
That costs a round trip per message: reading 100,000 waiting messages takes seconds.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import aiormq.abc
import msgspec
from pamqp import commands as spec

from conveyor.backends.amqp.client import Session, confirmed, properties
from conveyor.backends.amqp.headers import number
from conveyor.backends.amqp.topology import LEVELS, Names, count, declare_registry
from conveyor.broker import DeadLetter, QueueStats, Revoked, WorkerInfo

if TYPE_CHECKING:
    from conveyor.backends.amqp.holding import Held


class Site(Protocol):
    """What these operations need of the broker they run for: its names, the queues it
    has declared, and what its own workers hold (they don't count themselves twice)."""

    names: Names
    declared: set[str]
    own_workers: set[str]

    async def declare(self, session: Session, queues: set[str]) -> None: ...

    def running(self) -> dict[str, int]: ...

    def ahead(self) -> dict[str, int]: ...

REASON, FAILED_AT, FORGET, EXPIRES = ("x-conveyor-reason", "x-conveyor-failed-at",
                                      "x-conveyor-forget", "x-conveyor-expires")
FORGET_TTL = 3600.0  # how long a forgotten worker's tombstone outlives its heartbeats
_worker = msgspec.json.Decoder(WorkerInfo)


async def read_through(channel: aiormq.abc.AbstractChannel, queue: str
                       ) -> list[aiormq.abc.DeliveredMessage]:
    """Every message of `queue`, oldest first, held on `channel` until it closes."""
    got: list[aiormq.abc.DeliveredMessage] = []
    while True:
        message = await channel.basic_get(queue)
        if not isinstance(message.delivery, spec.Basic.GetOk):
            return got
        got.append(message)


async def with_channel(session: Session, use: Callable[[aiormq.abc.AbstractChannel],
                                                       Awaitable[Any]]) -> Any:
    """Run `use` on a channel of its own, closed after: what it holds and didn't ack
    goes back to its queue, in its place."""
    channel = await session.connection.channel()
    try:
        return await use(channel)
    finally:
        if not channel.is_closed:
            await channel.close()


def _task_id(message: aiormq.abc.DeliveredMessage) -> str:
    return message.header.properties.message_id or ""


def _headers(message: aiormq.abc.DeliveredMessage) -> dict[str, Any]:
    return dict(message.header.properties.headers or {})


# -- queue names ---------------------------------------------------------------------


async def remember_queues(broker: Site, session: Session, queues: set[str]) -> None:
    channel = await session.channel("admin")
    await declare_registry(channel, broker.names)
    for queue in queues:
        await channel.basic_publish(queue.encode(), routing_key=broker.names.queues,
                                    properties=properties())


async def known_queues(broker: Site, session: Session) -> list[str]:
    await broker.declare(session, {"default"})

    async def read(channel: aiormq.abc.AbstractChannel) -> set[str]:
        return {m.body.decode() for m in await read_through(channel, broker.names.queues)}

    return sorted({"default", *broker.declared, *await with_channel(session, read)})


# -- depths ----------------------------------------------------------------------------


async def stats(broker: Site, session: Session) -> dict[str, QueueStats]:
    queues = await known_queues(broker, session)
    await broker.declare(session, set(queues))
    channel = await session.channel("admin")
    running, ahead = broker.running(), broker.ahead()
    for worker in await workers(broker, session):
        if worker.id not in broker.own_workers:
            for queue, held in worker.running_by_queue.items():
                running[queue] = running.get(queue, 0) + held
    found = {}
    for queue in queues:
        names = broker.names
        scheduled = 0
        for level in range(LEVELS):
            scheduled += await count(channel, names.delay(queue, level))
        ready = await count(channel, names.ready(queue)) + ahead.get(queue, 0)
        found[queue] = QueueStats(ready=ready,
                                  scheduled=scheduled, running=running.get(queue, 0),
                                  dead=await count(channel, names.dead(queue)))
    return found


async def purge(broker: Site, session: Session, queue: str) -> int:
    """Delete a queue's ready and scheduled messages; held (running) ones finish."""
    await broker.declare(session, {queue})
    channel = await session.channel("admin")
    names = [broker.names.ready(queue), *(broker.names.delay(queue, level)
                                          for level in range(LEVELS))]
    removed = 0
    for name in names:
        done = await channel.queue_purge(name)
        removed += int(done.message_count or 0)
    return removed


# -- revoke ----------------------------------------------------------------------------


async def revoke(broker: Site, session: Session, ids: list[str]) -> list[Revoked]:
    """Read every waiting message of every queue (ready and delayed), holding them, ack
    those with these ids, then give the others back. One channel holds all of them at
    once: no message moves between the delay levels while they are read."""
    wanted = set(ids)
    if not wanted:
        return []
    queues = await known_queues(broker, session)

    async def sweep(channel: aiormq.abc.AbstractChannel) -> list[Revoked]:
        removed = []
        for queue in queues:
            names = [*(broker.names.delay(queue, level) for level in reversed(range(LEVELS))),
                     broker.names.ready(queue)]
            for name in names:
                for message in await read_through(channel, name):
                    if _task_id(message) in wanted:
                        await channel.basic_ack(int(message.delivery_tag or 0))
                        removed.append(Revoked(_task_id(message), queue, message.body))
        return removed

    return list(await with_channel(session, sweep))


# -- dead letters ------------------------------------------------------------------------


async def bury(broker: Site, session: Session, held: Held, reason: str,
               ack: Callable[[list[Held]], Awaitable[None]]) -> None:
    """Copy a held message to its queue's dead letters (confirmed), then ack it. If its
    channel closed, RabbitMQ has given it back already: it comes round again."""
    await held.idle()
    if not held.live:
        return
    props = held.message.header.properties
    channel = await session.channel("publish", confirms=True)
    reply = await channel.basic_publish(
        held.message.body, routing_key=broker.names.dead(held.queue),
        properties=properties(message_id=props.message_id, priority=props.priority,
                              headers={REASON: reason, FAILED_AT: repr(time.time())}))
    await confirmed([reply])
    await ack([held])


async def dead_letters(broker: Site, session: Session, queue: str | None,
                       limit: int) -> list[DeadLetter]:
    queues = [queue] if queue is not None else await known_queues(broker, session)
    await broker.declare(session, set(queues))

    async def read(channel: aiormq.abc.AbstractChannel) -> list[DeadLetter]:
        letters = []
        for q in queues:
            for message in await read_through(channel, broker.names.dead(q)):
                headers = _headers(message)
                letters.append(DeadLetter(
                    id=_task_id(message), queue=q, reason=str(headers.get(REASON, "")),
                    failed_at=number(headers.get(FAILED_AT)) or 0.0, body=message.body))
        return letters

    letters: list[DeadLetter] = await with_channel(session, read)
    letters.sort(key=lambda d: d.failed_at, reverse=True)
    return letters[:limit]


async def purge_dead(broker: Site, session: Session, queue: str | None,
                     ids: Sequence[str] | None) -> int:
    if ids is not None and not ids:
        return 0
    queues = [queue] if queue is not None else await known_queues(broker, session)
    await broker.declare(session, set(queues))
    wanted = set(ids) if ids is not None else None

    async def delete(channel: aiormq.abc.AbstractChannel) -> int:
        removed = 0
        for q in queues:
            if wanted is None:
                done = await channel.queue_purge(broker.names.dead(q))
                removed += int(done.message_count or 0)
                continue
            for message in await read_through(channel, broker.names.dead(q)):
                if _task_id(message) in wanted:
                    await channel.basic_ack(int(message.delivery_tag or 0))
                    removed += 1
        return removed

    return int(await with_channel(session, delete))


# -- workers -----------------------------------------------------------------------------


async def heartbeat(broker: Site, session: Session, worker: WorkerInfo,
                    ttl: float) -> None:
    await _say(broker, session, msgspec.json.encode(worker), ttl,
               {EXPIRES: repr(time.time() + ttl)})


async def forget_worker(broker: Site, session: Session, worker_id: str) -> None:
    await _say(broker, session, b"", FORGET_TTL, {FORGET: worker_id})


async def _say(broker: Site, session: Session, body: bytes, ttl: float,
               headers: dict[str, Any]) -> None:
    """Publish to the workers queue; each message expires on its own (RabbitMQ drops it
    then), so the queue holds about one heartbeat per live worker."""
    channel = await session.channel("admin")
    await declare_registry(channel, broker.names)
    await channel.basic_publish(body, routing_key=broker.names.workers, properties=properties(
        expiration=str(max(1, int(ttl * 1000))), headers=headers))


async def workers(broker: Site, session: Session) -> list[WorkerInfo]:
    """The newest heartbeat of each worker that is neither expired nor forgotten."""
    channel = await session.channel("admin")
    await declare_registry(channel, broker.names)
    messages = await with_channel(
        session, lambda channel: read_through(channel, broker.names.workers))
    now = time.time()
    live: dict[str, WorkerInfo] = {}
    for message in messages:
        headers = _headers(message)
        if FORGET in headers:
            live.pop(str(headers[FORGET]), None)
        elif (number(headers.get(EXPIRES)) or 0.0) > now:
            info = _worker.decode(message.body)
            live[info.id] = info
        else:
            live.pop(_worker.decode(message.body).id, None)
    return sorted(live.values(), key=lambda w: w.id)
