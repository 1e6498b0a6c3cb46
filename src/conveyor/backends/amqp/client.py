"""One RabbitMQ connection per process, owned by an asyncio loop in a daemon thread.

aiormq is asyncio-native; Conveyor's producers and workers are threads. So each process
runs one event loop thread holding the connection, and `AmqpClient.run` hands it a
coroutine and waits for the answer: a publish, a batch of acks, a reserve's change of
prefetch. Deliveries go the other way through `on_delivery`, called on the loop.

A lost connection is reconnected on the next call, with a growing pause between tries;
every connection has a new `generation`, so a delivery of an older one (whose tag means
nothing to the new connection) is told apart. Never reused across fork(): a forked
process opens its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

import aiormq
import aiormq.exceptions
from pamqp import commands as spec

from conveyor.backends.amqp.url import AmqpTarget
from conveyor.config import mask_url
from conveyor.errors import BrokerUnavailable

T = TypeVar("T")
logger = logging.getLogger("conveyor.amqp")

# What "RabbitMQ can't be reached right now" looks like from aiormq and asyncio.
LOST = (aiormq.exceptions.AMQPConnectionError, aiormq.exceptions.ChannelInvalidStateError,
        ConnectionError, OSError, asyncio.TimeoutError)
MAX_PAUSE = 5.0


class Session:
    """The live connection and its channels, used only on the loop thread."""

    def __init__(self, connection: aiormq.abc.AbstractConnection, generation: int) -> None:
        self.connection = connection
        self.generation = generation
        self.channels: dict[str, aiormq.abc.AbstractChannel] = {}

    async def channel(self, name: str, *, confirms: bool = False) -> aiormq.abc.AbstractChannel:
        """The channel called `name` (publish, consume, admin...), reopened if it closed
        (RabbitMQ closes a channel on an error, e.g. a declare that doesn't match)."""
        channel = self.channels.get(name)
        if channel is None or channel.is_closed:
            channel = await self.connection.channel(publisher_confirms=confirms)
            self.channels[name] = channel
        return channel

    @property
    def alive(self) -> bool:
        return not self.connection.is_closed


class AmqpClient:
    def __init__(self, target: AmqpTarget,
                 on_connect: Callable[[Session], Awaitable[None]] | None = None) -> None:
        self.target = target
        self.on_connect = on_connect  # re-subscribes consumers after a reconnect
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: Session | None = None
        self._generation = 0
        self._pause = 0.0
        self._next_try = 0.0

    # -- the loop thread -------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if os.getpid() != self._pid:  # forked: the parent's loop thread isn't here
            self._pid, self._loop, self._session = os.getpid(), None, None
            self._lock = threading.Lock()
        if self._loop is None:
            with self._lock:
                if self._loop is None:
                    loop = new_loop()
                    thread = threading.Thread(target=loop.run_forever, daemon=True,
                                              name="conveyor-amqp")
                    thread.start()
                    self._loop, self._thread = loop, thread
        return self._loop

    def run(self, action: Callable[[Session], Awaitable[T]], timeout: float = 30.0) -> T:
        """Run `action(session)` on the loop and return its result; BrokerUnavailable if
        RabbitMQ can't be reached (the next call tries to connect again)."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(self._call(action), self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise BrokerUnavailable(f"RabbitMQ at {mask_url(self.target.url)} didn't answer "
                                    f"within {timeout:.0f} s") from None

    def submit(self, action: Callable[[Session], Awaitable[Any]]) -> None:
        """Run `action` on the loop without waiting (acks: RabbitMQ confirms nothing)."""
        asyncio.run_coroutine_threadsafe(self._call(action), self.loop)

    async def _call(self, action: Callable[[Session], Awaitable[T]]) -> T:
        session = await self.session()
        try:
            return await action(session)
        except LOST as exc:
            await self._lose(session, exc)
            raise BrokerUnavailable(f"RabbitMQ at {mask_url(self.target.url)} is "
                                    f"unreachable: {exc!r}") from exc

    # -- connecting ------------------------------------------------------------------

    async def session(self) -> Session:
        """The live session, connecting first if there is none (at most one try per
        pause, the pause doubling up to 5 s while RabbitMQ stays away)."""
        if self._session is not None and self._session.alive:
            return self._session
        wait = self._next_try - time.monotonic()
        if wait > 0:
            raise BrokerUnavailable(f"RabbitMQ at {mask_url(self.target.url)} is unreachable; "
                                    f"next try in {wait:.1f} s")
        try:
            connection = await aiormq.connect(self._connection_url(),
                                              context=self._ssl_context())
        except LOST as exc:
            self._pause = min(MAX_PAUSE, self._pause * 2 or 0.1)
            self._next_try = time.monotonic() + self._pause
            raise BrokerUnavailable(f"RabbitMQ at {mask_url(self.target.url)} is "
                                    f"unreachable: {exc!r}") from exc
        self._pause = 0.0
        self._generation += 1
        session = Session(connection, self._generation)
        self._session = session
        if self.on_connect is not None:
            await self.on_connect(session)
        return session

    async def _lose(self, session: Session, exc: BaseException) -> None:
        if self._session is session:
            self._session = None
        logger.debug("RabbitMQ connection %d lost: %r", session.generation, exc)
        try:
            await session.connection.close()
        except Exception:  # noqa: BLE001 - it is gone either way
            pass

    def _connection_url(self) -> str:
        t = self.target
        scheme = "amqps" if t.tls else "amqp"
        from urllib.parse import quote

        return (f"{scheme}://{quote(t.username, safe='')}:{quote(t.password, safe='')}@"
                f"{t.host}:{t.port}/{quote(t.vhost, safe='')}?heartbeat={t.heartbeat}")

    def _ssl_context(self) -> ssl.SSLContext | None:
        t = self.target
        if not t.tls:
            return None
        context = ssl.create_default_context(cafile=t.ca_certs)
        if t.certfile:
            context.load_cert_chain(t.certfile, t.keyfile)
        if not t.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def close(self) -> None:
        """Close the connection and stop the loop thread. Safe to call twice."""
        if os.getpid() != self._pid or self._loop is None:
            return
        loop, thread, session = self._loop, self._thread, self._session
        self._loop, self._thread, self._session = None, None, None
        done = asyncio.run_coroutine_threadsafe(_shut_down(session), loop)
        try:
            done.result(5)
        except Exception:  # noqa: BLE001 - closing: whatever it says
            pass
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(5)
        if not loop.is_running():
            loop.close()


async def _shut_down(session: Session | None) -> None:
    """Close the connection, then end every task still on the loop (a lease sweeper)."""
    if session is not None:
        try:
            await session.connection.close()
        except Exception:  # noqa: BLE001 - it is going either way
            pass
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


def properties(**fields: Any) -> spec.Basic.Properties:
    """Basic properties of a persistent message."""
    return spec.Basic.Properties(delivery_mode=2, **fields)


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (it is with `conveyor[amqp]`, except on
    Windows): aiormq reads and writes every frame through the loop, and uvloop's is about
    a quarter cheaper per message than asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def confirmed(replies: Sequence[Any]) -> None:
    """Raise BrokerUnavailable unless RabbitMQ acknowledged every publish."""
    for reply in replies:
        if not isinstance(reply, spec.Basic.Ack):
            raise BrokerUnavailable(f"RabbitMQ didn't take a message ({reply!r}): it is "
                                    "retried")
