"""Choose a result store by URL scheme, with the same rules as `conveyor.brokers`."""

from __future__ import annotations

from conveyor.brokers import load_backend
from conveyor.results.base import ResultStore

__all__ = ["ResultStore", "from_url"]

BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "memory": ("conveyor.results.memory", "MemoryResultStore", None),
    "sqlite": ("conveyor.results.sqlite", "SQLiteResultStore", None),
    "redis": ("conveyor.results.redis", "RedisResultStore", "redis"),
    "rediss": ("conveyor.results.redis", "RedisResultStore", "redis"),
    "redis+sentinel": ("conveyor.results.redis", "RedisResultStore", "redis"),
    "redis+cluster": ("conveyor.results.redis", "RedisResultStore", "redis"),
    "django": ("conveyor.contrib.django.results", "DjangoResultStore", "django"),
}


def from_url(url: str) -> ResultStore:
    cls = load_backend(url, BACKENDS, "result store")
    store: ResultStore = cls(url)
    return store
