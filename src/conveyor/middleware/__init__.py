"""Middleware, the one way to extend Conveyor (docs/middleware.md).

    from conveyor import Middleware

    class Audit(Middleware):
        options = {"audit": False}          # a task option of its own, with its default

        def after_execute(self, execution, outcome):
            if execution.task.options["audit"]:
                log.info("%s ended: %s", execution.message.id, outcome.error or "ok")

    app = App("shop", middleware=[Audit()])

Retries, time limits and rate limits are middleware too, written with exactly this API;
every App runs them first (`default_middleware()`), then the ones it is given.
"""

from __future__ import annotations

from conveyor.middleware.base import Defer, Execution, Middleware, MiddlewareStack, Outcome
from conveyor.middleware.rate_limits import RateLimits
from conveyor.middleware.retries import Retries
from conveyor.middleware.time_limits import TimeLimits

__all__ = ["Defer", "Execution", "Middleware", "MiddlewareStack", "Outcome", "RateLimits",
           "Retries", "TimeLimits", "default_middleware"]


def default_middleware() -> list[Middleware]:
    """The built-in middleware every App runs, before its own."""
    return [Retries(), TimeLimits(), RateLimits()]
