"""Choose a broker by URL scheme. Backends are imported only when their scheme is used,
so a missing driver is reported with the extra to install, not at `import conveyor`."""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from conveyor.brokers.base import Broker, DeadLetter, Delivery, QueueStats, WorkerInfo
from conveyor.config import mask_url
from conveyor.errors import ConfigurationError

__all__ = ["Broker", "DeadLetter", "Delivery", "QueueStats", "WorkerInfo", "from_url"]

# scheme -> (module, class name, pip extra or None)
BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "memory": ("conveyor.brokers.memory", "MemoryBroker", None),
    "sqlite": ("conveyor.brokers.sqlite", "SQLiteBroker", None),
    "redis": ("conveyor.brokers.redis", "RedisBroker", "redis"),
    "rediss": ("conveyor.brokers.redis", "RedisBroker", "redis"),
    "redis+sentinel": ("conveyor.brokers.redis", "RedisBroker", "redis"),
    "redis+cluster": ("conveyor.brokers.redis", "RedisBroker", "redis"),
}


def scheme_of(url: str) -> str:
    return urlsplit(url).scheme.lower()


def check_scheme(url: str, backends: dict[str, tuple[str, str, str | None]], what: str) -> str:
    """The URL's scheme, or ConfigurationError naming the known ones (imports nothing)."""
    scheme = scheme_of(url)
    if scheme not in backends:
        known = ", ".join(f"{s}://" for s in backends)
        raise ConfigurationError(
            f"unknown {what} URL scheme {scheme + '://' if scheme else '(none)'} in "
            f"{mask_url(url)!r}: use one of {known}"
        )
    return scheme


def load_backend(url: str, backends: dict[str, tuple[str, str, str | None]], what: str) -> type:
    scheme = check_scheme(url, backends, what)
    module_name, class_name, extra = backends[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f": pip install 'conveyor[{extra}]'" if extra else ""
        raise ConfigurationError(f"{scheme}:// needs a driver that isn't installed{hint}"
                                 f" ({exc})") from exc
    cls: type = getattr(module, class_name)
    return cls


def from_url(url: str, lease_seconds: float = 30.0) -> Broker:
    """The broker for `url`, e.g. ``sqlite:///conveyor.db`` or ``memory://``."""
    cls = load_backend(url, BACKENDS, "broker")
    broker: Broker = cls(url, lease_seconds=lease_seconds)
    return broker
