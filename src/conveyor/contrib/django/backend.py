"""`ConveyorBackend`: Django's own tasks framework (``django.tasks``, Django 6) on Conveyor
workers. See docs/django-tasks.md.

    TASKS = {
        "default": {
            "BACKEND": "conveyor.contrib.django.backend.ConveyorBackend",
            "QUEUES": ["default", "emails"],          # Django's queue-name validation
            "OPTIONS": {"RETRIES": 0, "BACKOFF": 1.0},  # and "APP": "module:attr"
        }
    }

`enqueue()` stores the call beside the result (`get_result` needs its arguments before
any worker saw it) and publishes a message for the builtin runner task (see _runner.py),
on the task's queue, at its priority mapped onto 0..9, due at its ``run_after``.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from inspect import iscoroutinefunction
from typing import Any

import msgspec

try:
    from django.tasks import Task, TaskResult, TaskResultStatus
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TASK_MAX_PRIORITY, TASK_MIN_PRIORITY, TaskError
    from django.tasks.exceptions import InvalidTask, InvalidTaskBackend, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued
except ImportError as exc:  # Django 5.2: no django.tasks
    import django

    raise ImportError(
        "conveyor.contrib.django.backend is a backend for django.tasks, which is new in "
        f"Django 6.0 (this is Django {django.get_version()}): upgrade Django, or use "
        "Conveyor's own @app.task, which works on Django 5.2"
    ) from exc
from django.utils.module_loading import import_string

from conveyor import errors
from conveyor.app import App
from conveyor.contrib.django._runner import register, runner_for
from conveyor.contrib.django.calls import (
    MAX_RETRIES,
    Attempt,
    DjangoCall,
    attempt_key,
    call_key,
    decode_attempts,
    encode,
    keep_for,
    make_result,
    reset_key,
    to_datetime,
    to_timestamp,
)
from conveyor.message import new_id
from conveyor.options import check_queue
from conveyor.records import ResultRecord, State

__all__ = ["ConveyorBackend", "conveyor_priority"]

OPTION_KEYS = ("APP", "RETRIES", "BACKOFF", "BACKOFF_MAX")
READY, RUNNING = TaskResultStatus.READY, TaskResultStatus.RUNNING
FAILED, SUCCESSFUL = TaskResultStatus.FAILED, TaskResultStatus.SUCCESSFUL
STATUS = {  # Conveyor's state -> Django's status
    State.PENDING: READY,
    State.SCHEDULED: READY,
    State.RETRY: READY,  # an attempt failed, the next one is due: "ready to be executed again"
    State.STARTED: RUNNING,
    State.SUCCESS: SUCCESSFUL,
    State.FAILURE: FAILED,
    State.REVOKED: FAILED,  # revoked or expired: "unable to start"
}


def conveyor_priority(priority: int) -> int:
    """Django's priority (-100..100, higher first) on Conveyor's 0..9 (9 first): ten
    even bands, monotonic, so a higher Django priority never runs later. 0 is 4."""
    low: int = TASK_MIN_PRIORITY
    span: int = TASK_MAX_PRIORITY - low + 1
    return (int(priority) - low) * 10 // span


class ConveyorBackend(BaseTaskBackend):
    """Runs ``@django.tasks.task`` functions on Conveyor workers, with results in the
    App's result store. Every ``supports_*`` flag is true. Raises InvalidTaskBackend for
    bad ``OPTIONS`` when the backend is first used."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: Mapping[str, Any]) -> None:
        super().__init__(alias, params)
        self.app_path, self.retries, self.backoff, self.backoff_max = parse_options(
            alias, self.options)
        self._app: App | None = None

    @property
    def app(self) -> App:
        """The App tasks are published to: ``OPTIONS["APP"]``, else the project's."""
        if self._app is None:
            from conveyor.contrib.django.app import project_app

            app = load_app(self.app_path) if self.app_path else project_app()
            register(app)
            self._app = app
        return self._app

    def task_for(self, call: DjangoCall) -> Any:
        """The Task a stored call names, as it was enqueued, or InvalidTask: only a
        ``django.tasks`` Task, imported from where it was defined, runs (_runner.py asks)."""
        try:
            found = import_string(call.task)
        except ImportError as exc:
            raise InvalidTask(f"can't import the task {call.task!r}: {exc}") from None
        if not isinstance(found, Task) or found.module_path != call.task:
            raise InvalidTask(f"{call.task!r} is not a django.tasks Task: only functions "
                              "decorated with @task, where they are defined, run")
        return found.using(priority=call.priority, queue_name=call.queue,
                           run_after=to_datetime(call.run_after), backend=call.backend)

    def validate_task(self, task: Any) -> None:
        """Django's rules, and a queue name Conveyor can use."""
        super().validate_task(task)
        try:
            check_queue(task.queue_name)
        except ValueError as exc:
            raise InvalidTask(str(exc)) from None

    def enqueue(self, task: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Raises InvalidTask, TypeError for arguments JSON can't carry (as Django's own
        backends), and Conveyor's errors (BrokerUnavailable, MessageTooLarge)."""
        self.validate_task(task)
        check_importable(task)
        now = time.time()
        result = TaskResult(
            task=task, id=new_id(), status=READY, enqueued_at=to_datetime(now),
            started_at=None, finished_at=None, last_attempted_at=None, args=args,
            kwargs=kwargs, backend=self.alias, errors=[], worker_ids=[])
        run_after = to_timestamp(task.run_after)
        call = DjangoCall(task=task.module_path, backend=self.alias, args=result.args,
                          kwargs=result.kwargs, priority=task.priority, queue=task.queue_name,
                          run_after=run_after, enqueued_at=now)
        app = self.app
        waiting = max(0.0, run_after - now) if run_after is not None else 0.0
        app.coordination.put(call_key(result.id), encode(call), keep_for(app, waiting))
        runner_for(app, iscoroutinefunction(task.func)).apply_async(
            [msgspec.to_builtins(call)], priority=conveyor_priority(task.priority),
            queue=task.queue_name, eta=None if run_after is None else
            datetime.fromtimestamp(run_after, UTC), task_id=result.id)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> Any:
        """The task's result now. Raises TaskResultDoesNotExist for an id this backend
        didn't enqueue (or whose result expired, or was cleared by testing.reset)."""
        record = self.app.results.get(result_id) if isinstance(result_id, str) else None
        seen = record.attempt if record is not None and record.state in _RAN else 0
        keys = [call_key(str(result_id)), reset_key(self.alias),
                *(attempt_key(str(result_id), n) for n in range(1, seen + 1))]
        call_value, reset_value, *attempt_values = self.app.coordination.fetch(keys)
        if call_value is None:
            raise TaskResultDoesNotExist(result_id)
        call = msgspec.json.decode(call_value, type=DjangoCall)
        if call.backend != self.alias or (
                reset_value is not None and call.enqueued_at < float(reset_value)):
            raise TaskResultDoesNotExist(result_id)
        attempts = decode_attempts(attempt_values)
        task = self.task_for(call)
        state = record.state if record is not None else State.PENDING
        status = STATUS[state]
        final = status in (FAILED, SUCCESSFUL)
        return make_result(
            task, str(result_id), status, call, [a for a in attempts if a],
            finished_at=record.updated if final and record else None,
            return_value=record.result if record and state is State.SUCCESS else None,
            extra_errors=_unrecorded_error(record, attempts))

    def check(self, **kwargs: Any) -> list[Any]:
        from django.apps import apps
        from django.core import checks

        if self.app_path is None and not apps.is_installed("conveyor.contrib.django"):
            return [checks.Error(
                f"TASKS[{self.alias!r}] uses ConveyorBackend, which publishes to the "
                "project's Conveyor App", obj=self,
                hint="add 'conveyor.contrib.django' to INSTALLED_APPS, or name an App in "
                     "OPTIONS['APP'] ('module:attribute')", id="conveyor.E101")]
        return []


_RAN = frozenset({State.STARTED, State.RETRY, State.SUCCESS, State.FAILURE})


def _unrecorded_error(record: ResultRecord | None,
                      attempts: Sequence[Attempt | None]) -> list[Any]:
    """The error of a task that failed where the runner couldn't record it (its message
    named no registered task, it was revoked or expired, ...), from Conveyor's record."""
    if record is None or record.state not in (State.FAILURE, State.RETRY, State.REVOKED):
        return []
    if attempts and attempts[-1] is not None and attempts[-1].error:
        return []
    if record.state is State.REVOKED or record.error is None:
        reason = record.result or "the task was revoked"
        return [TaskError(exception_class_path="conveyor.errors.TaskError",
                          traceback=f"TaskRevoked: {reason}")]
    info = record.error
    return [TaskError(exception_class_path=_error_path(info.type),
                      traceback=info.traceback or f"{info.type}: {info.message}")]


def _error_path(name: str) -> str:
    """Conveyor stores an error's class name only: find the class it most likely is."""
    for module in (errors, builtins):
        found = getattr(module, name, None)
        if isinstance(found, type) and issubclass(found, BaseException):
            return f"{module.__name__}.{name}"
    return "conveyor.errors.TaskError"


def check_importable(task: Any) -> None:
    """Workers find a task by its module path: it must lead back to this very Task."""
    path = task.module_path
    if task.func.__module__ == "__main__":
        raise InvalidTask(f"{path}: workers can't import a task defined in __main__: "
                          "define it in a module")
    try:
        found = import_string(path)
    except ImportError:
        found = None
    if not isinstance(found, Task) or found.func is not task.func:
        raise InvalidTask(f"workers import this task as {path!r}, which is not it: apply "
                          "@task where the function is defined, under the function's name")


def load_app(path: str) -> App:
    """The App ``OPTIONS["APP"]`` names (``"module:attribute"``)."""
    from conveyor.contrib.django.app import import_app

    return import_app(path, "OPTIONS['APP']", App, InvalidTaskBackend, "a Conveyor App")


def parse_options(alias: str, options: Any) -> tuple[str | None, int, float, float]:
    """Check ``OPTIONS``: (APP, RETRIES, BACKOFF, BACKOFF_MAX), or InvalidTaskBackend."""
    where = f"TASKS[{alias!r}]['OPTIONS']"
    if not isinstance(options, Mapping):
        raise InvalidTaskBackend(f"{where} must be a dict, got {options!r}")
    for key in options:
        if key not in OPTION_KEYS:
            hint = errors.did_you_mean(key, OPTION_KEYS)
            raise InvalidTaskBackend(f"{where}: unknown option {key!r}{hint} (known: "
                                     f"{', '.join(OPTION_KEYS)})")
    app_path = options.get("APP")
    if app_path is not None and (not isinstance(app_path, str) or ":" not in app_path):
        raise InvalidTaskBackend(f"{where}['APP'] must be 'module:attribute', got {app_path!r}")
    retries = options.get("RETRIES", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or not (
            0 <= retries <= MAX_RETRIES):
        raise InvalidTaskBackend(f"{where}['RETRIES'] must be an int from 0 to {MAX_RETRIES}, "
                                 f"got {retries!r}")
    seconds = []
    for key, default in (("BACKOFF", 1.0), ("BACKOFF_MAX", 600.0)):
        value = options.get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise InvalidTaskBackend(f"{where}[{key!r}] must be seconds >= 0, got {value!r}")
        seconds.append(float(value))
    return app_path, retries, seconds[0], seconds[1]
