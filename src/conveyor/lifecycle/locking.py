"""A short claim around a read-modify-write of one coordination value.

Cluster-wide sets kept as one value (the paused queues, the runtime schedules) are
changed by reading the value, changing it and writing it back. Two operators doing that
at once would each write what they read, and one change would be lost; the claim makes
them take turns. Readers never take it: `put` replaces a value whole, so a reader sees
either the old set or the new one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from conveyor.errors import BrokerUnavailable
from conveyor.store import Coordination

LOCK_TTL = 10.0  # a changer that died frees the lock after this


@contextmanager
def locked(coordination: Coordination, lock: str, what: str) -> Iterator[None]:
    """Hold the claim `lock` for the body. Raises BrokerUnavailable, naming `what` was
    being changed, if another holder keeps it far past its lease."""
    owner = uuid.uuid4().hex
    deadline = time.monotonic() + 2 * LOCK_TTL
    while coordination.claim(lock, owner, LOCK_TTL) != owner:
        if time.monotonic() > deadline:  # held far past its lease: someone keeps renewing
            raise BrokerUnavailable(f"can't change {what}: {lock!r} stays held")
        time.sleep(0.02)
    try:
        yield
    finally:
        coordination.release(lock, owner)
