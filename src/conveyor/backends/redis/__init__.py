"""The Redis backend (redis-py with hiredis): broker, result store and coordination on
one server, a Sentinel-managed master or a Cluster (docs/redis.md). Every atomic step is
one Lua script in `lua/`, whose README gives the key schema.

redis-py is imported only when a connection is made: `url.check` (which `App(...)` runs
on its URLs) needs none, so a process that only checks a URL never loads the driver.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from conveyor.backends.redis.url import check

if TYPE_CHECKING:
    from conveyor.backends.redis.broker import RedisBroker
    from conveyor.backends.redis.coordination import RedisCoordination
    from conveyor.backends.redis.results import RedisResultStore

__all__ = ["RedisBroker", "RedisCoordination", "RedisResultStore", "check", "open_broker",
           "open_coordination", "open_results"]

_HOMES = {"RedisBroker": "broker", "RedisCoordination": "coordination",
          "RedisResultStore": "results"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_broker(url: str, lease_seconds: float) -> RedisBroker:
    from conveyor.backends.redis.broker import RedisBroker

    return RedisBroker(url, lease_seconds)


def open_results(url: str) -> RedisResultStore:
    from conveyor.backends.redis.results import RedisResultStore

    return RedisResultStore(url)


def open_coordination(url: str) -> RedisCoordination:
    from conveyor.backends.redis.coordination import RedisCoordination

    return RedisCoordination(url)
