"""The in-process backend (``memory://``): broker, result store and coordination held in
this process's memory, with the real brokers' semantics (leases, schedule, priorities,
dead letters). For users' unit tests and `conveyor.testing`: nothing survives the
process, and other processes can't see it."""

from __future__ import annotations

from conveyor.backends.memory.broker import MemoryBroker
from conveyor.backends.memory.coordination import MemoryCoordination
from conveyor.backends.memory.results import MemoryResultStore

__all__ = ["MemoryBroker", "MemoryCoordination", "MemoryResultStore", "open_broker",
           "open_coordination", "open_results"]


def open_broker(url: str, lease_seconds: float) -> MemoryBroker:
    return MemoryBroker(url, lease_seconds)


def open_results(url: str) -> MemoryResultStore:
    return MemoryResultStore(url)


def open_coordination(url: str) -> MemoryCoordination:
    return MemoryCoordination(url)
