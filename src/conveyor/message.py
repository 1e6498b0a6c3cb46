"""The wire format: one versioned msgspec Struct per task, encoded once as JSON.

Brokers never look inside the body: they move `Envelope`s (routing fields plus opaque
bytes), so a message that cannot be decoded or whose signature fails can still be
dead-lettered with its exact bytes, and a signature covers exactly what was sent.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from conveyor import signing
from conveyor.errors import MessageTooLarge, SerializationError
from conveyor.plain import problem

PROTOCOL_VERSION = 1


class Call(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag="call"):
    """A task call a workflow will make later (a chain's next step, a chord's callback, an
    error handler). Its id is fixed when the workflow is built, so the caller's AsyncResult
    points at it from the start. Unless `immutable`, the previous step's value is
    prepended to `args`. `then` is what runs after it, in order (the rest of a chain)."""

    task: str
    id: str
    args: list[Any] = msgspec.field(default_factory=list)
    kwargs: dict[str, Any] = msgspec.field(default_factory=dict)
    immutable: bool = False
    queue: str | None = None
    priority: int | None = None
    countdown: float | None = None
    then: list[Call | Chord] = msgspec.field(default_factory=list)
    link_error: list[Call] = msgspec.field(default_factory=list)


class Chord(msgspec.Struct, frozen=True, kw_only=True, tag="chord"):
    """A group whose members' values, in order, are passed as a list to `callback` once
    every member has finished. Member i's (last) result is stored as `<id>-<i>`."""

    id: str
    members: list[Call | Chord]
    callback: Call


class ChordRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Carried by each chord member (down its chain to its last call): which chord its
    value counts towards, and the chord this chord is itself a member of, if any."""

    id: str
    size: int
    index: int
    callback: Call
    parent: ChordRef | None = None


class Message(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One task invocation. `attempt` counts from 1; times are Unix seconds.

    Workflow fields (empty for a plain `delay()`, so they cost nothing on the wire):
    `then` runs after this task succeeds, `chord` is the chord this task's value counts
    towards, `link_error` runs if it fails for good. `once` asks the worker to run this
    id at most once even if it was published twice (workflow steps and beat ticks are
    published by a worker or beat that may die between publishing and recording it).
    `unique` is the unique-task key to free when the task ends. `options` holds the
    task options this call overrides (`apply_async(retries=5, time_limit=30)`), which
    the middleware owning them read through `Execution.option`.
    """

    v: int = PROTOCOL_VERSION
    id: str
    task: str
    args: list[Any] = msgspec.field(default_factory=list)
    kwargs: dict[str, Any] = msgspec.field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    eta: float | None = None
    expires: float | None = None
    attempt: int = 1
    created: float = 0.0
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    then: list[Call | Chord] = msgspec.field(default_factory=list)
    chord: ChordRef | None = None
    link_error: list[Call] = msgspec.field(default_factory=list)
    once: bool = False
    unique: str | None = None
    options: dict[str, Any] = msgspec.field(default_factory=dict)

    def next_attempt(self, eta: float) -> Message:
        return msgspec.structs.replace(self, attempt=self.attempt + 1, eta=eta)

    def with_headers(self, **headers: str) -> Message:
        """A copy with these headers added (what a middleware's `before_publish` returns
        to send context along: a tenant, a trace id); the worker sees them in
        `TaskContext.headers` and `Execution.message.headers`."""
        return msgspec.structs.replace(self, headers={**self.headers, **headers})


class Envelope(msgspec.Struct, frozen=True):
    """What a broker stores and hands out: routing fields the broker needs, plus the body."""

    id: str
    queue: str
    priority: int
    eta: float | None
    body: bytes


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Message)


class _RandomIds:
    """Task ids: 128 random bits from os.urandom as 32 hex digits (uuid4().hex's form),
    read 4 KiB at a time. One getrandom() system call per 256 ids instead of one each was
    a tenth of a `delay()` on Redis. The pid is checked on every id, so a forked child
    never hands out bytes its parent read (they'd be the same ids)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._buffer = b""
        self._offset = 0

    def __call__(self) -> str:
        with self._lock:
            if self._offset >= len(self._buffer) or self._pid != os.getpid():
                self._pid, self._buffer, self._offset = os.getpid(), os.urandom(4096), 0
            start = self._offset
            self._offset += 16
            return self._buffer[start:start + 16].hex()


new_id = _RandomIds()


def now() -> float:
    return time.time()


def encode(message: Message, limit: int, param_names: Sequence[str] = ()) -> bytes:
    """Encode a message, or raise naming the argument that isn't plain data (see
    `conveyor.plain`) / the size over `limit`."""
    check_arguments(message, param_names)
    try:
        body = _encoder.encode(message)
    except Exception as exc:  # noqa: BLE001 - whatever msgspec raises, the message can't go
        raise SerializationError(f"task {message.task!r}: the message can't be encoded as "
                                 f"JSON ({type(exc).__name__}: {exc})") from exc
    if len(body) > limit:
        raise MessageTooLarge(
            f"task {message.task!r}: the encoded message is {len(body):,} bytes, over "
            f"max_message_size={limit:,}: pass a reference (a path, a URL, a row id) instead "
            "of the data, or raise max_message_size on the App"
        )
    return body


def check_arguments(message: Message, param_names: Sequence[str] = ()) -> None:
    """Raise SerializationError naming the first argument (of the call, or of a workflow
    step it carries) that is not plain data."""
    _check_call(message.task, message.args, message.kwargs, param_names)
    nodes: list[Call | Chord] = [*message.then, *message.link_error]
    if message.chord is not None:
        nodes.append(message.chord.callback)
    while nodes:  # workflows only: a plain delay() has none
        node = nodes.pop()
        if isinstance(node, Chord):
            nodes += [*node.members, node.callback]
            continue
        _check_call(f"{node.task} (a later step)", node.args, node.kwargs, ())
        nodes += [*node.then, *node.link_error]


def _check_call(task: str, args: Sequence[Any], kwargs: Mapping[str, Any],
                param_names: Sequence[str]) -> None:
    if problem(args) is None and problem(kwargs) is None:  # the common case, quickly
        return
    for label, value in _labelled_arguments(args, kwargs, param_names):
        found = problem(value)
        if found is not None:
            raise SerializationError(
                f"task {task!r}: argument {label} can't be sent as JSON: {found}; pass "
                "plain data (str, int, float, bool, None, lists, dicts with str keys) or "
                "an id the task can look up")
    raise SerializationError(f"task {task!r}: its arguments can't be sent as JSON: "
                             f"{problem(args) or problem(kwargs)}")


def decode(body: bytes) -> Message:
    """Decode a body produced by `encode` (raises msgspec.DecodeError / ValidationError)."""
    return _decoder.decode(body)


class UnreadableMessage(Exception):  # noqa: N818 - a state, not an event
    """A body that can't be run: unsigned or forged (`rejected`), or not a message."""

    def __init__(self, reason: str, *, rejected: bool) -> None:
        super().__init__(reason)
        self.rejected = rejected


def seal(message: Message, limit: int, keys: Sequence[str],
         param_names: Sequence[str] = ()) -> bytes:
    """The body to send: `message` encoded (see `encode`), then signed with `keys`."""
    return signing.sign(encode(message, limit, param_names), keys)


def unseal(body: bytes, keys: Sequence[str]) -> Message:
    """The message in a body `seal` made, or UnreadableMessage saying why not."""
    if not isinstance(body, bytes):  # written into the store by something else
        raise UnreadableMessage(f"undecodable message: the body is a {type(body).__name__}, "
                                "not bytes", rejected=False)
    try:
        payload = signing.verify(body, keys)
    except signing.SignatureError as exc:
        raise UnreadableMessage(f"rejected: {exc}", rejected=True) from exc
    try:
        return _decoder.decode(payload)
    except Exception as exc:  # noqa: BLE001 - DecodeError, ValidationError, RecursionError...
        raise UnreadableMessage(f"undecodable message: {type(exc).__name__}: {exc}",
                                rejected=False) from exc


def encode_value(value: Any, what: str) -> bytes:
    """Encode a task's return value or progress data; `what` names it in the error."""
    found = problem(value)
    if found is None:
        try:
            return _encoder.encode(value)
        except Exception as exc:  # noqa: BLE001 - whatever msgspec raises, it can't be stored
            found = f"the value can't be encoded ({type(exc).__name__}: {exc})"
    raise SerializationError(f"{what} can't be stored as JSON: {found}; return plain data "
                             "(str, int, float, bool, None, lists, dicts with str keys)")


def _labelled_arguments(
    args: Sequence[Any], kwargs: Mapping[str, Any], param_names: Sequence[str]
) -> list[tuple[str, Any]]:
    labelled = [
        (repr(param_names[i]) if i < len(param_names) else f"#{i} (positional)", value)
        for i, value in enumerate(args)
    ]
    labelled += [(repr(key), value) for key, value in kwargs.items()]
    return labelled
