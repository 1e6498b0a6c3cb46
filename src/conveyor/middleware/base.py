"""Middleware: the one extension mechanism. Built-in features (retries, time limits) are
middleware, written with nothing but what this module offers users (docs/middleware.md).

Hooks run around publishing and around executing a task. `before_*` hooks run in stack
order and may raise to veto (the publish fails, or the task fails with that error;
`before_start` may raise `Defer` instead, to put the task back in its queue for later);
`after_*`/`on_*` hooks run in reverse order and are observers: an exception there is
logged, never raised, so a broken metrics exporter can't fail tasks.

A middleware declares the task options it owns in `options` (a set of names, or a dict
of names to their defaults): `@app.task(per_minute=5)` is accepted once a middleware owns
`per_minute`, and reads back as ``task.options["per_minute"]``; an option nobody owns
is rejected, naming the closest match.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field
from typing import Any, ClassVar

from conveyor.context import TaskContext
from conveyor.host import Host
from conveyor.message import Message
from conveyor.task import Task

logger = logging.getLogger("conveyor.middleware")


@dataclass
class Execution:
    """One attempt of one task on a worker. A middleware may set `deadline` (a
    `time.monotonic()` time) in `before_execute`: past it the worker stops the task for
    sure, by replacing its process, and the attempt fails with TimeLimitExceeded."""

    message: Message
    task: Task[..., Any]
    context: TaskContext
    started: float
    deadline: float | None = None

    def option(self, name: str) -> Any:
        """A task option as this call sees it: what the call gave
        (`apply_async(retries=5)`), else what the task was declared with."""
        overrides = self.message.options
        return overrides[name] if name in overrides else self.task.options[name]


@dataclass
class Outcome:
    """How an attempt ended. Middleware may set `retry_at` (after_execute) to ask for a
    retry; the executor then re-queues the message instead of failing it."""

    value: Any = None
    error: BaseException | None = None
    traceback: str | None = None
    retry_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.error is not None


class Defer(Exception):  # noqa: N818 - an instruction, like Retry
    """Raised by a `before_start` hook: don't run this delivery now, put it back in its
    queue (its broker's schedule) until `at`, a Unix time, with `headers` added to its
    message. Not a retry: the attempt isn't counted and no result is written (the task
    stays PENDING); its queue and priority are kept. Rate limits use it, so tasks over
    the limit wait in the broker, not in worker memory; so may any middleware that
    decides a task can't start yet (a quota, a maintenance window)."""

    def __init__(self, at: float, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"deferred until {at:.3f} (Unix time)")
        self.at = at
        self.headers = dict(headers or {})


class Middleware:
    """Subclass and override the hooks you need; the others cost nothing."""

    # The task options this middleware owns: names, or a dict of names to defaults (an
    # option declared by name alone defaults to None).
    options: ClassVar[Collection[str]] = frozenset()

    def validate_options(self, task_name: str, options: dict[str, Any]) -> None:
        """Raise ConfigurationError for bad values of the options this middleware owns
        (`options` holds what the task was declared with; a value may be normalized in
        place, e.g. one exception class into a tuple of them)."""

    def before_publish(self, app: Host, message: Message) -> Message:
        return message

    def after_publish(self, app: Host, message: Message) -> None:
        pass

    def before_start(self, task: Task[..., Any], message: Message) -> None:
        """On the worker, before anything of this attempt happens (STARTED, the early ack
        of an acks_late=False task, a workflow step's run-once claim): raise `Defer(at)`
        to put the delivery back until `at`. It runs on the worker's reserving thread,
        for sync and async tasks alike: return at once for tasks it has nothing to do
        with (a store round trip here is fine for the tasks it limits). Any other
        exception fails the task for good, dead-lettered with that error."""

    def before_execute(self, execution: Execution) -> None:
        pass

    def after_execute(self, execution: Execution, outcome: Outcome) -> None:
        pass

    def on_retry(self, execution: Execution, outcome: Outcome) -> None:
        pass

    def on_failure(self, execution: Execution, outcome: Outcome) -> None:
        pass

    def wrap_call(self, execution: Execution) -> AbstractContextManager[Any] | None:
        """A context to run the task body in (a Flask app context, a Django user, a
        tenant), entered right before the body and left right after it, in the thread
        or asyncio task that runs it; None for none. After `before_execute`."""
        return None

    def on_revoked(self, message: Message, reason: str) -> None:
        """A task ended REVOKED without running: revoked (in the process that called
        `revoke`) or expired (in the worker that met it)."""

    def on_dead_letter(self, message: Message | None, reason: str) -> None:
        """A worker put a message in the dead-letter store (`message` None when it
        couldn't even be read)."""

    def on_worker_process_start(self, app: Host) -> None:
        """A worker process starts working, before its first task: open per-process
        connections here (each of `-p N` processes calls it once, after the fork)."""

    def on_worker_stop(self, app: Host) -> None:
        """A worker process stops (warm or cold), after its last task."""


HOOKS = ("before_publish", "after_publish", "before_start", "before_execute",
         "after_execute", "on_retry", "on_failure", "wrap_call", "on_revoked",
         "on_dead_letter", "on_worker_process_start", "on_worker_stop")


class MiddlewareStack:
    """Dispatches hooks, calling only the middleware that override each one."""

    def __init__(self, middleware: Sequence[Middleware]) -> None:
        self.middleware = list(middleware)
        self._hooks: dict[str, list[Callable[..., Any]]] = {}
        for hook in HOOKS:
            overriding = [
                getattr(m, hook) for m in self.middleware
                if getattr(type(m), hook) is not getattr(Middleware, hook)
            ]
            if not hook.startswith(("before_", "wrap_", "on_worker_process_start")):
                overriding.reverse()
            self._hooks[hook] = overriding

    @property
    def options(self) -> dict[str, Any]:
        """Every option the middleware own, with its default."""
        owned: dict[str, Any] = {}
        for m in self.middleware:
            declared = m.options
            owned.update(declared if isinstance(declared, Mapping)
                         else dict.fromkeys(declared))
        return owned

    def validate_options(self, task_name: str, options: dict[str, Any]) -> None:
        for m in self.middleware:
            m.validate_options(task_name, options)

    def before_publish(self, app: Host, message: Message) -> Message:
        for hook in self._hooks["before_publish"]:
            message = hook(app, message)
        return message

    def has(self, hook: str) -> bool:
        return bool(self._hooks[hook])

    def before_start(self, task: Task[..., Any], message: Message) -> None:
        for hook in self._hooks["before_start"]:
            hook(task, message)

    def before_execute(self, execution: Execution) -> None:
        for hook in self._hooks["before_execute"]:
            hook(execution)

    def wrapped(self, execution: Execution) -> AbstractContextManager[Any]:
        """The `wrap_call` contexts of every middleware, the first outermost."""
        hooks = self._hooks["wrap_call"]
        if not hooks:
            return nullcontext()
        stack = ExitStack()
        with stack:
            for hook in hooks:
                context = hook(execution)
                if context is not None:
                    stack.enter_context(context)
            return stack.pop_all()

    def notify(self, hook: str, *args: Any) -> None:
        """Call an observer hook on every middleware; log, don't raise, what they raise."""
        for fn in self._hooks[hook]:
            try:
                fn(*args)
            except Exception:
                logger.exception("middleware hook %s failed", getattr(fn, "__qualname__", fn))
