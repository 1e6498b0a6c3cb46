"""What the ``django.tasks`` backend stores beside Conveyor's own result, shared by the
backend (backend.py, which enqueues and reads results) and the runner (_runner.py, which
runs the tasks on workers).

Stored with the coordination store's `put` (kept twice as long as results, see `keep_for`):
- ``conveyor.django:<id>``: the call (`DjangoCall`), written at enqueue.
- ``conveyor.django:<id>:<n>``: attempt n (`Attempt`): worker and start time, written
  as it starts; on failure also the exception class path and traceback.
- ``conveyor.django.reset:<alias>``: when `conveyor.contrib.django.testing.reset` last
  cleared that backend; older results count as gone.

Importable on Django 5.2: ``django.tasks`` is imported only when a result is made.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
from django.conf import settings
from django.utils import timezone

if TYPE_CHECKING:
    from conveyor.app import App

RUN = "conveyor.django.run"
RUN_ASYNC = "conveyor.django.run_async"
RUNNERS = frozenset({RUN, RUN_ASYNC})
MAX_RETRIES = 1000  # the cap for OPTIONS["RETRIES"]; the runner decides each retry


class DjangoCall(msgspec.Struct, frozen=True, kw_only=True):
    """One enqueued Django task: the runner's argument, and what get_result reports."""

    task: str  # the Task's module_path, which workers import
    backend: str  # the TASKS alias that enqueued it
    args: list[Any]
    kwargs: dict[str, Any]
    priority: int  # Django's, -100..100
    queue: str
    run_after: float | None  # Unix seconds
    enqueued_at: float


class Attempt(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    worker: str
    started: float
    error: str | None = None  # the exception class path
    traceback: str | None = None


def call_key(task_id: str) -> str:
    return f"conveyor.django:{task_id}"


def attempt_key(task_id: str, attempt: int) -> str:
    return f"conveyor.django:{task_id}:{attempt}"


def reset_key(alias: str) -> str:
    return f"conveyor.django.reset:{alias}"


def encode(value: msgspec.Struct) -> str:
    return msgspec.json.encode(value).decode()


def decode_attempts(values: Iterable[str | None]) -> list[Attempt | None]:
    return [None if v is None else msgspec.json.decode(v, type=Attempt) for v in values]


def keep_for(app: App, waiting: float = 0.0) -> float:
    """How long the call and attempts are kept: twice as long as results, plus the wait
    for ``run_after``, so a task that sat in its queue or ran for up to ``result_ttl``
    still reports in full until its own result expires."""
    return 2 * app.settings.result_ttl + waiting


def make_result(task: Any, task_id: str, status: Any, call: DjangoCall,
                attempts: Sequence[Attempt], *, finished_at: float | None = None,
                return_value: Any = None, extra_errors: Iterable[Any] = ()) -> Any:
    """A TaskResult from what was stored: the call, and each attempt so far."""
    from django.tasks import TaskResult
    from django.tasks.base import TaskError

    result = TaskResult(
        task=task, id=task_id, status=status, enqueued_at=to_datetime(call.enqueued_at),
        started_at=to_datetime(attempts[0].started) if attempts else None,
        finished_at=to_datetime(finished_at),
        last_attempted_at=to_datetime(attempts[-1].started) if attempts else None,
        args=call.args, kwargs=call.kwargs, backend=call.backend,
        errors=[TaskError(exception_class_path=a.error, traceback=a.traceback or "")
                for a in attempts if a.error] + list(extra_errors),
        worker_ids=[a.worker for a in attempts])
    object.__setattr__(result, "_return_value", return_value)
    return result


def to_datetime(timestamp: float | None) -> datetime | None:
    """Unix seconds as Django's datetimes: aware (UTC) with USE_TZ, else naive local."""
    if timestamp is None:
        return None
    value = datetime.fromtimestamp(timestamp, UTC)
    return value if settings.USE_TZ else timezone.make_naive(value)


def to_timestamp(value: datetime | None) -> float | None:
    """A datetime as Unix seconds; a naive one (USE_TZ = False) is in the current zone."""
    if value is None:
        return None
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value.timestamp()
