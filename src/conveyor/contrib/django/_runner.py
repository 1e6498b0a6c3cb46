"""The worker side of the ``django.tasks`` backend: two builtin Conveyor tasks that run
Django tasks (``conveyor.django.run`` for ``def``, ``conveyor.django.run_async`` for
``async def``, so async tasks run natively on the worker's event loop), and what they
record beside Conveyor's own result for `ConveyorBackend.get_result`.

What they store beside it, and why: calls.py.

Only registered tasks run: the runner imports the call's module path and runs it only
if that is a ``django.tasks`` Task and the backend alias that enqueued it is a
`ConveyorBackend` here; anything else fails with ``InvalidTask``.

Importable on Django 5.2: ``django.tasks`` is imported only when a task runs.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from conveyor.app import App
from conveyor.context import TaskContext
from conveyor.contrib.django.calls import (
    MAX_RETRIES,
    RUN,
    RUN_ASYNC,
    Attempt,
    DjangoCall,
    attempt_key,
    decode_attempts,
    encode,
    keep_for,
    make_result,
)
from conveyor.errors import Retry
from conveyor.middleware.retries import backoff_delay

if TYPE_CHECKING:
    from conveyor.store import Coordination

logger = logging.getLogger("conveyor.django")

def worker_id() -> str:
    """This worker process, as ``TaskResult.worker_ids`` lists it (read per call: forked
    worker processes each have their own pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"[:64]


# -- registration ------------------------------------------------------------------------


def register(app: App) -> None:
    """Register the runner tasks on `app`, once. Retries are asked for only by the
    runner (``retry_on=(Retry,)``), as a backend's ``OPTIONS["RETRIES"]`` says."""
    if RUN in app.tasks:
        return

    def run(context: TaskContext, call: dict[str, Any]) -> Any:
        return run_sync(app, context, call)

    async def run_async(context: TaskContext, call: dict[str, Any]) -> Any:
        return await run_coroutine(app, context, call)

    # ignore_result=False whatever the App's task_defaults say: get_result reads it
    options: dict[str, Any] = {"bind": True, "retries": MAX_RETRIES, "retry_on": (Retry,),
                               "ignore_result": False}
    app.register(run, name=RUN, **options)
    app.register(run_async, name=RUN_ASYNC, **options)


# -- running -----------------------------------------------------------------------------


def run_sync(app: App, context: TaskContext, raw: dict[str, Any]) -> Any:
    run = Run(app, context, raw)
    try:
        run.begin()
        args, kwargs = run.arguments()
        value = run.normalize(run.task.func(*args, **kwargs))
    except BaseException as exc:
        outcome = run.failed(exc)
        if outcome is exc:
            raise
        raise outcome from exc
    return run.succeeded(value)


async def run_coroutine(app: App, context: TaskContext, raw: dict[str, Any]) -> Any:
    """As `run_sync` for ``async def`` tasks. The bookkeeping (store I/O, signals) runs
    through ``sync_to_async``: off the event loop, on the thread Django's ORM expects."""
    from asgiref.sync import sync_to_async

    run = Run(app, context, raw)
    try:
        await sync_to_async(run.begin)()
        args, kwargs = run.arguments()
        value = run.normalize(await run.task.func(*args, **kwargs))
    except BaseException as exc:
        outcome = await sync_to_async(run.failed)(exc)
        if outcome is exc:
            raise
        raise outcome from exc
    return await sync_to_async(run.succeeded)(value)


class Run:
    """One attempt of one Django task on a worker."""

    def __init__(self, app: App, context: TaskContext, raw: dict[str, Any]) -> None:
        self.app = app
        self.id = context.id
        self.number = context.attempt
        self.call = msgspec.convert(raw, DjangoCall)
        self.attempt = Attempt(worker=worker_id(), started=time.time())
        self.previous: list[Attempt] = []
        self.task: Any = None
        self.backend: RunsTasks | None = None
        self.result: Any = None  # the RUNNING TaskResult, once the task is known

    @property
    def store(self) -> Coordination:
        return self.app.coordination

    def begin(self) -> None:
        """Record the attempt, check the task may run here, send ``task_started``."""
        from django.tasks.base import TaskResultStatus
        from django.tasks.signals import task_started

        if self.number > 1:
            keys = [attempt_key(self.id, n) for n in range(1, self.number)]
            self.previous = [a for a in decode_attempts(self.store.fetch(keys)) if a]
        self.store.put(attempt_key(self.id, self.number), encode(self.attempt),
                       keep_for(self.app))
        self.task, self.backend = resolve(self.call)
        self.result = make_result(
            self.task, self.id, TaskResultStatus.RUNNING, self.call,
            [*self.previous, self.attempt])
        task_started.send(type(self.backend), task_result=self.result)

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        from django.tasks import TaskContext as DjangoTaskContext

        args = list(self.call.args)
        if self.task.takes_context:
            args.insert(0, DjangoTaskContext(task_result=self.result))
        return args, dict(self.call.kwargs)

    @staticmethod
    def normalize(value: Any) -> Any:
        """The return value as JSON types, or TypeError (as Django's own backends), and as
        JSON brings it back: a StrEnum member is its string, as Django's database
        backend returns it (Conveyor refuses values JSON would change; Django's contract
        is to change them)."""
        import json

        from django.utils.json import normalize_json

        return json.loads(json.dumps(normalize_json(value)))

    def failed(self, exc: BaseException) -> BaseException:
        """Record the error with this attempt; return what the runner raises: a `Retry`
        while ``OPTIONS["RETRIES"]`` allows one, else the error itself."""
        from django.tasks.base import TaskResultStatus

        kind = type(exc)
        tb = exc.__traceback__
        text = "".join(traceback.format_exception(kind, exc, tb.tb_next if tb else None))
        self.attempt = msgspec.structs.replace(
            self.attempt, error=f"{kind.__module__}.{kind.__qualname__}", traceback=text)
        self.store.put(attempt_key(self.id, self.number), encode(self.attempt),
                       keep_for(self.app))
        backend = self.backend
        if backend is not None and self.number <= backend.retries and isinstance(exc, Exception):
            countdown = backoff_delay(self.number, backend.backoff, backend.backoff_max, True)
            return Retry(countdown, exc=exc)
        self.finished(TaskResultStatus.FAILED, None)
        return exc

    def succeeded(self, value: Any) -> Any:
        from django.tasks.base import TaskResultStatus

        self.finished(TaskResultStatus.SUCCESSFUL, value)
        return value

    def finished(self, status: Any, value: Any) -> None:
        """Send ``task_finished`` (when the task was found): a receiver that raises is
        logged, it can't change how the task ended."""
        from django.tasks.signals import task_finished

        if self.backend is None:
            return
        result = make_result(
            self.task, self.id, status, self.call, [*self.previous, self.attempt],
            finished_at=time.time(), return_value=value)
        for receiver, response in task_finished.send_robust(type(self.backend),
                                                           task_result=result):
            if isinstance(response, Exception):
                logger.error("task_finished receiver %r raised %r", receiver, response,
                             exc_info=response)


class RunsTasks(Protocol):
    """What the runner needs of the `ConveyorBackend` that enqueued a task (asked of the
    backend object, so this module never imports backend.py, which imports it)."""

    retries: int
    backoff: float
    backoff_max: float

    def task_for(self, call: DjangoCall) -> Any:
        """The django.tasks Task `call` names, or InvalidTask."""


def resolve(call: DjangoCall) -> tuple[Any, RunsTasks]:
    """The Task to run and its backend, or InvalidTask: only a ``django.tasks`` Task,
    enqueued through a `ConveyorBackend` of this process's ``TASKS``, runs."""
    from django.tasks import task_backends
    from django.tasks.exceptions import InvalidTask, InvalidTaskBackend

    try:
        backend = task_backends[call.backend]
    except InvalidTaskBackend as exc:
        raise InvalidTask(f"settings.TASKS has no backend {call.backend!r} here: {exc}") from None
    if not callable(getattr(backend, "task_for", None)):
        raise InvalidTask(f"settings.TASKS[{call.backend!r}] is not a ConveyorBackend here: "
                          "Conveyor workers only run tasks enqueued through one")
    return backend.task_for(call), backend


def runner_for(app: App, is_async: bool) -> Any:
    """The registered runner task (registering it if the App was made elsewhere)."""
    register(app)
    return app.tasks[RUN_ASYNC if is_async else RUN]
