"""`Completion`: how one delivery ended, as the worker's consumer acts on it.

The executor makes one per delivery (it ran, or it could not run); the consumer writes
the record, runs the follow-ups and applies the action for a whole batch at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from conveyor.broker import Delivery
from conveyor.message import Message
from conveyor.records import ErrorInfo, ResultRecord, State

Action = Literal["ack", "retry", "dead"]


def once_claim(task_id: str) -> str:
    """The coordination claim that runs a `once` message's id at most once."""
    return f"once:{task_id}"


@dataclass
class Completion:
    """What the consumer must do for a finished delivery."""

    delivery: Delivery
    action: Action
    record: ResultRecord | None = None
    ttl: float = 0.0
    body: bytes | None = None
    at: float | None = None
    reason: str = ""
    acked: bool = False  # acks_late=False: the message is already gone from the broker
    message: Message | None = None  # set when it ran or ended for good: workflows follow on
    value: Any = None  # the encoded return value (msgspec.Raw), for a workflow's next step
    deferred: bool = False  # put back unrun by a middleware's `Defer`: no task was processed

    @property
    def succeeded(self) -> bool:
        return self.action == "ack" and (self.record is None
                                         or self.record.state is State.SUCCESS)

    @property
    def failed_for_good(self) -> bool:
        return self.action == "dead" or (self.record is not None
                                         and self.record.state is State.REVOKED)

    @property
    def error(self) -> ErrorInfo:
        """Why it failed for good (meaningful when `failed_for_good`)."""
        if self.record is not None and self.record.error is not None:
            return self.record.error
        if self.record is not None and self.record.state is State.REVOKED:
            return ErrorInfo("TaskRevoked", str(self.record.result or "revoked"))
        return ErrorInfo("TaskFailed", self.reason or "failed")
