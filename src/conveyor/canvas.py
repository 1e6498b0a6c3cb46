"""Workflows: signatures (`task.s()`, `task.si()`), `chain`, `group` and `chord`.

    chain(add.s(1, 2), add.s(3)).delay().get()          # 6
    group(add.s(i, i) for i in range(10)).delay().get() # [0, 2, ..., 18]
    chord(group(add.s(i, i) for i in range(10)), total.s()).delay().get()

Nothing here waits or polls. A workflow is published as its first messages, each
carrying what comes next (`Message.then`, `Message.chord`); the worker that finishes a
step publishes the next one before it acknowledges the step, so a crash re-runs a step
rather than losing the rest. A chord's members count themselves into an atomic,
idempotent counter in the result store; the member that completes the count publishes
the callback, exactly once (see docs/workflows.md for the argument).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar, Union, cast

import msgspec

from conveyor.flow import COLLECT_TASK, Node, expand, member_id, tail_id
from conveyor.host import Host
from conveyor.message import Call, Chord, new_id, now
from conveyor.options import check_priority, check_queue, to_timestamp
from conveyor.result import AsyncResult, GroupResult

R = TypeVar("R")
Element = Union["Signature[Any]", "chain", "group", "chord"]


class Step(Generic[R]):
    """What signatures, chains and chords share: `|` makes a chain, and `delay()` /
    `apply_async()` publish the first messages and return the result of the last step.
    (A group is composed the same way but returns a GroupResult: it has its own.)"""

    app: Host

    def __or__(self, other: Element) -> chain:
        return chain(cast(Element, self), other)  # every Step is a Signature, chain or chord

    def clone(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
              ) -> Step[R]:
        raise NotImplementedError

    def node(self, tail: str | None = None) -> Node:
        raise NotImplementedError

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult[R]:
        """Enqueue, with `args` prepended to the first step's own."""
        return self.apply_async(args, kwargs)

    def apply_async(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
                    *, link_error: Signature[Any] | Sequence[Signature[Any]] | None = None
                    ) -> AsyncResult[R]:
        return _publish(self.app, self.clone(args, kwargs).node(), link_error)


class Signature(Step[R]):
    """A task call to make later: `add.s(2)` (the previous step's value is prepended to
    its arguments) or `add.si(2, 3)` (immutable: called exactly with these)."""

    def __init__(self, app: Host, task: str, args: Sequence[Any] = (),
                 kwargs: Mapping[str, Any] | None = None, *, immutable: bool = False,
                 queue: str | None = None, priority: int | None = None,
                 countdown: float | None = None) -> None:
        self.app = app
        self.task = task
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.immutable = immutable
        self.options: dict[str, Any] = {"queue": queue, "priority": priority,
                                        "countdown": countdown}
        if immutable:
            self.check(receives_value=False)

    def __repr__(self) -> str:
        shown = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.task}{'.si' if self.immutable else '.s'}({', '.join(shown)})"

    def set(self, *, queue: str | None = None, priority: int | None = None,
            countdown: float | None = None) -> Signature[R]:
        """A copy with other options: another queue, a priority 0..9, a countdown."""
        copy = self.clone()
        if queue is not None:
            copy.options["queue"] = check_queue(queue)
        if priority is not None:
            copy.options["priority"] = check_priority(priority)
        if countdown is not None:
            to_timestamp(countdown, "countdown", relative=True)  # validates
            copy.options["countdown"] = float(countdown)
        return copy

    def clone(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
              ) -> Signature[R]:
        """A copy with `args` prepended and `kwargs` merged (an immutable one ignores them)."""
        if self.immutable:
            args, kwargs = (), None
        copy: Signature[R] = Signature(self.app, self.task, (*args, *self.args),
                                       {**self.kwargs, **(kwargs or {})},
                                       immutable=self.immutable)
        copy.options = dict(self.options)
        return copy

    def check(self, receives_value: bool) -> None:
        """Raise TypeError now, not on a worker later, if the arguments can't fit the task."""
        task = self.app.tasks.get(self.task)
        if task is None:
            return
        args = (None, *self.args) if receives_value and not self.immutable else self.args
        task.check_arguments(args, self.kwargs)

    def node(self, tail: str | None = None) -> Node:
        return Call(task=self.task, id=tail or new_id(), args=list(self.args),
                    kwargs=self.kwargs, immutable=self.immutable,
                    **{k: v for k, v in self.options.items() if v is not None})


class chain(Step[Any]):  # noqa: N801 - Celery's name, used like a function
    """Run steps one after another, each step's value prepended to the next one's
    arguments. `get()` on the result gives the last step's value. A group followed by a
    step is a chord; a group at the end gives the list of its members' values."""

    def __init__(self, *steps: Element | Iterable[Element]) -> None:
        flat: list[Element] = []
        for step in _unpack(steps):
            flat.extend(step.steps if isinstance(step, chain) else [step])
        if not flat:
            raise ValueError("chain() needs at least one step")
        self.steps: list[Element] = flat
        self.app: Host = flat[0].app

    def __repr__(self) -> str:
        return " | ".join(repr(s) for s in self.steps)

    def clone(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
              ) -> chain:
        return chain(self.steps[0].clone(args, kwargs), *self.steps[1:])

    def node(self, tail: str | None = None) -> Node:
        steps: list[Element] = []
        for step in self.steps:  # a group followed by a step is a chord
            if steps and isinstance(steps[-1], group) and isinstance(step, Signature | chain):
                steps[-1] = chord(steps[-1], step)
            else:
                steps.append(step)
        for step in steps[1:]:
            _check(step, receives_value=True)
        nodes = [s.node() for s in steps[:-1]] + [steps[-1].node(tail)]
        return _followed_by(nodes[0], nodes[1:])


class group:  # noqa: N801 - Celery's name, used like a function
    """Run steps in parallel. `delay()` gives a GroupResult whose `get()` is the list of
    their values, in the order given."""

    def __init__(self, *members: Element | Iterable[Element]) -> None:
        self.members: list[Element] = list(_unpack(members))
        if not self.members:
            raise ValueError("group() needs at least one member")
        self.app: Host = self.members[0].app

    def __repr__(self) -> str:
        return f"group({', '.join(repr(m) for m in self.members)})"

    def __or__(self, other: Element) -> chain:
        return chain(self, other)

    def __len__(self) -> int:
        return len(self.members)

    def clone(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
              ) -> group:
        return group([m.clone(args, kwargs) for m in self.members])

    def node(self, tail: str | None = None) -> Node:
        """Inside a chain or a chord, a group is a chord that collects its values."""
        return chord(self, Signature(self.app, COLLECT_TASK)).node(tail)

    def delay(self, *args: Any, **kwargs: Any) -> GroupResult:
        return self.apply_async(args, kwargs)

    def apply_async(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
                    *, link_error: Signature[Any] | Sequence[Signature[Any]] | None = None
                    ) -> GroupResult:
        members = self.clone(args, kwargs).members
        nodes = [_with_link_error(m.node(), error_handlers(link_error)) for m in members]
        created = now()
        messages = [m for n in nodes for m in expand(self.app.tasks, n, created)]
        _check_messages(self.app, messages)
        self.app.publish(messages)
        return GroupResult(new_id(), [self.app.AsyncResult(tail_id(n)) for n in nodes])


class chord(Step[Any]):  # noqa: N801 - Celery's name, used like a function
    """A group and a callback: once every member has finished, the callback is called
    with the list of their values (in order). If a member fails for good, the chord
    fails with that member's error and the callback never runs."""

    def __init__(self, header: group | Iterable[Element], body: Signature[Any] | chain) -> None:
        self.header = header if isinstance(header, group) else group(header)
        if not isinstance(body, Signature | chain):
            raise TypeError(f"a chord's callback must be a signature or a chain, got {body!r}")
        self.body = body
        self.app: Host = self.header.app

    def __repr__(self) -> str:
        return f"chord({self.header!r}, {self.body!r})"

    def clone(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
              ) -> chord:
        return chord(self.header.clone(args, kwargs), self.body)

    def node(self, tail: str | None = None) -> Node:
        _check(self.body, receives_value=True)
        callback = self.body.node(tail)
        if not isinstance(callback, Call):
            raise TypeError(f"a chord's callback must start with a task, got {self.body!r}")
        chord_id = new_id()
        members = [m.node(member_id(chord_id, i)) for i, m in enumerate(self.header.members)]
        return Chord(id=chord_id, members=members, callback=callback)


def _unpack(items: tuple[Element | Iterable[Element], ...]) -> Iterator[Element]:
    """Accept `group(a, b)`, `group([a, b])` and `group(x for x in ...)` alike."""
    for item in items:
        if isinstance(item, Signature | chain | group | chord):
            yield item
        elif isinstance(item, Iterable) and not isinstance(item, str | bytes | Mapping):
            for inner in item:
                if not isinstance(inner, Signature | chain | group | chord):
                    raise TypeError(f"expected a signature (task.s(...)), got {inner!r}")
                yield inner
        else:
            raise TypeError(f"expected a signature (task.s(...)) or a workflow, got {item!r}")


def _check(step: Element, receives_value: bool) -> None:
    if isinstance(step, Signature):
        step.check(receives_value)
    elif isinstance(step, chain):
        _check(step.steps[0], receives_value)
    elif isinstance(step, group):
        for member in step.members:
            _check(member, receives_value)
    else:
        _check(step.header, receives_value)


def _followed_by(node: Node, rest: Sequence[Node]) -> Node:
    if not rest:
        return node
    if isinstance(node, Chord):
        return msgspec.structs.replace(node, callback=_followed_by(node.callback, rest))
    return msgspec.structs.replace(node, then=[*node.then, *rest])


def error_handlers(link_error: Signature[Any] | Sequence[Signature[Any]] | None
                   ) -> list[Call]:
    """`link_error=` as the calls to make: each handler gets the failed task's id first."""
    if link_error is None:
        return []
    if isinstance(link_error, Signature):
        handlers: list[Any] = [link_error]
    elif isinstance(link_error, list | tuple):
        handlers = list(link_error)
    else:
        handlers = [link_error]
    calls = []
    for handler in handlers:
        if not isinstance(handler, Signature):
            raise TypeError(f"link_error takes a signature or a list of them: write "
                            f"handler.s(), got {handler!r}")
        handler.check(receives_value=True)
        call = handler.node()
        assert isinstance(call, Call)
        calls.append(call)
    return calls


def _with_link_error(node: Node, handlers: list[Call]) -> Node:
    """Attach handlers to every step that can fail on its own: each call of a chain, and
    a chord's callback (a failed member fails the chord, which calls them once)."""
    if not handlers:
        return node
    if isinstance(node, Chord):
        callback = _with_link_error(node.callback, handlers)
        assert isinstance(callback, Call)
        return msgspec.structs.replace(node, callback=callback)
    return msgspec.structs.replace(
        node, link_error=[*node.link_error, *handlers],
        then=[_with_link_error(n, handlers) for n in node.then])


def _check_messages(app: Host, messages: Sequence[Any]) -> None:
    for message in messages:
        task = app.tasks.get(message.task)
        if task is not None:
            task.check_arguments(message.args, message.kwargs)


def _publish(app: Host, node: Node,
             link_error: Signature[Any] | Sequence[Signature[Any]] | None) -> AsyncResult[Any]:
    node = _with_link_error(node, error_handlers(link_error))
    messages = expand(app.tasks, node, now())
    _check_messages(app, messages)
    app.publish(messages)
    return app.AsyncResult(tail_id(node))
