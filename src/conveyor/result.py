"""`AsyncResult`: the producer's handle on a task, read through the result store.

It types against `ResultSource`, the little it needs of an App (a result store, and a
way to revoke), so this module knows nothing of how Apps are wired.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, Generic, Protocol, TypeVar

from conveyor.errors import TaskError
from conveyor.records import ErrorInfo, Progress, ResultRecord, State
from conveyor.store import ResultStore

__all__ = ["AsyncResult", "ErrorInfo", "GroupResult", "Progress", "ResultRecord",
           "ResultSource", "Snapshot", "State"]

R = TypeVar("R")


class ResultSource(Protocol):
    """What an AsyncResult reads through: an App, or the Flask extension's current App."""

    @property
    def results(self) -> ResultStore: ...

    def revoke(self, task_ids: str | Sequence[str], terminate: bool = False) -> list[str]: ...

    def unfinished(self, queue: str | None) -> str:
        """Why a task of `queue` may not have finished, as a clause for a TimeoutError (one
        read of the live workers; "" when it can't tell)."""


class Snapshot:
    """A task's stored state read once: state, progress, result and traceback all from
    the same moment. What a status endpoint wants, instead of one read per property of
    `AsyncResult` (which could see the task finish between two of them)."""

    __slots__ = ("id", "record")

    def __init__(self, task_id: str, record: ResultRecord | None) -> None:
        self.id = task_id
        self.record = record  # None: nothing stored yet (PENDING) or expired

    def __repr__(self) -> str:
        return f"<Snapshot {self.id} {self.state}>"

    @property
    def state(self) -> State:
        return self.record.state if self.record else State.PENDING

    def ready(self) -> bool:
        return self.state.is_final

    def successful(self) -> bool:
        return self.state is State.SUCCESS

    def failed(self) -> bool:
        return self.state is State.FAILURE

    @property
    def result(self) -> Any:
        """The value on SUCCESS, a `TaskError` on FAILURE, the reason on REVOKED, else None."""
        record = self.record
        if record is None:
            return None
        if record.error is not None and record.state in (State.FAILURE, State.RETRY):
            return record.error.to_exception()
        return record.result

    @property
    def traceback(self) -> str | None:
        record = self.record
        return record.error.traceback if record and record.error else None

    @property
    def progress(self) -> Progress | None:
        record = self.record
        if not record or not record.progress:
            return None
        return Progress(*record.progress, meta=record.progress_meta)


class AsyncResult(Generic[R]):
    """A handle on one task: its state, progress and eventually its value or error.

    Cheap to create (no I/O): every property reads the result store when accessed;
    `snapshot()` reads it once for several.
    """

    __slots__ = ("app", "id", "queue")

    def __init__(self, task_id: str, app: ResultSource, queue: str | None = None) -> None:
        self.id = task_id
        self.app = app
        self.queue = queue  # where it was sent, when this handle comes from sending it

    def __repr__(self) -> str:
        return f"<AsyncResult {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AsyncResult) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def snapshot(self) -> Snapshot:
        """Read the store once: ``s = result.snapshot()``, then ``s.state``,
        ``s.progress``, ``s.result`` and ``s.traceback`` agree with each other."""
        return Snapshot(self.id, self.app.results.get(self.id))

    @property
    def state(self) -> State:
        return self.snapshot().state

    def ready(self) -> bool:
        return self.snapshot().ready()

    def successful(self) -> bool:
        return self.snapshot().successful()

    def failed(self) -> bool:
        return self.snapshot().failed()

    @property
    def result(self) -> Any:
        """The value on SUCCESS, a `TaskError` on FAILURE, the reason on REVOKED, else None."""
        return self.snapshot().result

    @property
    def traceback(self) -> str | None:
        return self.snapshot().traceback

    @property
    def progress(self) -> Progress | None:
        return self.snapshot().progress

    def get(self, timeout: float | None = None) -> R:
        """Wait for the task to finish and return its value.

        Raises `TaskError` (remote type, message, traceback) if it failed or was revoked,
        and `TimeoutError` if it isn't finished within `timeout` seconds; that error says
        which store and queue the task went to and which live workers consume what, when
        one read of the live workers can tell.
        """
        record = self.app.results.wait(self.id, timeout)
        if record is None or not record.state.is_final:
            self._timed_out(record, timeout, self.app.unfinished(self.queue))
        return self._outcome(record, timeout)

    async def aget(self, timeout: float | None = None) -> R:
        """`get()` for async code: waits without blocking the event loop."""
        import asyncio  # here, not at the top: most programs never need it (it costs MBs)

        record = await asyncio.to_thread(self.app.results.wait, self.id, timeout)
        if record is None or not record.state.is_final:
            why = await asyncio.to_thread(self.app.unfinished, self.queue)
            self._timed_out(record, timeout, why)
        return self._outcome(record, timeout)

    def _timed_out(self, record: ResultRecord | None, timeout: float | None, why: str
                   ) -> None:
        state = f", {record.state.value} (attempt {record.attempt})" if record else ""
        raise TimeoutError(f"task {self.id} did not finish within {timeout} s{state}{why}")

    def _outcome(self, record: ResultRecord | None, timeout: float | None) -> R:
        if record is None or not record.state.is_final:
            raise TimeoutError(f"task {self.id} did not finish within {timeout} s")
        if record.state is State.SUCCESS:
            return record.result  # type: ignore[no-any-return]
        if record.error is not None:
            raise record.error.to_exception()
        raise TaskError("TaskRevoked", str(record.result or "the task was revoked"))

    def forget(self) -> None:
        """Delete the stored result now instead of waiting for its TTL."""
        self.app.results.forget([self.id])

    def revoke(self, terminate: bool = False) -> bool:
        """Make the task never run if it is still waiting (it ends REVOKED); with
        `terminate`, stop it too if it is running, within seconds. True if it was waiting
        (or, with `terminate`, running). See App.revoke."""
        return bool(self.app.revoke(self.id, terminate))


class GroupResult:
    """The results of a group's members, in the order they were given."""

    def __init__(self, group_id: str, results: list[AsyncResult[Any]]) -> None:
        self.id = group_id
        self.results = results

    def __repr__(self) -> str:
        return f"<GroupResult {self.id} of {len(self.results)}>"

    def __iter__(self) -> Iterator[AsyncResult[Any]]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> AsyncResult[Any]:
        return self.results[index]

    def ready(self) -> bool:
        return all(r.ready() for r in self.results)

    def successful(self) -> bool:
        return all(r.successful() for r in self.results)

    def failed(self) -> bool:
        return any(r.failed() for r in self.results)

    def completed_count(self) -> int:
        return sum(1 for r in self.results if r.successful())

    def get(self, timeout: float | None = None) -> list[Any]:
        """Every member's value, in order. Raises the first failed member's TaskError
        (in member order), or TimeoutError if they aren't all done within `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        values = []
        for result in self.results:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            values.append(result.get(timeout=remaining))
        return values

    async def aget(self, timeout: float | None = None) -> list[Any]:
        import asyncio  # here, not at the top: most programs never need it

        return await asyncio.to_thread(self.get, timeout)
