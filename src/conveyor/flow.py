"""Turning workflow steps (`Call` and `Chord` nodes) into the messages that run them.

Shared by the producer (`chain(...).delay()` publishes the first step) and the worker
(which publishes the next step when one finishes), so both build messages one way.
Everything here is pure: no I/O, no clock but the `now` it is given.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import msgspec

from conveyor.host import Registered
from conveyor.message import Call, Chord, ChordRef, Message
from conveyor.records import ErrorInfo, ResultRecord, State

Tasks = Mapping[str, Registered]

Node = Call | Chord


class _NoValue:
    """Marks "no previous value": the first step of a workflow gets none."""


NO_VALUE: Any = _NoValue()

COLLECT_TASK = "conveyor.collect"


def collect(values: list[Any]) -> list[Any]:
    """The callback of a group that ends a chain or is a chord member: its value is the
    list of the group's values. Registered on every App as `conveyor.collect`."""
    return values


def member_id(chord_id: str, index: int) -> str:
    """The task id whose value is a chord member's value (its last call's id)."""
    return f"{chord_id}-{index}"


def chord_key(chord_id: str) -> str:
    return f"chord:{chord_id}"


def fired_key(chord_id: str) -> str:
    return f"chord:{chord_id}:fired"


def tail_id(node: Node) -> str:
    """The id whose result is the value of the whole node (what its caller waits on)."""
    while True:
        if isinstance(node, Chord):
            node = node.callback
        elif node.then:
            node = node.then[-1]
        else:
            return node.id


def call_ids(nodes: Sequence[Node]) -> Iterator[str]:
    """Every task id these nodes would run (members, callbacks, later steps)."""
    for node in nodes:
        if isinstance(node, Chord):
            yield from call_ids(node.members)
            yield from call_ids([node.callback])
        else:
            yield node.id
            yield from call_ids(node.then)


def expand(
    tasks: Tasks,
    node: Node,
    now: float,
    *,
    value: Any = NO_VALUE,
    then: Sequence[Node] = (),
    chord: ChordRef | None = None,
    once: bool = False,
) -> list[Message]:
    """The messages to publish to start `node`, given the previous step's `value`.

    `then` runs after the node (the rest of an enclosing chain); `chord` is the chord the
    node's final value counts towards. A chord's members are published at once, each
    carrying a ChordRef; its callback is published later by the member finishing last.
    """
    if isinstance(node, Chord):
        callback = msgspec.structs.replace(node.callback,
                                           then=[*node.callback.then, *then])
        if not node.members:  # an empty group: the callback gets [] right away
            return expand(tasks, callback, now, value=[], chord=chord, once=once)
        messages: list[Message] = []
        for index, member in enumerate(node.members):
            ref = ChordRef(id=node.id, size=len(node.members), index=index,
                           callback=callback, parent=chord)
            messages += expand(tasks, member, now, value=value, chord=ref, once=once)
        return messages
    task = tasks.get(node.task)
    args = node.args if node.immutable or value is NO_VALUE else [value, *node.args]
    queue = node.queue or (task.options.queue if task else "default")
    priority = node.priority if node.priority is not None else (
        task.options.priority if task else 0)
    return [Message(
        id=node.id, task=node.task, args=list(args), kwargs=node.kwargs, queue=queue,
        priority=priority, eta=now + node.countdown if node.countdown else None,
        created=now, then=[*node.then, *then], chord=chord, link_error=node.link_error,
        once=once,
    )]


def error_calls(tasks: Tasks, handlers: Sequence[Call], failed_id: str, now: float
                ) -> list[Message]:
    """`link_error` handlers of a failed task, each called with the failed task's id."""
    return [m for handler in handlers
            for m in expand(tasks, handler, now, value=failed_id, once=True)]


def abandoned(nodes: Sequence[Node], error: ErrorInfo, now: float,
              task: str = "") -> list[ResultRecord]:
    """FAILURE records for steps that will never run because an earlier one failed, so
    whoever waits on them gets the error instead of waiting forever."""
    return [ResultRecord(id=task_id, state=State.FAILURE, task=task, error=error, updated=now)
            for task_id in call_ids(nodes)]
