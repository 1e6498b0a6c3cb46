"""The runtime schedules as the leading beat sees them (lifecycle/schedule_store.py).

The beat hands each pass the stored value, already fetched in the same round trip as
the rest of what the pass reads; this keeps what it can publish. Decoding and checking
an entry happens only when its stored form changes, so an unchanged set costs a string
comparison per pass.

A bad entry (its task's signature changed since it was added, a value written by hand)
is logged and left out: one operator's mistake never stops the beat, nor the other
schedules. An entry whose task this beat's App hasn't registered is published by name,
as `send_task` would: the workers may know it (if none does, its ticks end FAILURE and
are kept in the dead-letter store). An entry with the name of a schedule in code is left
out: the one in code runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

from conveyor.errors import ConveyorError
from conveyor.lifecycle.schedule_store import StoredSchedule, decode
from conveyor.periodic import PeriodicTask

logger = logging.getLogger("conveyor.beat")


class RuntimeEntries:
    """The active (not paused) runtime schedules, refreshed from the stored value.

    `check(entry)` raises ConveyorError for an entry the beat can't publish; `code` are
    the names of the schedules in code."""

    def __init__(self, check: Callable[[PeriodicTask], None], code: Collection[str]) -> None:
        self.check = check
        self.code = frozenset(code)
        self.active: dict[str, PeriodicTask] = {}
        self.since: dict[str, float] = {}  # no tick at or before this fires
        self._raw: str | None = None
        self._stored: dict[str, StoredSchedule] = {}

    def refresh(self, raw: str | None) -> bool:
        """Take the stored value `raw`; True if the active entries changed."""
        if raw == self._raw:
            return False
        try:
            stored = decode(raw)
        except ConveyorError as exc:
            logger.error("runtime schedules unchanged: %s", exc)
            self._raw = raw  # said once, not every pass
            return False
        self._raw = raw
        active: dict[str, PeriodicTask] = {}
        for name, kept in stored.items():
            entry = self._entry(name, kept)
            if entry is not None:
                active[name] = entry
        self._log_changes(stored, active)
        # In order: the beat reads the entries' last runs in this order.
        changed = list(active) != list(self.active) or any(
            self._stored.get(name) != stored[name] for name in active)
        self.active, self._stored = active, stored
        self.since = {name: stored[name].since for name in active}
        return changed

    def _entry(self, name: str, kept: StoredSchedule) -> PeriodicTask | None:
        if kept.paused:
            return None
        if name in self.code:
            if self._stored.get(name) != kept:
                logger.warning("runtime schedule %s is ignored: a schedule in code has "
                               "its name (remove it: conveyor schedule remove)", name)
            return None
        if self._stored.get(name) == kept and name in self.active:
            return self.active[name]
        try:
            entry = kept.entry(name)
            self.check(entry)
        except ConveyorError as exc:
            logger.error("runtime schedule %s is left out: %s", name, exc)
            return None
        return entry

    def _log_changes(self, stored: dict[str, StoredSchedule],
                     active: dict[str, PeriodicTask]) -> None:
        for name in sorted(self._stored.keys() | stored.keys()):
            old, new = self._stored.get(name), stored.get(name)
            if old == new:
                continue
            if new is None:
                what = "removed"
            elif old is None:
                what = "added" if name in active else "added, not active"
            elif old.paused != new.paused:
                what = "paused" if new.paused else "resumed"
            else:
                what = "changed"
            logger.info("runtime schedule %s %s", name, what)
