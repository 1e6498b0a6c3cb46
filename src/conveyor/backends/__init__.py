"""Backends, one folder per technology, chosen by URL scheme.

Each backend is a package exposing up to three factories, one per seam it serves:
``open_broker(url, lease_seconds)``, ``open_results(url)`` and ``open_coordination(url)``. It is
imported only when its scheme is used, so a missing driver is reported with the extra
to install, not at ``import conveyor``. Its `checker` module's ``check(url)`` raises
ConfigurationError for a URL that can't work, without the driver: `App(...)` runs it;
its optional ``location(url)`` says where a URL points (the file of a SQLite URL).
Adding a backend means adding its folder and one line below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Literal
from urllib.parse import urlsplit

from conveyor.broker import Broker
from conveyor.config import mask_url
from conveyor.errors import ConfigurationError
from conveyor.store import Coordination, ResultStore

Role = Literal["broker", "results", "coordination"]
ALL_ROLES: tuple[Role, ...] = ("broker", "results", "coordination")
NAMES: dict[Role, str] = {"broker": "broker", "results": "result store",
                          "coordination": "coordination store"}


@dataclass(frozen=True)
class Backend:
    module: str
    schemes: tuple[str, ...]
    extra: str | None = None  # the pip extra that installs its driver
    roles: tuple[Role, ...] = ALL_ROLES
    checker: str | None = None  # a module whose check(url) needs no driver


BACKENDS = (
    Backend("conveyor.backends.memory", ("memory",)),
    Backend("conveyor.backends.sqlite", ("sqlite",), checker="conveyor.backends.sqlite.db"),
    Backend("conveyor.backends.redis", ("redis", "rediss", "redis+sentinel", "redis+cluster"),
            extra="redis", checker="conveyor.backends.redis.url"),
    Backend("conveyor.backends.amqp", ("amqp", "amqps"), extra="amqp", roles=("broker",),
            checker="conveyor.backends.amqp.url"),
    Backend("conveyor.contrib.django.store", ("django",), extra="django",
            roles=("results", "coordination")),
)


def scheme_of(url: str) -> str:
    return urlsplit(url).scheme.lower()


def check_scheme(url: str, role: Role) -> Backend:
    """The backend serving `url` in `role`, or ConfigurationError naming the schemes that
    can (imports nothing)."""
    scheme = scheme_of(url)
    for backend in BACKENDS:
        if scheme in backend.schemes and role in backend.roles:
            return backend
    known = ", ".join(f"{s}://" for b in BACKENDS if role in b.roles for s in b.schemes)
    raise ConfigurationError(
        f"unknown {NAMES[role]} URL scheme {scheme + '://' if scheme else '(none)'} in "
        f"{mask_url(url)!r}: use one of {known}"
    )


def holds_results(url: str) -> bool:
    """Whether the backend of `url` can keep results (RabbitMQ can't)."""
    return "results" in check_scheme(url, "broker").roles


def check_url(url: str, role: Role) -> None:
    """Raise ConfigurationError unless a backend serves `url` in `role` and the URL's
    form is right (its database, port, options...); no driver is loaded, no connection
    made."""
    backend = check_scheme(url, role)
    if backend.checker is not None:
        importlib.import_module(backend.checker).check(url)


def describe(url: str) -> str:
    """`url` as a person should see it: masked, and for a file store the absolute file it
    resolves to (``sqlite:///conveyor.db (file /srv/shop/conveyor.db)``), since a relative
    path depends on the working directory of each process that opens it. A checker
    module tells where its URL points with ``location(url)``."""
    shown = mask_url(url)
    try:
        backend = check_scheme(url, "results" if scheme_of(url) == "django" else "broker")
        module = importlib.import_module(backend.checker) if backend.checker else None
        location = getattr(module, "location", None)
        where = location(url) if location is not None else None
    except ConfigurationError:
        return shown
    return f"{shown} ({where})" if where else shown


def _load(url: str, role: Role) -> ModuleType:
    backend = check_scheme(url, role)
    try:
        return importlib.import_module(backend.module)
    except ImportError as exc:
        hint = f": pip install 'conveyor[{backend.extra}]'" if backend.extra else ""
        raise ConfigurationError(f"{scheme_of(url)}:// needs a driver that isn't installed"
                                 f"{hint} ({exc})") from exc


def broker_from_url(url: str, lease_seconds: float = 30.0) -> Broker:
    """The broker for `url`, e.g. ``sqlite:///conveyor.db`` or ``memory://``."""
    broker: Broker = _load(url, "broker").open_broker(url, lease_seconds)
    return broker


def results_from_url(url: str) -> ResultStore:
    store: ResultStore = _load(url, "results").open_results(url)
    return store


def coordination_from_url(url: str) -> Coordination:
    coordination: Coordination = _load(url, "coordination").open_coordination(url)
    return coordination
