"""Query options of a server URL, checked alike by every backend that takes them
(redis/url.py, amqp/url.py): an unknown option names the closest known one, and a time
is a positive number of seconds. `where` is the URL as messages show it (masked)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from conveyor.errors import ConfigurationError, did_you_mean


def check_known(options: Iterable[str], known: Sequence[str], where: str) -> None:
    for key in options:
        if key not in known:
            raise ConfigurationError(f"unknown option {key!r}{did_you_mean(key, known)} in "
                                     f"{where!r} (known: {', '.join(known)})")


def seconds(raw: str | None, key: str, default: float, where: str) -> float:
    """The option's value in seconds (`default` when absent); positive and a number."""
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{key} must be a number of seconds in {where!r}") from None
    if not value > 0:  # NaN too
        raise ConfigurationError(f"{key} must be positive in {where!r}")
    return value
