"""Redis connections for Conveyor's URLs (url.py parses and checks them), shared by the
Redis broker, result store and coordination, and the Lua scripts they run (`lua/`, key
schema in `lua/README.md`)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from importlib import resources
from typing import Any, TypeVar

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from conveyor.backends.redis.url import RedisTarget, parse_url
from conveyor.config import mask_url
from conveyor.errors import BrokerUnavailable, ConfigurationError

T = TypeVar("T")
REPLICA_WAIT_MS = 1000  # how long one write waits for its replicas before it counts as failed


# Replies that mean "this server can't take the write right now" (a failover, a reload,
# a resharding): the operation is retried like a lost connection.
TRANSIENT_REPLIES = ("UNBLOCKED", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN",
                     "LOADING", "NOREPLICAS")


def call(action: Callable[[], T], url: str, what: str) -> T:
    """Run a Redis operation, turning "unreachable for now" into BrokerUnavailable."""
    try:
        return action()
    except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError) as exc:
        raise BrokerUnavailable(f"{what} at {mask_url(url)} is unreachable: {exc}") from exc
    except redis.exceptions.OutOfMemoryError as exc:
        raise BrokerUnavailable(f"{what} at {mask_url(url)} is out of memory (maxmemory), "
                                f"retrying until it has room: {exc}") from exc
    except redis.ResponseError as exc:
        if "DB index is out of range" in str(exc):
            raise ConfigurationError(
                f"Redis at {mask_url(url)} has no database {parse_url(url).db}: use one it "
                "has (0 to 15 unless its `databases` setting says more)") from exc
        if str(exc).startswith(TRANSIENT_REPLIES):
            raise BrokerUnavailable(f"{what} at {mask_url(url)} can't take writes now: "
                                    f"{exc}") from exc
        raise


def confirm_replicated(client: Any, target: RedisTarget, what: str) -> None:
    """With ``replicas=N``, wait until N replicas have every write of this connection
    so far (Redis WAIT); raise BrokerUnavailable if they don't confirm in time, so the
    caller retries rather than trusting a write a failover could still undo."""
    if not target.replicas:
        return
    confirmed = int(client.wait(target.replicas, REPLICA_WAIT_MS))
    if confirmed < target.replicas:
        raise BrokerUnavailable(f"{what}: only {confirmed} of {target.replicas} replica(s) "
                                f"confirmed the write within {REPLICA_WAIT_MS} ms")


def connect(target: RedisTarget) -> Any:
    """A redis-py client (plain, Sentinel-managed or Cluster) for `target`. Returns Any
    because the three client classes share their command methods but no common type."""
    timeouts: dict[str, Any] = {
        "socket_timeout": target.socket_timeout,
        "socket_connect_timeout": min(5.0, target.socket_timeout),
        "health_check_interval": 30,
    }
    auth: dict[str, Any] = {"username": target.username, "password": target.password}
    if target.kind == "single":
        return redis.Redis.from_url(target.server_url, **timeouts)
    if target.kind == "sentinel":
        sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
            list(target.hosts), sentinel_kwargs=timeouts, **timeouts)
        return sentinel.master_for(  # type: ignore[no-untyped-call, unused-ignore]
            target.master, db=target.db, **auth)
    nodes = [ClusterNode(host, port) for host, port in target.hosts]  # type: ignore[no-untyped-call]
    return RedisCluster(startup_nodes=nodes, **auth, **timeouts)


def script(name: str) -> str:
    """The source of `lua/<name>.lua`."""
    return resources.files("conveyor.backends.redis.lua").joinpath(f"{name}.lua").read_text()


def milliseconds(seconds: float) -> int:
    """A TTL in whole milliseconds, at least 1 (Redis rejects 0)."""
    return max(1, int(seconds * 1000))


def mget(client: Any, target: RedisTarget, keys: list[str]) -> list[bytes | None]:
    """GET of many keys in one round trip (on a cluster, one per slot)."""
    if not keys:
        return []
    read = client.mget_nonatomic if target.cluster else client.mget
    return list(call(partial(read, keys), target.url, "Redis"))
