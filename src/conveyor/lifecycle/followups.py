"""What finished tasks set off: a chain's next step, a chord's callback, error handlers,
and the release of unique-task and run-once claims.

On a worker it runs in the consumer's writer thread for a whole batch, after the batch's
results are stored and before its messages are acknowledged; `revoke` runs it for the
tasks it ended. A crash in between re-runs the tasks,
and every step here is safe to repeat:
- a chord member adds its index to the chord's set, which counts it once however often
  it runs; the member that sees the set full claims the chord's "fired" key under its own
  id, so only it (or its own re-run) publishes the callback;
- what it publishes is marked `once`, so a copy published twice runs once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from conveyor.errors import MessageTooLarge, SerializationError
from conveyor.flow import (
    Node,
    abandoned,
    chord_key,
    error_calls,
    expand,
    fired_key,
    member_id,
)
from conveyor.host import Runtime
from conveyor.lifecycle.completion import Completion, once_claim
from conveyor.message import ChordRef, Message
from conveyor.records import ErrorInfo, ResultRecord, State
from conveyor.task import unique_claim

logger = logging.getLogger("conveyor.worker")


class Followups:
    """Collects what one batch of completions sets off, then writes it all."""

    def __init__(self, app: Runtime) -> None:
        self.app = app
        self.store = app.results
        self.coordination = app.coordination
        self.now = time.time()
        self.ttl = app.settings.result_ttl
        self.messages: list[Message] = []
        self.records: list[tuple[ResultRecord, float]] = []
        self.releases: list[tuple[str, str]] = []

    def run(self, completions: Sequence[Completion]) -> None:
        joins: list[tuple[ChordRef, str]] = []
        for c in completions:
            message = c.message
            if message is None:
                continue
            self._claims_to_release(c, message)
            if c.succeeded:
                if message.then:
                    self.messages += expand(self.app.tasks, message.then[0], self.now,
                                            value=c.value,
                                            then=message.then[1:], chord=message.chord,
                                            once=True)
                elif message.chord is not None:
                    joins.append((message.chord, message.id))
            elif c.failed_for_good:
                self._failed(message, c.error)
        if joins:
            counts = self.coordination.join(
                [(chord_key(ref.id), str(ref.index)) for ref, _ in joins], self.ttl)
            for (ref, member), count in zip(joins, counts, strict=True):
                if count >= ref.size:
                    self._fire(ref, member)
        self._write()

    def revoked(self, ended: Sequence[tuple[Message, ErrorInfo]]) -> None:
        """Tasks revoked before they ran: free their unique keys, and end what they
        would have set off as if they had failed with `error`."""
        for message, error in ended:
            if message.unique is not None:
                self.releases.append((unique_claim(message.unique), message.id))
            self._failed(message, error)
        self._write()

    def _claims_to_release(self, c: Completion, message: Message) -> None:
        if message.unique is not None and (c.succeeded or c.failed_for_good):
            self.releases.append((unique_claim(message.unique), message.id))
        # A dead letter may be re-run (`conveyor dead retry`), and a retry of an early-acked
        # task is published anew: either way a new broker entry must be allowed to run.
        if message.once and (c.action == "dead" or (c.action == "retry" and c.acked)):
            self.releases.append((once_claim(message.id), c.delivery.entry))

    def _failed(self, message: Message, error: ErrorInfo) -> None:
        self.messages += error_calls(self.app.tasks, message.link_error, message.id, self.now)
        if message.then:
            later = ErrorInfo(error.type, f"an earlier step of the chain, {message.task} "
                              f"[{message.id}], failed: {error.message}", error.traceback)
            self._abandon(message.then, later)
        if message.chord is not None:
            self._fail_chord(message.chord, message.id, message.task, error)

    def _fail_chord(self, ref: ChordRef, failed_id: str, task: str, error: ErrorInfo) -> None:
        """The first failed member fails the chord: its callback will never run, so
        whoever waits on it gets this member's error, and its error handlers are called."""
        owner = f"failed:{failed_id}"
        if self.coordination.claim(fired_key(ref.id), owner, self.ttl) != owner:
            return  # already fired or failed by another member
        failure = ErrorInfo(error.type, f"chord member {ref.index + 1} of {ref.size}, {task} "
                            f"[{failed_id}], failed: {error.message}", error.traceback)
        logger.warning("chord %s failed: %s", ref.id, failure.message)
        self._abandon([ref.callback], failure, ref.callback.task)
        self.messages += error_calls(self.app.tasks, ref.callback.link_error, failed_id, self.now)
        if ref.parent is not None:
            self._fail_chord(ref.parent, failed_id, task, failure)

    def _abandon(self, nodes: Sequence[Node], error: ErrorInfo, task: str = "") -> None:
        self.records += [(r, self.ttl) for r in abandoned(nodes, error, self.now, task)]

    def _fire(self, ref: ChordRef, member: str) -> None:
        """Every member is in: publish the callback with their values, in order."""
        if self.coordination.claim(fired_key(ref.id), member, self.ttl) != member:
            return  # another member fired it (or one failed), or this one already did
        ids = [member_id(ref.id, i) for i in range(ref.size)]
        values = []
        for task_id, record in zip(ids, self.store.get_many(ids), strict=True):
            if record is None or record.state is not State.SUCCESS:
                missing = ErrorInfo("ChordError", f"the result of member {task_id} is gone "
                                    "(expired before the chord finished?): raise result_ttl")
                self._abandon([ref.callback], missing, ref.callback.task)
                return
            values.append(record.result)
        self.messages += expand(self.app.tasks, ref.callback, self.now, value=values,
                                chord=ref.parent, once=True)

    def _write(self) -> None:
        if self.records:
            self.store.store(self.records)
        if self.messages:
            self._publish(self.messages)
        for key, owner in self.releases:
            self.coordination.release(key, owner)

    def _publish(self, messages: list[Message]) -> None:
        """Publish in one round trip; a step that can't be encoded (a value too large, or
        one JSON can't carry) fails as if it had run and failed, instead of blocking the
        batch forever: what comes after it is abandoned, its chord fails, its error
        handlers are called (which may fail the same way: each round is smaller)."""
        try:
            self.app.publish(messages)
            return
        except (SerializationError, MessageTooLarge):
            pass
        self.messages, self.records = [], []
        for message in messages:
            try:
                self.app.publish([message])
            except (SerializationError, MessageTooLarge) as exc:
                error = ErrorInfo(type(exc).__name__, str(exc))
                self.records.append((ResultRecord(id=message.id, state=State.FAILURE,
                                                  task=message.task, error=error,
                                                  updated=self.now), self.ttl))
                self._failed(message, error)
        self.store.store(self.records)
        if self.messages:
            self._publish(self.messages)


def needed(completions: Sequence[Completion]) -> bool:
    """Whether any completion sets something off (plain tasks don't: they pay nothing)."""
    for c in completions:
        m = c.message
        if m is not None and (m.then or m.chord or m.link_error or m.unique or m.once):
            return True
    return False
