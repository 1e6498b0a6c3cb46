"""The Redis backend (redis-py with hiredis): broker, result store and coordination on
one server, a Sentinel-managed master or a Cluster (docs/redis.md). Every atomic step is
one Lua script in `lua/`, whose README gives the key schema."""

from __future__ import annotations

from conveyor.backends.redis.broker import RedisBroker
from conveyor.backends.redis.coordination import RedisCoordination
from conveyor.backends.redis.results import RedisResultStore

__all__ = ["RedisBroker", "RedisCoordination", "RedisResultStore", "broker", "coordination",
           "results"]


def broker(url: str, lease_seconds: float) -> RedisBroker:
    return RedisBroker(url, lease_seconds)


def results(url: str) -> RedisResultStore:
    return RedisResultStore(url)


def coordination(url: str) -> RedisCoordination:
    return RedisCoordination(url)
