"""The embedded default backend (``sqlite:///conveyor.db``): broker, result store and
coordination in one SQLite file, shared by several processes, no server (docs/sqlite.md)."""

from __future__ import annotations

from conveyor.backends.sqlite.broker import SQLiteBroker
from conveyor.backends.sqlite.coordination import SQLiteCoordination
from conveyor.backends.sqlite.db import check
from conveyor.backends.sqlite.results import SQLiteResultStore

__all__ = ["SQLiteBroker", "SQLiteCoordination", "SQLiteResultStore", "check", "open_broker",
           "open_coordination", "open_results"]


def open_broker(url: str, lease_seconds: float) -> SQLiteBroker:
    return SQLiteBroker(url, lease_seconds)


def open_results(url: str) -> SQLiteResultStore:
    return SQLiteResultStore(url)


def open_coordination(url: str) -> SQLiteCoordination:
    return SQLiteCoordination(url)
