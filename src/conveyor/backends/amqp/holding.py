"""What a process holds from RabbitMQ: deliveries waiting to be reserved, and reserved
ones with their leases.

RabbitMQ pushes messages to a consumer up to its prefetch. They land here on the event
loop thread (`arrive`); a worker's reserving thread takes them (`take`) without a round
trip, and its writer thread settles them (`settle`). One lock guards it all: the three
threads only ever hold it for a few dict and deque operations.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import aiormq.abc

from conveyor.broker import Delivery


@dataclass(eq=False)
class Subscription:
    """One consumer (`basic.consume`) of a ready queue: `prefetch` is the worker slots it
    was made for, `held` how many of its messages the worker has reserved (RabbitMQ's own
    window, basic.qos, is a multiple of `prefetch`: see AHEAD in broker.py)."""

    queue: str
    channel: aiormq.abc.AbstractChannel
    prefetch: int
    tag: str = ""
    held: int = 0
    cancelled: bool = False

    @property
    def live(self) -> bool:
        return not self.cancelled and not self.channel.is_closed and consuming(
            self.channel, self.tag)

    def serves(self, n: int) -> bool:
        """Whether it can go on feeding a reserve of `n`: live, with room for `n` more."""
        return self.live and self.prefetch - self.held >= n


def consuming(channel: aiormq.abc.AbstractChannel, tag: str) -> bool:
    """Whether `tag` still consumes on `channel` (RabbitMQ cancels a consumer whose queue
    was deleted; aiormq forgets its tag then)."""
    consumers: dict[str, object] = getattr(channel, "consumers", {})
    return tag in consumers


@dataclass(eq=False)
class Held:
    """A message RabbitMQ handed to this process: `tag` on `channel` names it there (the
    pair changes when a long task's message is parked, see parking.py)."""

    queue: str
    order: int  # the queue's place in the reserve that asked for it: ties go in that order
    delivery: Delivery
    message: aiormq.abc.DeliveredMessage
    channel: aiormq.abc.AbstractChannel
    tag: int
    subscription: Subscription | None
    delivered: float = field(default_factory=time.monotonic)  # when its channel got it
    until: float = math.inf  # the lease: set when reserved, renewed by `extend`
    busy: asyncio.Future[None] | None = None  # a move (parking) under way, on the loop

    @property
    def live(self) -> bool:
        """Whether its tag still means something (its channel is open)."""
        return not self.channel.is_closed

    async def idle(self) -> None:
        """Wait for a move of this message to finish (on the loop)."""
        while self.busy is not None:
            await asyncio.shield(self.busy)


class Holdings:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._waiting: deque[Held] = deque()
        self._held: dict[str, Held] = {}  # receipt -> held message
        self._receipts = itertools.count(1)

    def receipt(self) -> str:
        """A name for one hand-out, unique in this process only. A message handed out
        again may come to the process still running its first hand-out, so the two must
        settle apart. What names the message in any process is `Delivery.entry`."""
        return str(next(self._receipts))

    # -- the loop thread ---------------------------------------------------------------

    def arrive(self, held: Held) -> None:
        with self._arrived:
            self._waiting.append(held)
            if len(self._waiting) == 1:  # a reserve waits only while there is nothing
                self._arrived.notify()

    def waiting_for(self, subscriptions: Iterable[Subscription]) -> int:
        wanted = set(map(id, subscriptions))
        with self._lock:
            return sum(1 for h in self._waiting if id(h.subscription) in wanted)

    def unwanted(self, keep: Callable[[Held], bool]) -> list[Held]:
        """Take the waiting messages `keep` rejects out of the buffer (to give back)."""
        with self._lock:
            dropped = [h for h in self._waiting if not keep(h)]
            if dropped:
                self._waiting = deque(h for h in self._waiting if keep(h))
            return dropped

    def lapsed(self, now: float) -> list[Held]:
        """Reserved messages whose lease ran out, no longer held."""
        with self._lock:
            gone = [r for r, h in self._held.items() if h.until <= now]
            return [self._release(r) for r in gone]

    def older_than(self, when: float) -> list[Held]:
        """Reserved messages their channel got before `when` (to park)."""
        with self._lock:
            return [h for h in self._held.values() if h.delivered < when and h.busy is None]

    def stale_waiting(self, when: float) -> list[Held]:
        """Waiting messages nobody reserved since `when`."""
        with self._lock:
            return [h for h in self._waiting if h.delivered < when]

    def moved(self, held: Held, channel: aiormq.abc.AbstractChannel, tag: int,
              message: aiormq.abc.DeliveredMessage, delivered: float) -> None:
        """`held` is now `tag` on `channel` (parked), no longer part of a consumer's prefetch."""
        with self._lock:
            if held.subscription is not None and self._held.get(held.delivery.receipt) is held:
                held.subscription.held -= 1
            held.channel, held.tag, held.message = channel, tag, message
            held.subscription, held.delivered = None, delivered

    def holds(self, held: Held) -> bool:
        with self._lock:
            return self._held.get(held.delivery.receipt) is held

    # -- the reserving thread ----------------------------------------------------------

    def take(self, n: int, wait: float, lease_seconds: float) -> list[Held]:
        """Up to `n` waiting messages, waiting up to `wait` seconds for the first; each
        reserved with a lease of `lease_seconds`. Messages of a closed channel are
        dropped (RabbitMQ gave them back when it closed)."""
        deadline = time.monotonic() + wait
        with self._arrived:
            while True:
                while self._waiting and not self._waiting[0].live:
                    self._waiting.popleft()
                if self._waiting:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._arrived.wait(remaining)
            taken: list[Held] = []
            until = time.monotonic() + lease_seconds
            while self._waiting and len(taken) < n:
                held = self._waiting.popleft()
                if not held.live:
                    continue
                held.until = until
                if held.subscription is not None:
                    held.subscription.held += 1
                self._held[held.delivery.receipt] = held
                taken.append(held)
            return taken

    # -- the writer thread (and the heartbeat) -----------------------------------------

    def settle(self, deliveries: Sequence[Delivery]) -> list[Held]:
        """The held messages these deliveries stand for, no longer held; a delivery
        whose lease was lost stands for nothing."""
        with self._lock:
            found = [self._release(d.receipt) for d in deliveries
                     if d.receipt in self._held]
        return found

    def extend(self, deliveries: Sequence[Delivery], lease_seconds: float) -> None:
        until = time.monotonic() + lease_seconds
        with self._lock:
            for d in deliveries:
                held = self._held.get(d.receipt)
                if held is not None:
                    held.until = until

    def running(self) -> dict[str, int]:
        """Reserved messages, per queue."""
        with self._lock:
            return dict(Counter(held.queue for held in self._held.values()))

    def ahead(self) -> dict[str, int]:
        """Waiting messages, per queue."""
        with self._lock:
            return dict(Counter(held.queue for held in self._waiting))

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._held or self._waiting)

    def _release(self, receipt: str) -> Held:
        held = self._held.pop(receipt)
        if held.subscription is not None:
            held.subscription.held -= 1
        return held
