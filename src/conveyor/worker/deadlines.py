"""Hard deadlines: which running tasks are past the `Execution.deadline` a middleware set
(`time_limit=` does, in `TimeLimits`), or past the grace a terminated task gets.

Stopping a task for sure means replacing its process: the worker records the overdue
task's end, hands every other unfinished task back at once, and exits with
`EXIT_HARD_LIMIT`; the supervisor forks a fresh process. See `Worker._enforce_deadlines`.

That needs the worker's own heartbeat thread to run, and a task holding the GIL inside C
code (`sum(range(10**13))`) stops every thread of its process. So the deadlines are also
written to a `Board`, a page of memory shared with the supervisor, which replaces a
process whose deadline passed `STUCK_GRACE` seconds ago (worker/supervisor.py).
`time.monotonic()` is one clock for every process of a host, so both read the same times.

Light on purpose: the supervisor imports this module.
"""

from __future__ import annotations

import json
import mmap
import struct
import threading
import time
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")  # what is watched: the executor's (prepared delivery, execution) pairs

EXIT_HARD_LIMIT = 70  # a worker process replaced itself to stop a task over its time_limit
STUCK_GRACE = 3.0  # past a deadline by this much, the process can't act: the supervisor does


class Entry(NamedTuple):
    """A watched task, as the supervisor sees it. `kind` says why it has a deadline:
    "limit" (its hard time limit) or "terminate" (asked to stop, given a short grace)."""

    deadline: float
    task_id: str
    attempt: int
    kind: str


def _encode(entries: list[Entry]) -> bytes:
    # The standard json module, not msgspec: the supervisor reads boards and imports
    # nothing else of ours that needs msgspec, which would add 5 MB to it.
    return json.dumps(entries, separators=(",", ":")).encode()


class Board:
    """Shared memory (mapped before fork) holding one process's `Entry`s: a sequence
    number (odd while a write is under way), a length and the entries as JSON. The
    worker writes it when the deadlines change; the supervisor reads it every tick and
    skips a read that overlapped a write (it reads again 0.1 s later)."""

    SIZE = 1 << 16
    _HEAD = struct.Struct("=QI")

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, self.SIZE)  # anonymous and shared: survives fork()
        self._seq = 0

    def write(self, entries: list[Entry]) -> None:
        room = self.SIZE - self._HEAD.size
        entries = sorted(entries)
        data = _encode(entries)
        while len(data) > room:  # keep the soonest deadlines: those matter first
            entries = entries[: len(entries) // 2]
            data = _encode(entries)
        self._seq += 1
        self._HEAD.pack_into(self._map, 0, self._seq, 0)
        self._map[self._HEAD.size:self._HEAD.size + len(data)] = data
        self._seq += 1
        self._HEAD.pack_into(self._map, 0, self._seq, len(data))

    def read(self) -> list[Entry] | None:
        """The entries, or None when a write was under way."""
        seq, size = self._HEAD.unpack_from(self._map, 0)
        if seq % 2:
            return None
        data = self._map[self._HEAD.size:self._HEAD.size + size]
        if self._HEAD.unpack_from(self._map, 0)[0] != seq:
            return None
        if not data:
            return []
        return [Entry(*e) for e in json.loads(data)]

    def close(self) -> None:
        self._map.close()


class Deadlines(Generic[T]):
    def __init__(self, board: Board | None = None) -> None:
        self._running: dict[int, tuple[float, T, Entry]] = {}
        self._lock = threading.Lock()
        self.board = board  # set when a supervisor watches this process

    def watch(self, key: object, deadline: float | None, item: T, task_id: str = "",
              attempt: int = 0, kind: str = "limit") -> None:
        """Watch `item` until `forget(key)`, if it has a `deadline` (`time.monotonic()`);
        watching a key again moves its deadline."""
        if deadline is not None:
            with self._lock:
                self._running[id(key)] = (deadline, item,
                                          Entry(deadline, task_id, attempt, kind))
                self._publish()

    def forget(self, key: object) -> None:
        if id(key) in self._running:  # most tasks have no deadline: no lock for them
            with self._lock:
                if self._running.pop(id(key), None) is not None:
                    self._publish()

    def overdue(self) -> list[T]:
        now = time.monotonic()
        with self._lock:
            return [item for deadline, item, _ in self._running.values() if deadline <= now]

    def _publish(self) -> None:
        if self.board is not None:
            self.board.write([entry for _, _, entry in self._running.values()])
