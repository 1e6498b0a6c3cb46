"""Defaults and routing in one place: an App's `task_defaults` and `routes`
(docs/routing.md).

- ``task_defaults={"retries": 3, "time_limit": 300}``: any task option, the core ones and
  those a middleware owns, becomes the default of every task of the App.
- ``routes={"emails.*": {"queue": "emails"}}``: task-name globs (`fnmatch`, case
  sensitive), the first that matches wins, setting the queue and/or the priority.

What a task ends up with: a per-call ``apply_async(queue=, priority=)`` > its route > its
decorator > `task_defaults` > the built-in default. `Controls.options` turns a task's
declared options into its `TaskOptions` once, when it is registered (again if the App's
settings are read later, as a `DjangoApp` does), so `delay()` matches no glob.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

from conveyor.declare import check_task_options
from conveyor.errors import ConfigurationError, did_you_mean
from conveyor.middleware.base import MiddlewareStack
from conveyor.options import TaskOptions, build_options, check_priority, check_queue

ROUTE_KEYS = ("queue", "priority")
PER_TASK = ("name", "bind")  # options that describe one task, never a default
_LABEL = "task_defaults"
_CACHE_LIMIT = 4096  # send_task names cached: a bound, should names be made up per call


class Route(NamedTuple):
    """One entry of the routing table: what tasks whose name matches `pattern` get."""

    pattern: str
    queue: str | None
    priority: int | None

    def place(self, queue: str, priority: int) -> tuple[str, int]:
        """(queue, priority) of a task placed at `queue`, `priority` before routing."""
        return (queue if self.queue is None else self.queue,
                priority if self.priority is None else self.priority)


def check_routes(routes: object) -> tuple[Route, ...]:
    """The routing table, in order, or ConfigurationError naming the bad pattern, key
    or value."""
    if not isinstance(routes, Mapping):
        raise ConfigurationError(
            "routes must be a dict of task-name patterns to {'queue': ..., 'priority': ...}, "
            f"e.g. {{'emails.*': {{'queue': 'emails'}}}}, got {routes!r}")
    table = []
    for pattern, route in routes.items():
        if not isinstance(pattern, str) or not pattern:
            raise ConfigurationError(f"routes: pattern {pattern!r} must be a non-empty str, "
                                     "a task-name glob such as 'emails.*'")
        where = f"routes[{pattern!r}]"
        if not isinstance(route, Mapping):
            raise ConfigurationError(f"{where} must be a dict with 'queue' and/or "
                                     f"'priority', got {route!r}")
        for key in route:
            if key not in ROUTE_KEYS:
                raise ConfigurationError(
                    f"{where}: unknown key {key!r}{did_you_mean(key, ROUTE_KEYS)} (a route "
                    "sets only 'queue' and/or 'priority')")
        if not route:
            raise ConfigurationError(f"{where} sets nothing: give it 'queue' and/or "
                                     "'priority'")
        try:
            queue = check_queue(route["queue"]) if "queue" in route else None
            priority = check_priority(route["priority"]) if "priority" in route else None
        except ValueError as exc:
            raise ConfigurationError(f"{where}: {exc}") from None
        table.append(Route(pattern, queue, priority))
    return tuple(table)


def check_task_defaults(defaults: object, middleware: MiddlewareStack) -> dict[str, Any]:
    """`defaults` checked as `@app.task` checks its options (a misspelt one names the
    closest), with the values a middleware normalizes normalized."""
    if not isinstance(defaults, Mapping):
        raise ConfigurationError("task_defaults must be a dict of task options, e.g. "
                                 f"{{'retries': 3, 'time_limit': 300}}, got {defaults!r}")
    options = dict(defaults)
    for key in PER_TASK:
        if key in options:
            raise ConfigurationError(f"task_defaults: {key!r} can't be a default of every "
                                     f"task: give it to each task, @app.task({key}=...)")
    try:
        check_task_options(_LABEL, options, middleware)
    except ConfigurationError as exc:
        raise ConfigurationError(f"task_defaults: {_unlabelled(exc)}") from None
    return options


def _unlabelled(exc: ConfigurationError) -> str:
    return str(exc).removeprefix(f"task {_LABEL!r}: ")


class Controls:
    """An App's checked `task_defaults` and `routes`."""

    def __init__(self, middleware: MiddlewareStack, defaults: object = None,
                 routes: object = None) -> None:
        self.defaults = check_task_defaults({} if defaults is None else defaults, middleware)
        self.routes = check_routes({} if routes is None else routes)
        self._placements: dict[str, tuple[str, int]] = {}

    def __bool__(self) -> bool:
        return bool(self.defaults or self.routes)

    def route(self, name: str) -> Route | None:
        """The first route whose pattern matches `name`, if any."""
        for route in self.routes:
            if fnmatchcase(name, route.pattern):
                return route
        return None

    def options(self, name: str, declared: Mapping[str, Any],
                middleware: MiddlewareStack) -> TaskOptions:
        """The options of task `name`, declared with `declared` (already checked): its
        decorator's over the defaults, its route over both."""
        merged = {**self.defaults, **declared}
        if self.defaults and declared:  # e.g. a task's soft_time_limit over a default limit
            try:
                check_task_options(name, merged, middleware)
            except ConfigurationError as exc:
                raise ConfigurationError(f"{exc} (with the App's task_defaults "
                                         f"{self.defaults!r})") from None
        route = self.route(name)
        if route is not None:
            merged["queue"], merged["priority"] = route.place(merged.get("queue", "default"),
                                                              merged.get("priority", 0))
        return build_options(name, merged, middleware.options)

    def placement(self, name: str) -> tuple[str, int]:
        """(queue, priority) for a task sent by name that isn't registered here."""
        found = self._placements.get(name)
        if found is None:
            route = self.route(name)
            queue, priority = (self.defaults.get("queue", "default"),
                               self.defaults.get("priority", 0))
            if route is not None:
                queue, priority = route.place(queue, priority)
            if len(self._placements) >= _CACHE_LIMIT:
                self._placements.clear()
            found = self._placements[name] = (queue, priority)
        return found
