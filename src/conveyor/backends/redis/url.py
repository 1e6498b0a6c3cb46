"""Redis URLs, parsed and checked without importing redis-py: `App(...)` checks its URLs
when it is made, in processes (a worker's supervisor) that never load the driver.

    redis://[user:password@]host[:port][/db]          one server
    rediss://...                                      the same over TLS
    redis+sentinel://host:port[,host:port...]/master_name[/db]
    redis+cluster://host:port[,host:port...]/         Redis Cluster

Query options: ``namespace`` (key prefix, default ``conveyor``), ``publish_timeout``
(seconds, default 10), ``socket_timeout`` (seconds, default 10), ``replicas`` (writes
wait for this many replicas, default 0); on plain ``redis://`` and ``rediss://`` URLs,
the connection options of redis-py too (`REDIS_PY_OPTIONS`: ``ssl_cert_reqs``,
``ssl_ca_certs``, ``health_check_interval``...). Anything else is a ConfigurationError
naming the closest option, as are a port or database that isn't a number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from conveyor.backends.url_options import check_known, seconds
from conveyor.config import mask_url
from conveyor.errors import ConfigurationError

OUR_OPTIONS = ("namespace", "publish_timeout", "socket_timeout", "replicas")
REDIS_PY_OPTIONS = (
    "socket_connect_timeout", "socket_keepalive", "socket_read_size", "retry_on_timeout",
    "max_connections", "health_check_interval", "client_name", "protocol",
    "ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_path", "ssl_ca_data", "ssl_certfile",
    "ssl_keyfile", "ssl_password", "ssl_check_hostname", "ssl_min_version", "ssl_ciphers",
    "ssl_validate_ocsp", "ssl_validate_ocsp_stapled",
)


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
        host, _, port = part.rpartition(":") if ":" in part and not part.endswith("]") \
            else (part, "", "")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ConfigurationError(f"bad port {port!r} in {mask_url(url)!r}: use a number "
                                     "from 1 to 65535, e.g. redis://127.0.0.1:6379/0")
        hosts.append((host or "127.0.0.1", int(port) if port else default_port))
    return tuple(hosts)


def _replicas(options: dict[str, str], url: str) -> int:
    raw = options.pop("replicas", "0")
    if not raw.isdigit():
        raise ConfigurationError(f"replicas must be a whole number >= 0 in {mask_url(url)!r}")
    return int(raw)


def parse_url(url: str) -> RedisTarget:
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    namespace = options.pop("namespace", "conveyor")
    if not namespace or any(c in namespace for c in "{}"):
        raise ConfigurationError(f"namespace must be non-empty, without braces: {namespace!r}")
    common: dict[str, Any] = {
        "url": url,
        "namespace": namespace,
        "publish_timeout": seconds(options.pop("publish_timeout", None), "publish_timeout",
                                   10.0, mask_url(url)),
        "socket_timeout": seconds(options.pop("socket_timeout", None), "socket_timeout", 10.0,
                                  mask_url(url)),
        "replicas": _replicas(options, url),
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
    }
    scheme = parts.scheme.lower()
    single = scheme in ("redis", "rediss")
    check_known(options, (*OUR_OPTIONS, *(REDIS_PY_OPTIONS if single else ())), mask_url(url))
    path = [p for p in parts.path.split("/") if p]
    if single:
        _hosts(parts.netloc, url, 6379)  # a port that is no number is an error here
        if len(path) > 1 or (path and not path[0].isdigit()):
            raise ConfigurationError(f"{mask_url(url)!r}: the path is the database number "
                                     f"(redis://host:6379/0), got {parts.path!r}")
        server_url = urlunsplit((scheme, parts.netloc, parts.path, urlencode(options), ""))
        return RedisTarget(kind="single", server_url=server_url,
                           db=int(path[0]) if path else 0, **common)
    if scheme == "redis+sentinel":
        if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
            raise ConfigurationError(f"{mask_url(url)!r} names no master (and, optionally, a "
                                     "database): use redis+sentinel://host:26379/master_name/0")
        db = int(path[1]) if len(path) > 1 else 0
        return RedisTarget(kind="sentinel", hosts=_hosts(parts.netloc, url, 26379),
                           master=path[0], db=db, **common)
    if scheme == "redis+cluster":
        if path:
            raise ConfigurationError(f"{mask_url(url)!r}: a cluster has one database, so the "
                                     "URL has no path: redis+cluster://host:7000/")
        return RedisTarget(kind="cluster", hosts=_hosts(parts.netloc, url, 6379), **common)
    raise ConfigurationError(f"not a Redis URL: {mask_url(url)!r}")


def check(url: str) -> None:
    """Raise ConfigurationError for a Redis URL that can't work (see the module docstring)."""
    parse_url(url)
