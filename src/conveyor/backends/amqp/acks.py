"""Acknowledgements, as few frames as RabbitMQ allows (on the loop thread).

A worker finishes tasks in batches (its writer flushes every few milliseconds). An ack
with `multiple` set acknowledges every unacked delivery of the channel up to its tag,
so a batch that holds the channel's oldest deliveries goes out as one frame: this
tracks, per channel, the tags handed to this process and not yet settled, in order.
The rest of a batch (tasks that overtook older ones still running) is acked one by one.

Planning and sending happen under one lock: aiormq's frame queue is bounded, so two
coroutines sending at once can overtake each other, and a `multiple` ack that reaches
RabbitMQ before a single ack it covers makes that one an unknown tag (which closes the
channel).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable

import aiormq.abc


class Tags:
    """One channel's delivery tags not yet settled, oldest first."""

    def __init__(self) -> None:
        self._order: deque[int] = deque()
        self._settled: set[int] = set()  # settled out of order, still in `_order`

    def delivered(self, tag: int) -> None:
        self._order.append(tag)

    def plan(self, tags: Iterable[int]) -> tuple[int | None, list[int]]:
        """How to settle `tags`: (the tag of one `multiple` ack covering the oldest of
        them, or None; the others, one by one). Records them as settled."""
        batch = set(tags)
        top = None
        while self._order and (self._order[0] in batch or self._order[0] in self._settled):
            tag = self._order.popleft()
            if tag in batch:
                top = tag
                batch.discard(tag)
            else:
                self._settled.discard(tag)
        self._settled |= batch
        return top, sorted(batch)


class Acks:
    def __init__(self) -> None:
        self._channels: dict[int, tuple[aiormq.abc.AbstractChannel, Tags]] = {}
        self._lock: asyncio.Lock | None = None  # made on the loop, at first use

    def delivered(self, channel: aiormq.abc.AbstractChannel, tag: int) -> None:
        """Track a delivery of a channel whose acks may be merged (a consumer's)."""
        entry = self._channels.get(id(channel))
        if entry is None or entry[0] is not channel:
            entry = self._channels[id(channel)] = (channel, Tags())
        entry[1].delivered(tag)

    async def ack(self, deliveries: Iterable[tuple[aiormq.abc.AbstractChannel, int]]) -> None:
        """Ack these (channel, tag) pairs; those of a closed channel RabbitMQ has given
        back already, and are skipped."""
        by_channel: dict[int, tuple[aiormq.abc.AbstractChannel, list[int]]] = {}
        for channel, tag in deliveries:
            by_channel.setdefault(id(channel), (channel, []))[1].append(tag)
        async with self._sending():
            for channel, tags in by_channel.values():
                top, singles = self._plan(channel, tags)
                if channel.is_closed:
                    continue
                if top is not None:
                    await channel.basic_ack(top, multiple=True, wait=False)
                for tag in singles:
                    await channel.basic_ack(tag, wait=False)

    async def nack(self, channel: aiormq.abc.AbstractChannel, tag: int) -> None:
        """Give a delivery back to its queue, in its place."""
        async with self._sending():
            self._plan(channel, [tag], merge=False)
            if not channel.is_closed:
                await channel.basic_nack(tag, requeue=True, wait=False)

    def _sending(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def _plan(self, channel: aiormq.abc.AbstractChannel, tags: list[int],
              merge: bool = True) -> tuple[int | None, list[int]]:
        entry = self._channels.get(id(channel))
        if entry is None or entry[0] is not channel:
            return None, tags
        if channel.is_closed:
            del self._channels[id(channel)]
            return None, []
        top, singles = entry[1].plan(tags)
        if not merge and top is not None:
            singles = sorted([top, *singles])
            top = None
        return top, singles
