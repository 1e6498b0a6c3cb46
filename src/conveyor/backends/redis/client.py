"""Redis connections from Conveyor URLs, shared by the Redis broker, result store and
coordination, and the Lua scripts they run (`lua/`, key schema in `lua/README.md`).

    redis://[user:password@]host[:port][/db]          one server
    rediss://...                                      the same over TLS
    redis+sentinel://host:port[,host:port...]/master_name[/db]
    redis+cluster://host:port[,host:port...]/         Redis Cluster

Query options: ``namespace`` (key prefix, default ``conveyor``), ``publish_timeout``
(seconds, default 10), ``socket_timeout`` (seconds, default 10), ``replicas`` (writes
wait for this many replicas, default 0); any other option is passed to redis-py for
plain ``redis://`` URLs (``ssl_cert_reqs``, ``ssl_ca_certs``...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from conveyor.config import mask_url
from conveyor.errors import BrokerUnavailable, ConfigurationError

T = TypeVar("T")
OUR_OPTIONS = ("namespace", "publish_timeout", "socket_timeout", "replicas")
REPLICA_WAIT_MS = 1000  # how long one write waits for its replicas before it counts as failed


@dataclass(frozen=True)
class RedisTarget:
    url: str
    kind: str  # "single", "sentinel" or "cluster"
    namespace: str = "conveyor"
    publish_timeout: float = 10.0
    socket_timeout: float = 10.0
    replicas: int = 0  # writes count only once this many replicas confirm them (WAIT)
    server_url: str = ""  # for "single": the URL redis-py understands
    hosts: tuple[tuple[str, int], ...] = ()
    master: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def cluster(self) -> bool:
        return self.kind == "cluster"


def _hosts(netloc: str, url: str, default_port: int) -> tuple[tuple[str, int], ...]:
    hosts = []
    for part in netloc.rpartition("@")[2].split(","):
        host, _, port = part.rpartition(":") if ":" in part else (part, "", "")
        try:
            hosts.append((host or "127.0.0.1", int(port) if port else default_port))
        except ValueError:
            raise ConfigurationError(f"bad host:port {part!r} in {mask_url(url)!r}") from None
    return tuple(hosts)


def _float(options: dict[str, str], key: str, default: float, url: str) -> float:
    try:
        value = float(options.pop(key, default))
    except ValueError:
        raise ConfigurationError(f"{key} must be a number of seconds in {mask_url(url)!r}") \
            from None
    if value <= 0:
        raise ConfigurationError(f"{key} must be positive in {mask_url(url)!r}")
    return value


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
    except redis.ResponseError as exc:
        if str(exc).startswith(TRANSIENT_REPLIES):
            raise BrokerUnavailable(f"{what} at {mask_url(url)} can't take writes now: "
                                    f"{exc}") from exc
        raise


def _replicas(options: dict[str, str], url: str) -> int:
    raw = options.pop("replicas", "0")
    if not raw.isdigit():
        raise ConfigurationError(f"replicas must be a whole number >= 0 in {mask_url(url)!r}")
    return int(raw)


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


def parse_url(url: str) -> RedisTarget:
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    namespace = options.pop("namespace", "conveyor")
    if not namespace or any(c in namespace for c in "{}"):
        raise ConfigurationError(f"namespace must be non-empty, without braces: {namespace!r}")
    common: dict[str, Any] = {
        "url": url,
        "namespace": namespace,
        "publish_timeout": _float(options, "publish_timeout", 10.0, url),
        "socket_timeout": _float(options, "socket_timeout", 10.0, url),
        "replicas": _replicas(options, url),
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
    }
    scheme = parts.scheme.lower()
    if scheme in ("redis", "rediss"):
        server_url = urlunsplit((scheme, parts.netloc, parts.path, urlencode(options), ""))
        return RedisTarget(kind="single", server_url=server_url, **common)
    path = [p for p in parts.path.split("/") if p]
    if options:
        raise ConfigurationError(f"unknown option(s) {sorted(options)} in {mask_url(url)!r}")
    if scheme == "redis+sentinel":
        if not path:
            raise ConfigurationError(f"{mask_url(url)!r} names no master: use "
                                     "redis+sentinel://host:26379/master_name/0")
        db = int(path[1]) if len(path) > 1 else 0
        return RedisTarget(kind="sentinel", hosts=_hosts(parts.netloc, url, 26379),
                           master=path[0], db=db, **common)
    if scheme == "redis+cluster":
        return RedisTarget(kind="cluster", hosts=_hosts(parts.netloc, url, 6379), **common)
    raise ConfigurationError(f"not a Redis URL: {mask_url(url)!r}")


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
