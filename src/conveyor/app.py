"""`App`: the task registry and the wiring of settings, broker, result store and middleware.

There is no default or "current" app: every task, worker, CLI command and integration is
handed its App explicitly. Connections are opened lazily, on first use, so defining an
App at import time does no I/O.
"""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Concatenate,
    Literal,
    ParamSpec,
    TypeVar,
    overload,
)

import msgspec

from conveyor import brokers, signing
from conveyor import results as result_stores
from conveyor.brokers.base import Broker
from conveyor.config import Settings, mask_url, resolve_settings
from conveyor.context import TaskContext
from conveyor.errors import ConfigurationError, did_you_mean
from conveyor.flow import COLLECT_TASK, collect
from conveyor.message import Envelope, Message, decode, encode, new_id, now
from conveyor.middleware.base import Middleware, MiddlewareStack
from conveyor.middleware.retries import Retries
from conveyor.middleware.time_limit import TimeLimits
from conveyor.result import AsyncResult
from conveyor.results.base import ResultStore
from conveyor.task import (
    CORE_OPTIONS,
    OPTION_NAMES,
    AsyncTask,
    Task,
    TaskOptions,
    check_priority,
    check_queue,
    to_timestamp,
)

if TYPE_CHECKING:
    from conveyor.beat.entries import PeriodicDecorator, PeriodicTask

P = ParamSpec("P")
R = TypeVar("R")

NOT_YET_SUPPORTED = {
    "rate_limit": "rate_limit is not available yet in this version of Conveyor",
}


def default_middleware() -> list[Middleware]:
    return [Retries(), TimeLimits()]


def default_task_name(fn: Callable[..., Any]) -> str:
    """``module.function``. A task defined in a script run as ``python shop.py`` is named
    after the file (``shop.add``), as the worker that imports ``shop`` will name it."""
    module = fn.__module__
    if module == "__main__":
        main = sys.modules["__main__"]
        spec = getattr(main, "__spec__", None)
        file = getattr(main, "__file__", None)
        if spec is not None and spec.name:
            module = spec.name
        elif file:
            module = Path(file).stem
    return f"{module}.{fn.__qualname__}"


class TaskDecorator:
    """What ``@app.task(...)`` returns before it is applied to the function."""

    def __init__(self, app: App, options: dict[str, Any]) -> None:
        self.app = app
        self.options = options

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> AsyncTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Task[P, R]: ...
    def __call__(self, fn: Callable[..., Any]) -> Task[Any, Any]:
        return self.app.register(fn, **self.options)


class BoundTaskDecorator:
    """What ``@app.task(bind=True, ...)`` returns: the function's first parameter is the
    running task's `TaskContext` and is not part of `delay()`'s signature."""

    def __init__(self, app: App, options: dict[str, Any]) -> None:
        self.app = app
        self.options = options

    @overload
    def __call__(
        self, fn: Callable[Concatenate[TaskContext, P], Coroutine[Any, Any, R]]
    ) -> AsyncTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[TaskContext, P], R]) -> Task[P, R]: ...
    def __call__(self, fn: Callable[..., Any]) -> Task[Any, Any]:
        return self.app.register(fn, bind=True, **self.options)


class App:
    """A Conveyor application: its tasks, where their messages go, where results live.

    ``App("shop")`` uses ``$CONVEYOR_BROKER_URL``, else ``sqlite:///conveyor.db`` in the
    working directory; results go to the broker's own store unless ``results=`` (or
    ``$CONVEYOR_RESULTS_URL``) says otherwise.
    """

    def __init__(
        self,
        name: str,
        broker: str | None = None,
        results: str | None = None,
        *,
        signing_key: str | Sequence[str] | None = None,
        max_message_size: int | None = None,
        lease_seconds: float | None = None,
        result_ttl: float | None = None,
        middleware: Sequence[Middleware] = (),
        beat_schedule: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"App needs a non-empty name, got {name!r}")
        self.name = name
        self._options: dict[str, Any] = {
            "broker": broker, "results": results, "signing_key": signing_key,
            "max_message_size": max_message_size, "lease_seconds": lease_seconds,
            "result_ttl": result_ttl,
        }
        self._settings: Settings | None = None
        if not self.lazy_settings:
            self._settings = self.resolve_settings()
        self.middleware = MiddlewareStack([*default_middleware(), *middleware])
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.register(collect, name=COLLECT_TASK)  # ends groups inside workflows
        self.on_publish: Callable[[App], None] | None = None  # set by conveyor.testing.eager
        self._broker: Broker | None = None
        self._results: ResultStore | None = None
        self._lock = threading.Lock()
        self.schedules: dict[str, PeriodicTask] = {}  # periodic tasks, by schedule name
        if beat_schedule:
            from conveyor.beat.entries import from_config

            from_config(self, beat_schedule)

    # Integrations whose configuration isn't readable yet when the App is defined
    # (Django's settings, while proj/conveyor.py is imported) resolve it on first use.
    lazy_settings: ClassVar[bool] = False
    task_class: ClassVar[type[Task[Any, Any]]] = Task
    async_task_class: ClassVar[type[AsyncTask[Any, Any]]] = AsyncTask

    def __repr__(self) -> str:
        return f"<App {self.name} broker={mask_url(self.settings.broker_url)}>"

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = self.resolve_settings()
        return self._settings

    def resolve_settings(self) -> Settings:
        """The App's arguments, then ``CONVEYOR_*`` variables, then defaults. The URL
        schemes are checked now; a driver is imported on first use (a worker's
        supervisor never uses it, and redis-py with ssl would cost every process MBs)."""
        return check_schemes(resolve_settings(self.name, **self._options))

    # -- connections -----------------------------------------------------------------

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            with self._lock:
                if self._broker is None:
                    self._broker = brokers.from_url(self.settings.broker_url,
                                                    self.settings.lease_seconds)
        return self._broker

    @property
    def results(self) -> ResultStore:
        if self._results is None:
            with self._lock:
                if self._results is None:
                    self._results = result_stores.from_url(self.settings.effective_results_url)
        return self._results

    def use(self, broker: Broker | None = None, results: ResultStore | None = None) -> None:
        """Swap in other broker/result store objects (conveyor.testing uses this)."""
        with self._lock:
            if broker is not None:
                self._broker = broker
            if results is not None:
                self._results = results

    def close(self) -> None:
        """Close connections; the App reconnects if used again."""
        with self._lock:
            if self._broker is not None:
                self._broker.close()
            if self._results is not None:
                self._results.close()
            self._broker = self._results = None

    # -- tasks -----------------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> AsyncTask[P, R]: ...
    @overload
    def task(self, fn: Callable[P, R]) -> Task[P, R]: ...
    @overload
    def task(self, *, bind: Literal[True], **options: Any) -> BoundTaskDecorator: ...
    @overload
    def task(self, *, bind: Literal[False] = False, **options: Any) -> TaskDecorator: ...
    def task(
        self, fn: Callable[..., Any] | None = None, *, bind: bool = False, **options: Any
    ) -> Task[Any, Any] | TaskDecorator | BoundTaskDecorator:
        """Register a function as a task: ``@app.task`` or ``@app.task(queue="emails", ...)``.

        Raises ConfigurationError for an unknown option (naming the closest one) or a bad
        value, and if another task already has the name.
        """
        if fn is not None:
            return self.register(fn, bind=bind, **options)
        self._check_options(options.get("name", "@app.task"), {"bind": bind, **options})
        if bind:
            return BoundTaskDecorator(self, options)
        return TaskDecorator(self, options)

    def register(self, fn: Callable[..., Any], **options: Any) -> Task[Any, Any]:
        if not callable(fn):
            raise TypeError(f"@app.task decorates a function, got {fn!r}")
        name = options.pop("name", None) or default_task_name(fn)
        self._check_options(name, options)
        task_options = TaskOptions(name=name, **options)
        if name in self.tasks and self.tasks[name].fn is not fn:
            raise ConfigurationError(
                f"a task named {name!r} is already registered (by "
                f"{self.tasks[name].fn.__module__}): give one of them name=..."
            )
        cls = self.async_task_class if _is_async(fn) else self.task_class
        task: Task[Any, Any] = cls(self, fn, task_options)
        self.tasks[name] = task
        return task

    def periodic(
        self,
        schedule: Any,
        *,
        name: str | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        catch_up: Literal["once", "skip"] = "once",
        queue: str | None = None,
        priority: int | None = None,
        **task_options: Any,
    ) -> PeriodicDecorator:
        """Publish a task at each tick of `schedule` (``cron(...)``, ``every(...)``, a cron
        string or seconds), once per tick cluster-wide, from `conveyor beat`. On a function
        it also registers the task (`name` and `task_options` as in `@app.task`); on a Task
        it only schedules it. `catch_up` ("once" or "skip") decides about ticks that fell
        while no beat ran at all. See docs/periodic.md.

        Raises ConfigurationError for a bad schedule, argument or option, or a schedule
        name already used by another periodic task.
        """
        from conveyor.beat.entries import PeriodicDecorator

        return PeriodicDecorator(self, schedule, name, args, kwargs, catch_up, queue, priority,
                                 task_options)

    def _check_options(self, name: str, options: dict[str, Any]) -> None:
        check_task_options(name, options, self.middleware)

    # -- producing -------------------------------------------------------------------

    def publish(self, messages: Sequence[Message], param_names: Sequence[str] = ()) -> None:
        """Encode, sign and publish messages in one round trip."""
        messages, envelopes = self.seal(messages, param_names)
        self.send(messages, envelopes)

    def seal(self, messages: Sequence[Message], param_names: Sequence[str] = ()
             ) -> tuple[Sequence[Message], list[Envelope]]:
        """Run before_publish, then encode and sign: every error a publish can raise
        about the messages themselves is raised here, before anything is sent."""
        if self.middleware.has("before_publish"):
            messages = [self.middleware.before_publish(self, m) for m in messages]
        keys = self.settings.signing_keys
        limit = self.settings.max_message_size
        envelopes = [
            Envelope(m.id, m.queue, m.priority, m.eta,
                     signing.sign(encode(m, limit, param_names), keys))
            for m in messages
        ]
        return messages, envelopes

    def send(self, messages: Sequence[Message], envelopes: list[Envelope]) -> None:
        """Publish sealed envelopes in one round trip, then run after_publish."""
        self.broker.publish(envelopes)
        if self.middleware.has("after_publish"):
            for m in messages:
                self.middleware.notify("after_publish", self, m)
        if self.on_publish is not None:
            self.on_publish(self)

    def send_task(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: datetime | None = None,
        expires: float | datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        task_id: str | None = None,
    ) -> AsyncResult[Any]:
        """Enqueue a task by name, from code that can't import it. Unknown names are not
        an error here (the worker may know them); on the worker they end FAILURE."""
        task = self.tasks.get(name)
        if task is not None:
            return task.apply_async(args, kwargs, countdown=countdown, eta=eta,
                                    expires=expires, priority=priority, queue=queue,
                                    task_id=task_id)
        if countdown is not None and eta is not None:
            raise ValueError("give either countdown or eta, not both")
        message = Message(
            id=task_id or new_id(), task=name, args=list(args), kwargs=dict(kwargs or {}),
            queue=check_queue(queue or "default"), priority=check_priority(priority or 0),
            eta=to_timestamp(countdown, "countdown", True) or to_timestamp(eta, "eta", False),
            expires=to_timestamp(expires, "expires", True), created=now(),
        )
        self.publish([message])
        return AsyncResult(message.id, self)

    def AsyncResult(self, task_id: str) -> AsyncResult[Any]:  # noqa: N802 - Celery's name
        """A handle on any task by id (no I/O until you read it)."""
        return AsyncResult(task_id, self)

    def retry_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        """Re-queue dead letters as fresh tasks (attempt 1, re-signed); undecodable ones go
        back as they are. Returns how many. Published before deleted: never lost."""
        letters = [d for d in self.broker.dead_letters(queue, limit=10**9)
                   if ids is None or d.id in ids]
        envelopes = []
        messages = []
        for letter in letters:
            try:
                old = decode(signing.verify(letter.body, self.settings.signing_keys))
            except Exception:
                envelopes.append(Envelope(letter.id, letter.queue, 0, None, letter.body))
                continue
            # Attempt 1, due now, never expiring; what follows it (a chain's next steps,
            # its chord, error handlers) is kept, so a chain re-run from here continues.
            fresh = msgspec.structs.replace(old, attempt=1, eta=None, expires=None,
                                            created=now())
            body = signing.sign(encode(fresh, self.settings.max_message_size),
                                self.settings.signing_keys)
            envelopes.append(Envelope(fresh.id, fresh.queue, fresh.priority, None, body))
            messages.append(fresh)
        if envelopes:
            # The old FAILURE goes first: left in place, get() would return it at once,
            # and forgetting it after publishing could delete the new run's result.
            self.results.forget([letter.id for letter in letters])
            self.send(messages, envelopes)
            self.broker.purge_dead(ids=[letter.id for letter in letters])
        return len(envelopes)

    def revoke(self, task_ids: str | Sequence[str]) -> list[str]:
        """Make tasks that haven't started never run: their waiting messages (ready, or
        scheduled for a countdown, an eta or a retry backoff) are deleted and each task
        ends REVOKED, so `get()` raises TaskError("TaskRevoked"). Returns the ids revoked,
        in the order given; one already running (it is not stopped), finished, or unknown
        is left alone and not returned. What a revoked task would have set off ends as if
        it had expired: a chain's later steps and a chord's callback end FAILURE, its
        `link_error` handlers run, its unique key is freed (docs/tasks.md).

        Raises TypeError for an id that isn't a string, ValueError for an empty one,
        BrokerUnavailable when the broker or result store can't be reached (if the result
        store fails, the messages are put back: the tasks will run).
        """
        from conveyor.brokers.base import Delivery
        from conveyor.result import ResultRecord, State
        from conveyor.worker.executor import Completion
        from conveyor.worker.followups import Followups, needed

        ids = [task_ids] if isinstance(task_ids, str) else task_ids
        if not isinstance(ids, Sequence) or not all(isinstance(i, str) for i in ids):
            raise TypeError(f"revoke() takes a task id or a list of task ids (strings), "
                            f"got {task_ids!r}")
        if not all(ids):
            raise ValueError(f"revoke() got an empty task id in {task_ids!r}")
        ids = list(dict.fromkeys(ids))
        removed = {r.id: r for r in reversed(self.broker.revoke(ids))} if ids else {}
        if not removed:
            return []
        ttl, when, completions = self.settings.result_ttl, now(), []
        for r in removed.values():
            try:
                message = decode(signing.verify(r.body, self.settings.signing_keys))
                task, attempt, priority = message.task, message.attempt, message.priority
            except Exception:  # unreadable or forged: it would never have run anyway
                message, task, attempt, priority = None, "", 0, 0
            record = ResultRecord(id=r.id, state=State.REVOKED, task=task, attempt=attempt,
                                  result="revoked before it started", updated=when)
            completions.append(Completion(Delivery(r.id, r.queue, priority, r.body, ""), "ack",
                                          record, ttl, message=message))
        try:
            self.results.store([(c.record, ttl) for c in completions if c.record is not None])
        except BaseException:
            self.broker.publish([Envelope(c.delivery.id, c.delivery.queue, c.delivery.priority,
                                          c.message.eta if c.message else None, c.delivery.body)
                                 for c in completions])
            raise
        if needed(completions):
            Followups(self).run(completions)
        return [task_id for task_id in ids if task_id in removed]


def check_schemes(settings: Settings) -> Settings:
    """Raise ConfigurationError unless a broker and a result store serve the URLs' schemes."""
    brokers.check_scheme(settings.broker_url, brokers.BACKENDS, "broker")
    brokers.check_scheme(settings.effective_results_url, result_stores.BACKENDS,
                         "result store")
    return settings


def check_task_options(name: str, options: dict[str, Any], middleware: MiddlewareStack) -> None:
    """Raise ConfigurationError for an option no one owns (naming the closest) or a bad
    value. Integrations that declare tasks before an App exists check with this."""
    known = CORE_OPTIONS | middleware.options
    for key in options:
        if key in NOT_YET_SUPPORTED:
            raise ConfigurationError(f"task {name!r}: {NOT_YET_SUPPORTED[key]}")
        if key not in known or key not in OPTION_NAMES:
            hint = did_you_mean(key, known | set(NOT_YET_SUPPORTED))
            raise ConfigurationError(f"task {name!r}: unknown option {key!r}{hint}")
    if "queue" in options:
        _as_config_error(name, check_queue, options["queue"])
    if "priority" in options:
        _as_config_error(name, check_priority, options["priority"])
    unique_for = options.get("unique_for")
    if unique_for is not None and (not isinstance(unique_for, int | float)
                                   or isinstance(unique_for, bool) or unique_for <= 0):
        raise ConfigurationError(f"task {name!r}: unique_for must be seconds > 0, "
                                 f"got {unique_for!r}")
    if isinstance(options.get("retry_on"), type):
        options["retry_on"] = (options["retry_on"],)
    middleware.validate_options(name, options)


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn)


def _as_config_error(name: str, check: Callable[[Any], Any], value: Any) -> None:
    try:
        check(value)
    except ValueError as exc:
        raise ConfigurationError(f"task {name!r}: {exc}") from None
