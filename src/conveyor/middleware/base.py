"""Middleware: the one extension mechanism. Built-in features (retries, ...) are middleware.

Hooks run around publishing and around executing a task. `before_*` hooks run in stack
order and may raise to veto (the publish fails, or the task fails with that error);
`after_*`/`on_*` hooks run in reverse order and are observers: an exception there is
logged, never raised, so a broken metrics exporter can't fail tasks.

A middleware declares the task options it owns in `options`; `@app.task(...)` rejects
any option no middleware (and not the task itself) owns, naming the closest match.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from conveyor.context import TaskContext
from conveyor.message import Message

if TYPE_CHECKING:
    from conveyor.app import App
    from conveyor.task import Task

logger = logging.getLogger("conveyor.middleware")


@dataclass
class Execution:
    """One attempt of one task on a worker."""

    message: Message
    task: Task[..., Any]
    context: TaskContext
    started: float


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


class Middleware:
    """Subclass and override the hooks you need; the others cost nothing."""

    options: ClassVar[frozenset[str]] = frozenset()

    def validate_options(self, task_name: str, options: dict[str, Any]) -> None:
        """Raise ConfigurationError for bad values of the options this middleware owns."""

    def before_publish(self, app: App, message: Message) -> Message:
        return message

    def after_publish(self, app: App, message: Message) -> None:
        pass

    def before_execute(self, execution: Execution) -> None:
        pass

    def after_execute(self, execution: Execution, outcome: Outcome) -> None:
        pass

    def on_retry(self, execution: Execution, outcome: Outcome) -> None:
        pass

    def on_failure(self, execution: Execution, outcome: Outcome) -> None:
        pass


HOOKS = ("before_publish", "after_publish", "before_execute", "after_execute",
         "on_retry", "on_failure")


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
            if not hook.startswith("before_"):
                overriding.reverse()
            self._hooks[hook] = overriding

    @property
    def options(self) -> frozenset[str]:
        owned: frozenset[str] = frozenset()
        for m in self.middleware:
            owned |= m.options
        return owned

    def validate_options(self, task_name: str, options: dict[str, Any]) -> None:
        for m in self.middleware:
            m.validate_options(task_name, options)

    def before_publish(self, app: App, message: Message) -> Message:
        for hook in self._hooks["before_publish"]:
            message = hook(app, message)
        return message

    def has(self, hook: str) -> bool:
        return bool(self._hooks[hook])

    def before_execute(self, execution: Execution) -> None:
        for hook in self._hooks["before_execute"]:
            hook(execution)

    def notify(self, hook: str, *args: Any) -> None:
        """Call an observer hook on every middleware; log, don't raise, what they raise."""
        for fn in self._hooks[hook]:
            try:
                fn(*args)
            except Exception:
                logger.exception("middleware hook %s failed", getattr(fn, "__qualname__", fn))
