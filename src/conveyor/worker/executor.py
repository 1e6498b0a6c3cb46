"""Runs one delivery: decode, look up the task, run it inside the middleware, and turn how
it ended into a `Completion` (the result to store and the broker action to take).

The executor does no I/O of its own: the consumer writes results and acks for a whole
batch of completions at once. Bad messages never raise out of here: they become a
dead letter with the reason, and a FAILURE result when the task id can be trusted.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from conveyor.broker import Delivery
from conveyor.context import TaskContext, current_task
from conveyor.errors import (
    ConveyorError,
    NotRegistered,
    Retry,
    SerializationError,
    TimeLimitExceeded,
)
from conveyor.lifecycle import stopping
from conveyor.lifecycle.completion import Completion, once_claim
from conveyor.message import Message, UnreadableMessage, encode_value, seal, unseal
from conveyor.middleware.base import Defer, Execution, Outcome
from conveyor.middleware.time_limits import current_asyncio_task
from conveyor.records import ErrorInfo, Progress, ResultRecord, State
from conveyor.task import Task
from conveyor.worker.deadlines import Board, Deadlines
from conveyor.worker.stopper import Stopper

if TYPE_CHECKING:
    from conveyor.app import App

logger = logging.getLogger("conveyor.worker")

ONCE_TTL_MIN = 86400.0  # a duplicate comes a lease or a beat handover after the original
RecordSink = Callable[[ResultRecord, float], None]


@dataclass
class Prepared:
    delivery: Delivery
    message: Message
    task: Task[Any, Any]


def _stored(progress: Progress | None) -> dict[str, Any]:
    """A progress report as a record's fields (none when there was no report)."""
    if progress is None:
        return {}
    return {"progress": (progress.current, progress.total, progress.message),
            "progress_meta": progress.meta}


def error_info(exc: BaseException, tb: str | None = None) -> ErrorInfo:
    if isinstance(exc, Retry) and exc.exc is not None:
        exc = exc.exc
    try:
        said = str(exc)
    except Exception:  # noqa: BLE001 - an exception whose __str__ raises
        said = f"<{type(exc).__name__} whose str() failed>"
    return ErrorInfo(type(exc).__name__, text(said), text(tb) if tb else tb)


def text(value: str) -> str:
    """`value` as UTF-8 can carry it: lone surrogates (a file name decoded with
    surrogateescape, say) become backslash escapes instead of failing the store."""
    return value if value.isascii() else value.encode("utf-8", "backslashreplace").decode()


def utc(timestamp: float) -> str:
    """A Unix time as UTC text, or the number itself when it is no date at all."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))
    except (OverflowError, OSError, ValueError):
        return f"{timestamp!r} (Unix time)"


class Executor:
    def __init__(self, app: App, sink: RecordSink, early_ack: Callable[[Delivery], None],
                 board: Board | None = None) -> None:
        self.app = app
        self.deadlines: Deadlines[tuple[Prepared, Execution]] = Deadlines(board)
        self.stopper: Stopper[Prepared] = Stopper(self.deadlines)
        self.sink = sink
        self.early_ack = early_ack
        self.keys = app.settings.signing_keys
        self.default_ttl = app.settings.result_ttl

    # -- before running --------------------------------------------------------------

    def prepare(self, delivery: Delivery) -> Prepared | Completion:
        """Check a delivery can run; if it can't, say what to do with it instead. Never
        raises: whatever a message holds, the worker goes on with the next one."""
        try:
            prepared = self._prepare(delivery)
            return self._admit(prepared) if isinstance(prepared, Prepared) else prepared
        except Exception as exc:  # noqa: BLE001 - a message must never stop the worker
            return self._fail_unrun(delivery, delivery.id, "?", 1, type(exc).__name__,
                                    f"the message can't be run: {text(str(exc))}")

    def _prepare(self, delivery: Delivery) -> Prepared | Completion:
        try:
            message = unseal(delivery.body, self.keys)
        except UnreadableMessage as exc:
            if exc.rejected:  # its id can't be trusted: no result is written for it
                return Completion(delivery, "dead", reason=str(exc))
            return self._fail_unrun(delivery, delivery.id, "?", 1, "DecodeError", str(exc))
        task = self.app.tasks.get(message.task)
        if task is None:
            error = NotRegistered(message.task)
            return self._fail_unrun(delivery, message.id, message.task, message.attempt,
                                    "NotRegistered", str(error), message)
        if message.expires is not None and message.expires <= time.time():
            reason = f"expired at {utc(message.expires)} before it could run"
            record = ResultRecord(id=message.id, state=State.REVOKED, task=message.task,
                                  result=reason, attempt=message.attempt, updated=time.time())
            self.app.middleware.notify("on_revoked", message, reason)
            return Completion(delivery, "ack", record, self._ttl(task), message=message)
        prepared = Prepared(delivery, message, task)
        if delivery.redelivered:
            return self._after_death(prepared)
        return prepared

    def _after_death(self, prepared: Prepared) -> Prepared | Completion:
        """A redelivered message (whoever held it died): it may have been asked to stop,
        or its attempt killed past its hard time limit (lifecycle/stopping.py)."""
        message = prepared.message
        try:
            fate = stopping.after_death(self.app.coordination, message.id, message.attempt)
        except ConveyorError as exc:  # can't tell: run it again, at least once
            logger.warning("task %s: can't read whether it was stopped (%s): running it",
                           message.id, exc)
            return prepared
        if fate == "terminate":
            return self.revoked(prepared)
        if fate == "overdue":
            context = TaskContext(message.id, message.task, message.attempt, 1,
                                  message.queue, message.headers)
            execution = Execution(message, prepared.task, context, time.time())
            error = TimeLimitExceeded("hard time limit exceeded: the task held its worker "
                                      "process (in C code, say) and was stopped by killing it")
            ended = self.finish(prepared, execution, Outcome(error=error))
            return dataclasses.replace(ended, acked=False)  # this copy was never acked
        return prepared

    def revoked(self, prepared: Prepared, progress: dict[str, Any] | None = None,
                acked: bool = False) -> Completion:
        """The task was asked to stop (`revoke(terminate=True)`): it ends REVOKED, for good."""
        message = prepared.message
        self.stopper.finished(message.id)
        record = ResultRecord(id=message.id, state=State.REVOKED, task=message.task,
                              result=stopping.TERMINATED, attempt=message.attempt,
                              updated=time.time(), **(progress or {}))
        self.app.middleware.notify("on_revoked", message, stopping.TERMINATED)
        return Completion(prepared.delivery, "ack", record, self._ttl(prepared.task),
                          acked=acked, message=message)

    def _admit(self, prepared: Prepared) -> Prepared | Completion:
        """Run the `before_start` hooks. A `Defer` puts the delivery back in its queue,
        due then, with the same attempt and the headers it adds (rate limits)."""
        try:
            self.app.middleware.before_start(prepared.task, prepared.message)
        except Defer as defer:
            message = prepared.message
            later = msgspec.structs.replace(message, eta=defer.at,
                                            headers={**message.headers, **defer.headers})
            body = seal(later, self.app.settings.max_message_size, self.keys)
            return Completion(prepared.delivery, "retry", body=body, at=defer.at,
                              deferred=True)
        return prepared

    def first_run(self, prepared: Prepared) -> bool:
        """For a `once` message (a workflow step or beat tick, which a dying publisher may
        have published twice): claim its id for this broker entry (`Delivery.entry`, the
        same in any process). Another entry holding it means this copy is a duplicate. A
        redelivery of the same entry (its worker died) or a retry of it holds the claim
        already, so it runs again, as any task would."""
        message, delivery = prepared.message, prepared.delivery
        holder = self.app.coordination.claim(once_claim(message.id), delivery.entry,
                                             max(self._ttl(prepared.task), ONCE_TTL_MIN))
        return holder == delivery.entry

    def duplicate(self, prepared: Prepared) -> Completion:
        return Completion(prepared.delivery, "ack",
                          reason=f"duplicate of {prepared.message.id}: already run or running")

    def _signature_mismatch(self, prepared: Prepared) -> Completion | None:
        """After a TypeError: if the message's arguments don't fit the task, that (not the
        task) failed, for good. Checked only then, so the happy path pays nothing."""
        message = prepared.message
        try:
            prepared.task.check_arguments(message.args, message.kwargs)
        except TypeError as exc:
            self.deadlines.forget(prepared)
            return self._fail_unrun(prepared.delivery, message.id, message.task,
                                    message.attempt, "TypeError", str(exc), message)
        return None

    def _fail_unrun(self, delivery: Delivery, task_id: str, name: str, attempt: int,
                    kind: str, reason: str, message: Message | None = None) -> Completion:
        record = ResultRecord(id=task_id, state=State.FAILURE, task=name, attempt=attempt,
                              error=ErrorInfo(kind, reason), updated=time.time())
        return Completion(delivery, "dead", record, self.default_ttl, reason=f"{kind}: {reason}",
                          message=message)

    def _ttl(self, task: Task[Any, Any]) -> float:
        return task.options.result_ttl or self.default_ttl

    # -- running ---------------------------------------------------------------------

    def start(self, prepared: Prepared) -> tuple[Execution, list[Any]]:
        """Build the execution and the call's arguments; report STARTED."""
        message, task = prepared.message, prepared.task
        options = task.options
        ttl = self._ttl(task)
        started = time.time()

        def report(progress: Progress | None) -> None:
            if options.ignore_result:
                return
            self.sink(ResultRecord(id=message.id, state=State.STARTED, task=message.task,
                                   attempt=message.attempt, updated=time.time(),
                                   **_stored(progress)), ttl)

        context = TaskContext(message.id, message.task, message.attempt, 1,
                              message.queue, message.headers, sink=report)
        report(None)
        if not options.acks_late:
            self.early_ack(prepared.delivery)
        args: list[Any] = [context, *message.args] if options.bind else list(message.args)
        return Execution(message, task, context, started), args

    def run_sync(self, prepared: Prepared) -> Completion:
        if prepared.message.id in self.stopper.asked:
            return self.revoked(prepared)
        if prepared.message.once and not self.first_run(prepared):
            return self.duplicate(prepared)
        execution, args = self.start(prepared)
        token = current_task.set(execution.context)
        outcome = Outcome()
        try:
            self.stopper.enter(prepared, execution)
            try:
                self.app.middleware.before_execute(execution)
                self._watch(prepared, execution)
                with self.app.middleware.wrapped(execution):
                    outcome.value = execution.task.fn(*args, **execution.message.kwargs)
            finally:  # inside the outer try: a TaskTerminated landing here is caught
                self.stopper.leave(prepared)
        except BaseException as exc:  # noqa: BLE001 - a task's failure is data here
            if isinstance(exc, TypeError) and (mismatch := self._signature_mismatch(prepared)):
                return mismatch
            outcome.error, outcome.traceback = exc, traceback.format_exc()
        finally:
            current_task.reset(token)
        return self.finish(prepared, execution, outcome)

    async def run_async(self, prepared: Prepared) -> Completion:
        if prepared.message.once:
            import asyncio

            if not await asyncio.to_thread(self.first_run, prepared):
                return self.duplicate(prepared)
        if prepared.message.id in self.stopper.asked:
            return self.revoked(prepared)
        execution, args = self.start(prepared)
        token = current_task.set(execution.context)
        outcome = Outcome()
        try:
            self.stopper.enter(prepared, execution, current_asyncio_task())
            try:
                self.app.middleware.before_execute(execution)
                self._watch(prepared, execution)
                with self.app.middleware.wrapped(execution):
                    outcome.value = await execution.task.fn(*args, **execution.message.kwargs)
            finally:
                self.stopper.leave(prepared)
        except BaseException as exc:  # noqa: BLE001 - includes CancelledError from limits
            if isinstance(exc, TypeError) and (mismatch := self._signature_mismatch(prepared)):
                return mismatch
            outcome.error, outcome.traceback = exc, traceback.format_exc()
        finally:
            current_task.reset(token)
        return self.finish(prepared, execution, outcome)

    def _watch(self, prepared: Prepared, execution: Execution) -> None:
        message = prepared.message
        self.deadlines.watch(prepared, execution.deadline, (prepared, execution), message.id,
                             message.attempt)

    # -- after running ---------------------------------------------------------------

    def finish(self, prepared: Prepared, execution: Execution, outcome: Outcome) -> Completion:
        """How the attempt ended, as a Completion. Never raises: if its end can't be
        recorded (a middleware hook or the result broke), it fails with that error,
        retried as the task's options say, so it never runs again and again unseen."""
        self.deadlines.forget(prepared)
        try:
            return self._finish(prepared, execution, outcome)
        except TimeLimitExceeded:
            # A soft limit fired just as the task ended: the task itself is done.
            return self._finish(prepared, execution, outcome)
        except Exception as exc:  # noqa: BLE001 - what broke is this attempt's error now
            failed = Outcome(error=exc, traceback=traceback.format_exc())
        try:
            return self._finish(prepared, execution, failed)
        except Exception as exc:  # noqa: BLE001 - not even the failure: end it for good
            message = prepared.message
            return self._fail_unrun(prepared.delivery, message.id, message.task,
                                    message.attempt, type(exc).__name__,
                                    f"how the task ended can't be recorded: {text(str(exc))}",
                                    message)

    def _finish(self, prepared: Prepared, execution: Execution, outcome: Outcome) -> Completion:
        message, task, delivery = prepared.message, prepared.task, prepared.delivery
        if outcome.error is None:
            outcome = self._encode_value(task, outcome, message)
        self.app.middleware.notify("after_execute", execution, outcome)
        ttl = self._ttl(task)
        early = not task.options.acks_late
        now = time.time()
        progress = _stored(execution.context.last_progress)  # the last one stays visible
        if outcome.error is not None and message.id in self.stopper.asked:
            return self.revoked(prepared, progress, acked=early)  # never retried
        if outcome.error is None:
            keep = not task.options.ignore_result or message.chord is not None
            record = None if not keep else ResultRecord(
                id=message.id, state=State.SUCCESS, task=message.task, result=outcome.value,
                attempt=message.attempt, updated=now, **progress)
            return Completion(delivery, "ack", record, ttl, acked=early, message=message,
                              value=outcome.value)
        info = error_info(outcome.error, outcome.traceback)
        if outcome.retry_at is not None:
            self.app.middleware.notify("on_retry", execution, outcome)
            record = ResultRecord(id=message.id, state=State.RETRY, task=message.task,
                                  error=info, attempt=message.attempt, updated=now,
                                  retry_at=outcome.retry_at, **progress)
            body = seal(message.next_attempt(outcome.retry_at),
                        self.app.settings.max_message_size, self.keys)
            return Completion(delivery, "retry", record, ttl, body=body, at=outcome.retry_at,
                              acked=early, message=message)
        self.app.middleware.notify("on_failure", execution, outcome)
        record = ResultRecord(id=message.id, state=State.FAILURE, task=message.task,
                              error=info, attempt=message.attempt, updated=now, **progress)
        reason = f"{info.type}: {info.message} (attempt {message.attempt})"
        return Completion(delivery, "dead", record, ttl, reason=reason, acked=early,
                          message=message)

    def _encode_value(self, task: Task[Any, Any], outcome: Outcome, message: Message
                      ) -> Outcome:
        if task.options.ignore_result and not (message.then or message.chord):
            return outcome
        try:
            outcome.value = msgspec.Raw(encode_value(outcome.value,
                                                     f"the return value of {task.name!r}"))
        except SerializationError as exc:
            outcome.error, outcome.traceback, outcome.value = exc, None, None
        return outcome
