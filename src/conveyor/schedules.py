"""`cron()` and `every()`: when a periodic task's ticks fall. Pure computation, no I/O.

A schedule answers two questions about Unix timestamps: the first tick strictly after
`t`, and the last tick at or before `t`. Any number of beats compute the same ticks with
no shared state: `every()` is aligned to the Unix epoch (every(minutes=5) fires at :00,
:05, ... UTC), `cron()` is evaluated on the wall clock of its time zone.

croniter (about 8 MB and 70 ms to import) is loaded only to compute ticks, i.e. in the
beat and in `conveyor status`, never in a worker that merely imports the schedules; so
`cron()` checks the common syntax itself, and croniter checks the rest when first used.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from conveyor.errors import ConfigurationError

if TYPE_CHECKING:  # zoneinfo is imported where a zone is made: a MB a process otherwise
    from zoneinfo import ZoneInfo


class Schedule(Protocol):
    """What the beat needs from a schedule (`Cron` and `Every` implement it)."""

    @property
    def zone(self) -> ZoneInfo: ...

    def check(self) -> None:
        """Raise ConfigurationError if the schedule can't compute ticks."""

    def next_after(self, t: float) -> float:
        """The first tick strictly after Unix time `t`."""

    def last_at_or_before(self, t: float) -> float:
        """The last tick at or before Unix time `t`."""


def ticks_between(schedule: Schedule, start: float, end: float, limit: int) -> list[float]:
    """The ticks in (start, end], oldest first; at most the last `limit` of them."""
    if end <= start:
        return []
    found: list[float] = []
    tick = schedule.next_after(start)
    while tick <= end:
        found.append(tick)
        if len(found) > limit:
            del found[0]
        tick = schedule.next_after(tick)
    return found


# -- every() ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Every:
    """Every `seconds` seconds, at the multiples of `seconds` since the Unix epoch."""

    seconds: int

    def __post_init__(self) -> None:
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, int) \
                or self.seconds < 1:
            raise ConfigurationError(
                f"every() needs a whole number of seconds of at least 1, got {self.seconds!r}")

    def __str__(self) -> str:
        parts, rest = [], self.seconds
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
            if rest >= size:
                parts.append(f"{rest // size}{unit}")
                rest %= size
        return "every " + "".join(parts)

    @property
    def zone(self) -> ZoneInfo:
        from zoneinfo import ZoneInfo

        return ZoneInfo("UTC")

    def check(self) -> None:
        """Always valid once built."""

    def next_after(self, t: float) -> float:
        return float((math.floor(t / self.seconds) + 1) * self.seconds)

    def last_at_or_before(self, t: float) -> float:
        return float(math.floor(t / self.seconds) * self.seconds)


def every(days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> Every:
    """A fixed interval, aligned to the Unix epoch so every beat agrees on the ticks:
    ``every(minutes=5)`` fires at :00, :05, :10 ... UTC, ``every(days=1)`` at 00:00 UTC.
    For wall-clock times in a time zone, use `cron`.

    Raises ConfigurationError unless the total is a whole number of seconds, at least 1.
    """
    parts = {"days": days, "hours": hours, "minutes": minutes, "seconds": seconds}
    for name, value in parts.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 \
                or not math.isfinite(value):
            raise ConfigurationError(f"every({name}=...) must be a number >= 0, got {value!r}")
    total = days * 86400 + hours * 3600 + minutes * 60 + seconds
    whole = round(total)
    if whole < 1 or abs(total - whole) > 1e-6:
        raise ConfigurationError(
            f"every() needs a whole number of seconds of at least 1, got {total:g} s "
            f"(days={days}, hours={hours}, minutes={minutes}, seconds={seconds})")
    return Every(whole)


_SPAN = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_every(text: str) -> Every:
    """`every()` from what an operator types: ``30s``, ``5m``, ``1h30m``, ``2d`` or a
    bare number of seconds (`conveyor schedule add --every`, the Django admin).

    Raises ConfigurationError for anything else.
    """
    value = text.strip().lower() if isinstance(text, str) else ""
    if value.isdigit():
        return every(seconds=int(value))
    if not value or _SPAN.sub("", value):
        raise ConfigurationError(f"every {text!r}: use a number of seconds or spans such as "
                                 "30s, 5m, 1h30m, 2d")
    return every(seconds=sum(int(n) * _UNITS[unit] for n, unit in _SPAN.findall(value)))


# -- cron() ----------------------------------------------------------------------------

ALIASES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
           "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@hourly": "0 * * * *"}
_MONTHS = {m: i for i, m in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}
_DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS), ("day of week", 0, 7, _DAYS))
_PART = re.compile(r"^(?:\*|(\w+)(?:-(\w+))?)(?:/(\d+))?$")
_EXTENSIONS = re.compile(r"[LW#?]")  # croniter's extras (last day, nearest weekday, ...)


def _check_value(expression: str, text: str, spec: tuple[str, int, int, dict[str, int]]) -> None:
    name, low, high, names = spec
    number = int(text) if text.isdigit() else names.get(text.lower())
    if number is None:
        raise ConfigurationError(f"cron {expression!r}: {text!r} is not a valid {name}")
    if not low <= number <= high:
        raise ConfigurationError(f"cron {expression!r}: {name} {text!r} is out of range "
                                 f"{low}-{high}")


def _check_field(expression: str, text: str, spec: tuple[str, int, int, dict[str, int]]) -> None:
    if _EXTENSIONS.search(text):
        return  # croniter checks these when the schedule is first used
    for part in text.split(","):
        match = _PART.match(part)
        if match is None:
            raise ConfigurationError(f"cron {expression!r}: can't read {part!r} in the "
                                     f"{spec[0]} field (use *, N, N-M, */S, N-M/S or lists "
                                     "of them)")
        start, stop, step = match.groups()
        for value in (start, stop):
            if value is not None:
                _check_value(expression, value, spec)
        if step is not None and int(step) < 1:
            raise ConfigurationError(f"cron {expression!r}: a step must be at least 1")


@dataclass(frozen=True)
class Cron:
    """A cron expression (5 fields: minute hour day-of-month month day-of-week, or an
    @alias such as @daily) evaluated on the wall clock of time zone `tz`.

    DST follows cron(8): a time skipped by a spring-forward runs at the first minute
    after the jump; a fixed time repeated by a fall-back (``30 2 * * *``) runs once,
    while an expression whose hour field is ``*`` or ``*/N`` keeps firing in real time.
    """

    expression: str
    tz: str = "UTC"
    _fields: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.expression, str):
            raise ConfigurationError(f"cron() takes a string, got {self.expression!r}")
        text = ALIASES.get(self.expression.strip().lower(), self.expression)
        fields = tuple(text.split())
        if len(fields) != 5:
            raise ConfigurationError(
                f"cron {self.expression!r}: a cron expression has 5 fields (minute hour "
                f"day-of-month month day-of-week) or is one of {', '.join(ALIASES)}")
        for text_field, spec in zip(fields, FIELDS, strict=True):
            _check_field(self.expression, text_field, spec)
        object.__setattr__(self, "_fields", fields)
        self.zone  # noqa: B018 - an unknown time zone fails here, at definition

    def __str__(self) -> str:
        return f"cron {self.expression}" + (f" ({self.tz})" if self.tz != "UTC" else "")

    @cached_property
    def zone(self) -> ZoneInfo:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            return ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ConfigurationError(
                f"cron {self.expression!r}: unknown time zone {self.tz!r} (use an IANA "
                "name such as 'UTC' or 'Europe/Paris')") from None

    def check(self) -> None:
        from croniter import croniter  # type: ignore[import-untyped]

        if not croniter.is_valid(" ".join(self._fields)):
            raise ConfigurationError(f"cron {self.expression!r}: not a valid cron expression")

    def _iterate(self, t: float) -> Any:
        """A croniter (untyped) positioned at `t`."""
        from croniter import croniter

        return croniter(" ".join(self._fields), datetime.fromtimestamp(t, self.zone))

    def _repeated(self, moment: datetime) -> bool:
        """The second pass of a wall time that a fall-back repeats, for a fixed hour."""
        return (moment.fold == 1 and not self._fields[1].startswith("*")
                and moment.replace(fold=0).utcoffset() != moment.utcoffset())

    def next_after(self, t: float) -> float:
        found = self._iterate(t)
        while True:
            moment: datetime = found.get_next(datetime)
            if not self._repeated(moment):
                return moment.timestamp()

    def last_at_or_before(self, t: float) -> float:
        found = self._iterate(math.floor(t) + 1)  # ticks fall on whole minutes
        while True:
            moment: datetime = found.get_prev(datetime)
            if not self._repeated(moment):
                return moment.timestamp()


def cron(expression: str, tz: str = "UTC") -> Cron:
    """Ticks of a cron expression on the wall clock of `tz` (an IANA name, default UTC):
    ``cron("*/5 * * * *")``, ``cron("0 3 * * mon-fri", tz="Europe/Paris")``, ``cron("@daily")``.

    Raises ConfigurationError naming the problem: wrong number of fields, a value out of
    range, an unknown time zone.
    """
    return Cron(expression, tz)


def to_schedule(value: Any, where: str) -> Schedule:
    """A schedule from config: `cron(...)`/`every(...)`, a cron string (UTC), seconds, or
    a timedelta. `where` names the entry in the error."""
    if isinstance(value, Cron | Every):
        return value
    if isinstance(value, str):
        return cron(value)
    if isinstance(value, timedelta):
        return every(seconds=value.total_seconds())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return every(seconds=value)
    raise ConfigurationError(
        f"{where}: schedule must be cron(...), every(...), a cron string or a number of "
        f"seconds, got {value!r}")


def show_time(t: float | None, zone: ZoneInfo, now: float) -> str:
    """``2026-11-23 03:00:00 CET (in 2h)`` for `conveyor status`."""
    if t is None:
        return "-"
    moment = datetime.fromtimestamp(t, zone if zone.key != "UTC" else UTC)
    seconds = int(abs(t - now))
    span = (f"{seconds}s" if seconds < 120 else f"{seconds // 60}m" if seconds < 7200
            else f"{seconds // 3600}h" if seconds < 172800 else f"{seconds // 86400}d")
    return f"{moment:%Y-%m-%d %H:%M:%S %Z} ({'in ' + span if t > now else span + ' ago'})"
