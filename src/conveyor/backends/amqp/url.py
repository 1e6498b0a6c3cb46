"""RabbitMQ URLs, parsed and checked without importing the driver (`App(...)` runs `check`).

    amqp://user:password@host[:port][/vhost][?options]      plain
    amqps://...                                             TLS

Options: ``namespace`` (prefix of every queue and exchange, default ``conveyor``),
``queue_type`` (``classic``, the default, or ``quorum``), ``publish_timeout`` (seconds a
producer retries while RabbitMQ is unreachable before raising BrokerUnavailable,
default 10), ``heartbeat`` (AMQP heartbeat seconds, default 30), ``consumer_timeout``
(the server's, in seconds, default 1800: a task held for 80% of it is parked, see
parking.py), and for ``amqps://``
``ca_certs``, ``certfile``, ``keyfile`` (paths) and ``verify`` (``true``/``false``).
The vhost is the path, percent-encoded (``/`` is ``%2F``, the default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from conveyor.backends.url_options import check_known, seconds
from conveyor.config import mask_url
from conveyor.errors import ConfigurationError

OPTIONS = ("namespace", "queue_type", "publish_timeout", "heartbeat", "consumer_timeout",
           "ca_certs", "certfile", "keyfile", "verify")
QUEUE_TYPES = ("classic", "quorum")


@dataclass(frozen=True)
class AmqpTarget:
    url: str
    host: str
    port: int
    vhost: str
    username: str = "guest"
    password: str = field(default="guest", repr=False)
    tls: bool = False
    namespace: str = "conveyor"
    queue_type: str = "classic"
    publish_timeout: float = 10.0
    heartbeat: int = 30
    consumer_timeout: float = 1800.0
    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    verify: bool = True


def parse_url(url: str) -> AmqpTarget:
    parts = urlsplit(url)
    where = mask_url(url)
    scheme = parts.scheme.lower()
    if scheme not in ("amqp", "amqps"):
        raise ConfigurationError(f"not a RabbitMQ URL: {where!r}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"bad port in {where!r}: use a number from 1 to 65535, "
                                 "e.g. amqp://guest:guest@127.0.0.1:5672/") from None
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    check_known(options, OPTIONS, where)
    namespace = options.get("namespace", "conveyor")
    if not namespace or not namespace.replace("-", "").replace("_", "").replace(".", "") \
            .isalnum():
        raise ConfigurationError(f"namespace must be letters, digits, '-', '_' or '.': "
                                 f"{namespace!r} in {where!r}")
    queue_type = options.get("queue_type", "classic")
    if queue_type not in QUEUE_TYPES:
        raise ConfigurationError(f"queue_type must be one of {', '.join(QUEUE_TYPES)}, got "
                                 f"{queue_type!r} in {where!r}")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if "/" in path:
        raise ConfigurationError(f"{where!r}: the path is the vhost, percent-encoded "
                                 "(amqp://host/my%2Fvhost); it has a '/' in it")
    tls = scheme == "amqps"
    return AmqpTarget(
        url=url, host=parts.hostname or "127.0.0.1", port=port or (5671 if tls else 5672),
        vhost=unquote(path) or "/", username=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"), tls=tls, namespace=namespace,
        queue_type=queue_type,
        publish_timeout=seconds(options.get("publish_timeout"), "publish_timeout", 10.0, where),
        heartbeat=int(seconds(options.get("heartbeat"), "heartbeat", 30.0, where)),
        consumer_timeout=seconds(options.get("consumer_timeout"), "consumer_timeout", 1800.0,
                                 where),
        ca_certs=options.get("ca_certs"), certfile=options.get("certfile"),
        keyfile=options.get("keyfile"), verify=_flag(options, "verify", where))


def _flag(options: dict[str, str], key: str, where: str) -> bool:
    raw = options.get(key, "true").lower()
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigurationError(f"{key} must be true or false in {where!r}")
    return raw in ("true", "1", "yes")


def check(url: str) -> None:
    """Raise ConfigurationError for a RabbitMQ URL that can't work."""
    parse_url(url)
