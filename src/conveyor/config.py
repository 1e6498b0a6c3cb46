"""One typed `Settings`, one precedence: App arguments, `CONVEYOR_*` environment, defaults.

Flask and Django integrations only translate their own configuration into these
arguments. Secrets never leave this module unmasked: `Settings.__repr__` and every
message that names a URL go through `mask_url`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor.errors import ConfigurationError

DEFAULT_BROKER_URL = "sqlite:///conveyor.db"
DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_MAX_MESSAGE_SIZE = 10 * 2**20
DEFAULT_RESULT_TTL = 86400.0

_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@]*):(?P<pw>[^@/]*)@", re.I)


def mask_url(url: str) -> str:
    """Hide the password of a URL: ``redis://u:secret@h`` becomes ``redis://u:***@h``."""
    return _PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)


@dataclass(frozen=True)
class Settings:
    """Everything an App is configured with, already resolved from arguments and environment."""

    name: str
    broker_url: str = DEFAULT_BROKER_URL
    results_url: str | None = None
    signing_keys: tuple[str, ...] = field(default=(), repr=False)
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    result_ttl: float = DEFAULT_RESULT_TTL
    # As given: the App checks them against its middleware's options (conveyor.routing).
    task_defaults: Mapping[str, Any] = field(default_factory=dict, repr=False, hash=False)
    routes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False,
                                                    hash=False)
    # How many tasks a worker process holds (`conveyor worker --prefetch` overrides it);
    # None: the adaptive window (docs/worker.md, "Prefetch").
    worker_prefetch: int | None = None

    def __post_init__(self) -> None:
        if self.max_message_size <= 0:
            raise ConfigurationError(
                f"max_message_size must be a positive number of bytes, got {self.max_message_size}"
            )
        if self.lease_seconds < 1:
            raise ConfigurationError(
                f"lease_seconds must be at least 1 second, got {self.lease_seconds}"
            )
        if self.worker_prefetch is not None and (
                isinstance(self.worker_prefetch, bool) or not isinstance(self.worker_prefetch, int)
                or self.worker_prefetch < 1):
            raise ConfigurationError(f"worker_prefetch must be a whole number of tasks >= 1 "
                                     f"(1 for long tasks), got {self.worker_prefetch!r}")
        if self.result_ttl <= 0:
            raise ConfigurationError(f"result_ttl must be positive, got {self.result_ttl}")
        if "://" not in self.broker_url:
            raise ConfigurationError(
                f"broker URL {mask_url(self.broker_url)!r} has no scheme: "
                "use e.g. sqlite:///conveyor.db, memory://, redis://127.0.0.1:6379/0"
            )

    def __repr__(self) -> str:
        results = mask_url(self.results_url) if self.results_url else None
        return (
            f"Settings(name={self.name!r}, broker_url={mask_url(self.broker_url)!r}, "
            f"results_url={results!r}, signed={bool(self.signing_keys)})"
        )

    @property
    def effective_results_url(self) -> str:
        """Where results live: the given URL, else the broker's own store."""
        return self.results_url or self.broker_url


def _env_float(env: Mapping[str, str], key: str) -> float | None:
    raw = env.get(key)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"${key} must be a number, got {raw!r}") from None


def resolve_settings(
    name: str,
    *,
    broker: str | None = None,
    results: str | None = None,
    signing_key: str | Sequence[str] | None = None,
    max_message_size: int | None = None,
    lease_seconds: float | None = None,
    result_ttl: float | None = None,
    task_defaults: Mapping[str, Any] | None = None,
    routes: Mapping[str, Mapping[str, Any]] | None = None,
    worker_prefetch: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Apply the precedence: explicit argument, then ``CONVEYOR_*`` variable, then default.
    `task_defaults` and `routes` have no variable: they come from code or a framework's
    configuration."""
    env = os.environ if env is None else env
    if isinstance(signing_key, str):
        keys: tuple[str, ...] = (signing_key,)
    elif signing_key is not None:
        keys = tuple(signing_key)
    else:
        keys = tuple(k for k in env.get("CONVEYOR_SIGNING_KEY", "").split(",") if k)
    if any(not isinstance(k, str) or not k for k in keys):
        raise ConfigurationError("signing_key must be a non-empty string or a list of them")
    size = max_message_size or _env_float(env, "CONVEYOR_MAX_MESSAGE_SIZE")
    lease = lease_seconds or _env_float(env, "CONVEYOR_LEASE_SECONDS")
    ttl = result_ttl or _env_float(env, "CONVEYOR_RESULT_TTL")
    prefetch = worker_prefetch if worker_prefetch is not None else _env_float(
        env, "CONVEYOR_WORKER_PREFETCH")
    if isinstance(prefetch, float):
        if not prefetch.is_integer():
            raise ConfigurationError(f"$CONVEYOR_WORKER_PREFETCH must be a whole number of "
                                     f"tasks, got {prefetch}")
        prefetch = int(prefetch)
    return Settings(
        name=name,
        broker_url=broker or env.get("CONVEYOR_BROKER_URL") or DEFAULT_BROKER_URL,
        results_url=results or env.get("CONVEYOR_RESULTS_URL") or None,
        signing_keys=keys,
        max_message_size=int(size) if size else DEFAULT_MAX_MESSAGE_SIZE,
        lease_seconds=lease or DEFAULT_LEASE_SECONDS,
        result_ttl=ttl or DEFAULT_RESULT_TTL,
        task_defaults={} if task_defaults is None else task_defaults,
        routes={} if routes is None else routes,
        worker_prefetch=prefetch,
    )
