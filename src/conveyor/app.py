"""`App`: the task registry and the wiring of settings, broker, result store, coordination
and middleware.

There is no default or "current" app: every task, worker, CLI command and integration is
handed its App explicitly. Connections are opened lazily, on first use, so defining an
App at import time does no I/O.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from conveyor import backends
from conveyor.broker import Broker
from conveyor.config import Settings, mask_url, resolve_settings
from conveyor.declare import Declarer
from conveyor.errors import ConfigurationError
from conveyor.flow import COLLECT_TASK, collect
from conveyor.lifecycle import admin, pausing, unfinished
from conveyor.lifecycle.scheduling import Schedules
from conveyor.message import Envelope, Message, new_id, now, seal
from conveyor.middleware import Middleware, MiddlewareStack, default_middleware
from conveyor.options import (
    TaskOptions,
    check_priority,
    check_queue,
    check_task_id,
    to_timestamp,
)
from conveyor.periodic import PeriodicTask, from_config
from conveyor.result import AsyncResult
from conveyor.routing import Controls
from conveyor.store import Coordination, ResultStore


class App(Declarer):
    """A Conveyor application: its tasks, where their messages go, where results live.

    ``App("shop")`` uses ``$CONVEYOR_BROKER_URL``, else ``sqlite:///conveyor.db`` in the
    working directory; results and coordination go to the broker's own store unless
    ``results=`` (or ``$CONVEYOR_RESULTS_URL``) says otherwise. `middleware` runs after
    the built-in retries and time limits (docs/middleware.md). `task_defaults` (any task
    option) and `routes` (task-name globs to a queue and/or priority) apply to every task
    (docs/routing.md).
    """

    # Integrations whose configuration isn't readable yet when the App is defined
    # (Django's settings, while proj/conveyor.py is imported) resolve it on first use.
    lazy_settings = False

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
        task_defaults: Mapping[str, Any] | None = None,
        routes: Mapping[str, Mapping[str, Any]] | None = None,
        worker_prefetch: int | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"App needs a non-empty name, got {name!r}")
        self.name = name
        self._options: dict[str, Any] = {
            "broker": broker, "results": results, "signing_key": signing_key,
            "max_message_size": max_message_size, "lease_seconds": lease_seconds,
            "result_ttl": result_ttl, "task_defaults": task_defaults, "routes": routes,
            "worker_prefetch": worker_prefetch,
        }
        self.middleware = MiddlewareStack([*default_middleware(), *middleware])
        self.tasks = {}
        self._declared: dict[str, dict[str, Any]] = {}  # each task's own options
        self.controls = Controls(self.middleware)  # none until the settings are read
        self._settings: Settings | None = None
        if not self.lazy_settings:
            self.settings  # noqa: B018 - resolves, checks and applies them now
        self.periodic_tasks: dict[str, PeriodicTask] = {}  # declared in code, by name
        self.schedules = Schedules(self)  # those and the ones added at run time
        self.register(collect, name=COLLECT_TASK)  # ends groups inside workflows
        self.on_publish: Callable[[App], None] | None = None  # set by conveyor.testing.eager
        self._broker: Broker | None = None
        self._results: ResultStore | None = None
        self._coordination: Coordination | None = None
        self._lock = threading.Lock()
        for entry in from_config(beat_schedule or {}):
            self.add_schedule(entry)

    def __repr__(self) -> str:
        return f"<App {self.name} broker={mask_url(self.settings.broker_url)}>"

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            settings = self.resolve_settings()
            self.configure_tasks(Controls(self.middleware, settings.task_defaults,
                                          settings.routes))
            self._settings = settings
        return self._settings

    def resolve_settings(self) -> Settings:
        """The App's arguments, then ``CONVEYOR_*`` variables, then defaults. The URLs
        are checked now; a driver is imported on first use (a worker's
        supervisor never uses it, and redis-py with ssl would cost every process MBs)."""
        return check_urls(resolve_settings(self.name, **self._options))

    # -- task defaults and routes ------------------------------------------------------

    def task_options(self, name: str, declared: dict[str, Any]) -> TaskOptions:
        """A task's options: its own over `task_defaults`, its route over both, resolved
        now, once, so `delay()` matches no glob."""
        options = self.controls.options(name, declared, self.middleware)
        self._declared[name] = declared
        return options

    def configure_tasks(self, controls: Controls) -> None:
        """Apply `controls` to the tasks registered so far (declared before the settings
        were read, as a `DjangoApp`'s can be) and to those registered from now on."""
        resolved = {name: controls.options(name, self._declared[name], self.middleware)
                    for name in self.tasks if name in self._declared}
        for name, options in resolved.items():
            self.tasks[name].options = options
        self.controls = controls

    # -- connections -----------------------------------------------------------------

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            with self._lock:
                if self._broker is None:
                    self._broker = backends.broker_from_url(self.settings.broker_url,
                                                            self.settings.lease_seconds)
        return self._broker

    @property
    def results(self) -> ResultStore:
        if self._results is None:
            with self._lock:
                if self._results is None:
                    self._results = backends.results_from_url(
                        self.settings.effective_results_url)
        return self._results

    @property
    def coordination(self) -> Coordination:
        """Claims, sets and values for workflows, unique tasks and the beat: in the
        result store's backend."""
        if self._coordination is None:
            with self._lock:
                if self._coordination is None:
                    self._coordination = backends.coordination_from_url(
                        self.settings.effective_results_url)
        return self._coordination

    def use(self, broker: Broker | None = None, results: ResultStore | None = None,
            coordination: Coordination | None = None) -> None:
        """Swap in other broker/store objects (conveyor.testing uses this)."""
        with self._lock:
            if broker is not None:
                self._broker = broker
            if results is not None:
                self._results = results
            if coordination is not None:
                self._coordination = coordination

    def close(self) -> None:
        """Close connections; the App reconnects if used again."""
        with self._lock:
            for connection in (self._broker, self._results, self._coordination):
                if connection is not None:
                    connection.close()
            self._broker = self._results = self._coordination = None

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
        envelopes = [Envelope(m.id, m.queue, m.priority, m.eta, seal(m, limit, keys, param_names))
                     for m in messages]
        return messages, envelopes

    def send(self, messages: Sequence[Message], envelopes: list[Envelope]) -> None:
        """Publish sealed envelopes in one round trip, then run after_publish."""
        self.broker.publish(envelopes)
        if self.middleware.has("after_publish"):
            for m in messages:
                self.middleware.notify("after_publish", self, m)
        if self.on_publish is not None:
            self.on_publish(self)

    def on_commit(self, publish: Callable[[], object], using: str | None = None) -> None:
        """Where `delay_on_commit` waits for a commit. A plain App knows no transactions."""
        raise ConfigurationError(
            "delay_on_commit waits for a Django transaction to commit: use a DjangoApp "
            "(conveyor.contrib.django), or call delay() once your transaction committed")

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
        an error here (the worker may know them); on the worker they end FAILURE. The
        App's routes and `task_defaults` place them as they would a registered task."""
        task = self.tasks.get(name)
        if task is not None:
            return task.apply_async(args, kwargs, countdown=countdown, eta=eta,
                                    expires=expires, priority=priority, queue=queue,
                                    task_id=task_id)
        if countdown is not None and eta is not None:
            raise ValueError("give either countdown or eta, not both")
        self.settings  # noqa: B018 - a lazy App reads its routes first
        routed_queue, routed_priority = self.controls.placement(name)
        message = Message(
            id=check_task_id(task_id) or new_id(), task=name, args=list(args),
            kwargs=dict(kwargs or {}),
            queue=routed_queue if queue is None else check_queue(queue),
            priority=routed_priority if priority is None else check_priority(priority),
            eta=to_timestamp(countdown, "countdown", True) or to_timestamp(eta, "eta", False),
            expires=to_timestamp(expires, "expires", True), created=now(),
        )
        self.publish([message])
        return AsyncResult(message.id, self, message.queue)

    def AsyncResult(self, task_id: str) -> AsyncResult[Any]:  # noqa: N802 - Celery's name
        """A handle on any task by id (no I/O until you read it)."""
        return AsyncResult(task_id, self)

    def unfinished(self, queue: str | None) -> str:
        """Why a task of `queue` may not have finished (see `AsyncResult.get`)."""
        return unfinished.unfinished(self, queue)

    # -- operations ------------------------------------------------------------------

    def retry_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        """Re-queue dead letters as fresh tasks (attempt 1, re-signed); undecodable ones go
        back as they are. Returns how many. Published before deleted: never lost."""
        return admin.retry_dead(self, ids, queue)

    def revoke(self, task_ids: str | Sequence[str], terminate: bool = False) -> list[str]:
        """Make tasks that haven't started never run: their waiting messages (ready, or
        scheduled for a countdown, an eta or a retry backoff) are deleted and each task
        ends REVOKED, so `get()` raises TaskError("TaskRevoked"). Returns the ids revoked,
        in the order given; one already running, finished, or unknown is left alone and
        not returned. What a revoked task would have set off ends as if it had expired: a
        chain's later steps and a chord's callback end FAILURE, its `link_error` handlers
        run, its unique key is freed (docs/tasks.md).

        With `terminate=True`, running tasks are stopped too, within seconds, on whichever
        worker runs them: they end REVOKED and never run again (docs/worker.md, "Stopping
        a running task"); their ids are returned as well.

        Raises TypeError for an id that isn't a string, ValueError for an empty one,
        BrokerUnavailable when the broker or result store can't be reached (if the result
        store fails, the messages are put back: the tasks will run).
        """
        return admin.revoke(self, task_ids, terminate)

    def pause(self, queue: str) -> bool:
        """Pause `queue` cluster-wide: within a second every worker stops taking its tasks
        (those already reserved or running go on); producers go on, and what they send
        waits in the queue. Returns False if it was paused already. Raises ValueError for
        a name no queue can have, BrokerUnavailable if the store can't be reached."""
        return pausing.pause(self.coordination, queue)

    def resume(self, queue: str) -> bool:
        """Let workers take `queue`'s tasks again (within a second). Returns False, and
        does nothing, if it wasn't paused."""
        return pausing.resume(self.coordination, queue)

    def paused(self) -> set[str]:
        """The names of the queues paused cluster-wide."""
        return pausing.paused(self.coordination)


def check_urls(settings: Settings) -> Settings:
    """Raise ConfigurationError unless backends serve the URLs in their roles, and the
    URLs are well formed (no driver is loaded, no connection made)."""
    backends.check_url(settings.broker_url, "broker")
    if settings.results_url is None and not backends.holds_results(settings.broker_url):
        scheme = settings.broker_url.partition(":")[0]
        raise ConfigurationError(
            f"the {scheme}:// broker keeps no results: give the App a result store, "
            "results='redis://127.0.0.1:6379/0' (or sqlite:///results.db, django://), or "
            "set $CONVEYOR_RESULTS_URL")
    backends.check_url(settings.effective_results_url, "results")
    return settings
