"""Redis connections from Conveyor URLs, shared by the Redis broker and result store.

    redis://[user:password@]host[:port][/db]          one server
    rediss://...                                      the same over TLS
    redis+sentinel://host:port[,host:port...]/master_name[/db]
    redis+cluster://host:port[,host:port...]/         Redis Cluster

Query options: ``namespace`` (key prefix, default ``conveyor``), ``publish_timeout``
(seconds, default 10), ``socket_timeout`` (seconds, default 10); any other option is
passed to redis-py for plain ``redis://`` URLs (``ssl_cert_reqs``, ``ssl_ca_certs``...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from conveyor.config import mask_url
from conveyor.errors import ConfigurationError

OUR_OPTIONS = ("namespace", "publish_timeout", "socket_timeout")


@dataclass(frozen=True)
class RedisTarget:
    url: str
    kind: str  # "single", "sentinel" or "cluster"
    namespace: str = "conveyor"
    publish_timeout: float = 10.0
    socket_timeout: float = 10.0
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
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(target.hosts), sentinel_kwargs=timeouts, **timeouts)
        return sentinel.master_for(  # type: ignore[no-untyped-call]
            target.master, db=target.db, **auth)
    nodes = [ClusterNode(host, port) for host, port in target.hosts]  # type: ignore[no-untyped-call]
    return RedisCluster(startup_nodes=nodes, **auth, **timeouts)
