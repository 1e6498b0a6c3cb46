"""Paused queues: cluster-wide, kept in the App's coordination store, so every worker of
every host sees them (`App.pause`, `App.resume` and `App.paused` are these, handed
`app.coordination`).

The set is one value, `queues:paused` (a JSON list of names), written with `put` and read
with `fetch`: one round trip for a worker to learn it. Changes read, modify and write it
under a short claim (`queues:paused:lock`), so two operators pausing two queues at once
both win. Queues are the broker's, not an App's: two Apps on one broker and store share
their queues, and so their pauses. The value is kept for a century: a pause lasts until
someone resumes the queue.
"""

from __future__ import annotations

import msgspec

from conveyor.lifecycle.locking import locked
from conveyor.options import check_queue
from conveyor.store import Coordination

KEY = "queues:paused"
LOCK = "queues:paused:lock"
KEEP = 100 * 365 * 86400.0  # until resumed
_decode = msgspec.json.Decoder(list[str])


def paused(coordination: Coordination) -> set[str]:
    """The names of the paused queues (one round trip)."""
    return decode(coordination.fetch([KEY])[0])


def pause(coordination: Coordination, queue: str) -> bool:
    """Pause `queue`; False if it was paused already."""
    return _change(coordination, queue, paused=True)


def resume(coordination: Coordination, queue: str) -> bool:
    """Resume `queue`; False if it wasn't paused."""
    return _change(coordination, queue, paused=False)


def decode(raw: str | None) -> set[str]:
    """The set a stored value holds; an absent or unreadable one holds none (a value
    nobody can read must not stop every worker of the cluster)."""
    if raw is None:
        return set()
    try:
        return set(_decode.decode(raw))
    except msgspec.DecodeError:
        return set()


def _change(coordination: Coordination, queue: str, paused: bool) -> bool:
    check_queue(queue)
    with locked(coordination, LOCK, "the paused queues"):
        names = decode(coordination.fetch([KEY])[0])
        if (queue in names) == paused:
            return False
        names = names | {queue} if paused else names - {queue}
        coordination.put(KEY, msgspec.json.encode(sorted(names)).decode(), KEEP)
        return True

