"""The worker side of the ``django.tasks`` backend: two builtin Conveyor tasks that run
Django tasks (``conveyor.django.run`` for ``def``, ``conveyor.django.run_async`` for
``async def``, so async tasks run natively on the worker's event loop), and what they
record beside Conveyor's own result for `ConveyorBackend.get_result`.

Stored with the result store's `put` (kept twice as long as results, see `keep_for`):
- ``conveyor.django:<id>``: the call (`DjangoCall`), written at enqueue.
- ``conveyor.django:<id>:<n>``: attempt n (`Attempt`): worker and start time, written
  as it starts; on failure also the exception class path and traceback.
- ``conveyor.django.reset:<alias>``: when `conveyor.contrib.django.testing.reset` last
  cleared that backend; older results count as gone.

Only registered tasks run: the runner imports the call's module path and runs it only
if that is a ``django.tasks`` Task and the backend alias that enqueued it is a
`ConveyorBackend` here; anything else fails with ``InvalidTask``.

Importable on Django 5.2: ``django.tasks`` is imported only when a task runs.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import time
import traceback
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from conveyor.app import App
from conveyor.context import TaskContext
from conveyor.errors import Retry
from conveyor.middleware.retries import backoff_delay

if TYPE_CHECKING:
    from conveyor.contrib.django.backend import ConveyorBackend
    from conveyor.results.base import ResultStore

logger = logging.getLogger("conveyor.django")

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

    options: dict[str, Any] = {"bind": True, "retries": MAX_RETRIES, "retry_on": (Retry,)}
    app.register(run, name=RUN, **options)
    app.register(run_async, name=RUN_ASYNC, **options)


def install(app: App) -> None:
    """From ``ready()``: register the runner on the project's App and on every App a
    `ConveyorBackend` in ``settings.TASKS`` names (``OPTIONS["APP"]``), so their workers
    run Django tasks. Nothing on Django 5.2, which has no ``django.tasks``."""
    if importlib.util.find_spec("django.tasks") is None:
        return
    from django.conf import settings
    from django.utils.module_loading import import_string

    from conveyor.contrib.django.backend import ConveyorBackend, load_app

    register(app)
    for params in getattr(settings, "TASKS", {}).values():
        path = params.get("BACKEND", "")
        try:
            cls = import_string(path)
        except ImportError:
            continue  # Django reports a bad BACKEND itself, naming it
        app_path = (params.get("OPTIONS") or {}).get("APP")
        if isinstance(cls, type) and issubclass(cls, ConveyorBackend) and app_path:
            register(load_app(app_path))


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
        self.backend: ConveyorBackend | None = None
        self.result: Any = None  # the RUNNING TaskResult, once the task is known

    @property
    def store(self) -> ResultStore:
        return self.app.results

    def begin(self) -> None:
        """Record the attempt, check the task may run here, send ``task_started``."""
        from django.tasks.base import TaskResultStatus
        from django.tasks.signals import task_started

        from conveyor.contrib.django.backend import make_result

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
        """The return value as JSON types, or TypeError (as Django's own backends)."""
        from django.utils.json import normalize_json

        return normalize_json(value)

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

        from conveyor.contrib.django.backend import make_result

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


def resolve(call: DjangoCall) -> tuple[Any, ConveyorBackend]:
    """The Task to run and its backend, or InvalidTask: only a ``django.tasks`` Task,
    enqueued through a `ConveyorBackend` of this process's ``TASKS``, runs."""
    from django.tasks import Task, task_backends
    from django.tasks.exceptions import InvalidTask, InvalidTaskBackend
    from django.utils.module_loading import import_string

    from conveyor.contrib.django.backend import ConveyorBackend, to_datetime

    try:
        backend = task_backends[call.backend]
    except InvalidTaskBackend as exc:
        raise InvalidTask(f"settings.TASKS has no backend {call.backend!r} here: {exc}") from None
    if not isinstance(backend, ConveyorBackend):
        raise InvalidTask(f"settings.TASKS[{call.backend!r}] is not a ConveyorBackend here: "
                          "Conveyor workers only run tasks enqueued through one")
    try:
        found = import_string(call.task)
    except ImportError as exc:
        raise InvalidTask(f"can't import the task {call.task!r}: {exc}") from None
    if not isinstance(found, Task) or found.module_path != call.task:
        raise InvalidTask(f"{call.task!r} is not a django.tasks Task: only functions "
                          "decorated with @task, where they are defined, run")
    task = found.using(priority=call.priority, queue_name=call.queue,
                       run_after=to_datetime(call.run_after), backend=call.backend)
    return task, backend


def runner_for(app: App, is_async: bool) -> Any:
    """The registered runner task (registering it if the App was made elsewhere)."""
    register(app)
    return app.tasks[RUN_ASYNC if is_async else RUN]
