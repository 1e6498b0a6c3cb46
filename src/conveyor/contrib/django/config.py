"""``settings.CONVEYOR``: the Django way of giving an App its arguments.

    CONVEYOR = {
        "APP": "proj.conveyor:app",            # where manage.py and the backend find it
        "BROKER_URL": "redis://127.0.0.1:6379/0",
        "RESULTS_URL": "django://",            # results in the Django database
        "ENQUEUE_ON_COMMIT": True,             # every delay() in a transaction waits for it
        "TASK_DEFAULTS": {"retries": 3},       # and "ROUTES": docs/routing.md
    }

A key left out falls back to the ``CONVEYOR_*`` environment variable of the same name,
then to the default, as for a plain App; an unknown key is an error naming the closest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conveyor.errors import ConfigurationError, did_you_mean

# settings.CONVEYOR key -> App argument
APP_KEYS: dict[str, str] = {
    "BROKER_URL": "broker",
    "RESULTS_URL": "results",
    "SIGNING_KEY": "signing_key",
    "MAX_MESSAGE_SIZE": "max_message_size",
    "LEASE_SECONDS": "lease_seconds",
    "RESULT_TTL": "result_ttl",
    "TASK_DEFAULTS": "task_defaults",
    "ROUTES": "routes",
    "WORKER_PREFETCH": "worker_prefetch",
}
OTHER_KEYS = ("APP", "NAME", "BEAT_SCHEDULE", "ENQUEUE_ON_COMMIT")
KEYS = (*APP_KEYS, *OTHER_KEYS)


@dataclass(frozen=True)
class DjangoConfig:
    app_path: str | None = None
    name: str | None = None
    app_options: dict[str, Any] = field(default_factory=dict)
    beat_schedule: Mapping[str, Mapping[str, Any]] | None = None
    enqueue_on_commit: bool = False


def parse(raw: object) -> DjangoConfig:
    """Check and translate the value of ``settings.CONVEYOR``."""
    if raw is None:
        return DjangoConfig()
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"settings.CONVEYOR must be a dict, got {raw!r}")
    for key in raw:
        if key not in KEYS:
            hint = did_you_mean(key, KEYS)
            raise ConfigurationError(f"settings.CONVEYOR[{key!r}] is not a Conveyor "
                                     f"setting{hint} (they are: {', '.join(KEYS)})")
    app_path = raw.get("APP")
    if app_path is not None and (not isinstance(app_path, str) or ":" not in app_path):
        raise ConfigurationError("settings.CONVEYOR['APP'] must be 'module:attribute', e.g. "
                                 f"'proj.conveyor:app', got {app_path!r}")
    on_commit = raw.get("ENQUEUE_ON_COMMIT", False)
    if not isinstance(on_commit, bool):
        raise ConfigurationError("settings.CONVEYOR['ENQUEUE_ON_COMMIT'] must be True or "
                                 f"False, got {on_commit!r}")
    return DjangoConfig(
        app_path=app_path,
        name=raw.get("NAME"),
        app_options={APP_KEYS[k]: v for k, v in raw.items() if k in APP_KEYS and v is not None},
        beat_schedule=raw.get("BEAT_SCHEDULE"),
        enqueue_on_commit=on_commit,
    )


def from_settings() -> DjangoConfig:
    from django.conf import settings

    return parse(getattr(settings, "CONVEYOR", None))
