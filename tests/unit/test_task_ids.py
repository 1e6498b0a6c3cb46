"""Task ids: random, 32 hex digits, and never the same twice, across threads or a fork
(ids are read from a buffer of random bytes, which a forked child must not reuse)."""

from __future__ import annotations

import os
import re
import threading

from conveyor import App
from conveyor.message import new_id


def test_ids_are_32_hex_digits_and_unique_across_threads() -> None:
    ids: list[list[str]] = [[] for _ in range(4)]

    def draw(into: list[str]) -> None:
        into.extend(new_id() for _ in range(2_000))  # several refills of the buffer each

    threads = [threading.Thread(target=draw, args=(mine,)) for mine in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    every = [i for mine in ids for i in mine]
    assert len(set(every)) == len(every) == 8_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in every)


def test_a_forked_child_does_not_hand_out_its_parents_next_ids() -> None:
    new_id()  # the parent's buffer holds unread random bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next ids to the parent, then leave at once
        os.close(read)
        os.write(write, "".join(new_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    parent = "".join(new_id() for _ in range(10))

    assert len(child) == len(parent) == 320
    assert {child[i:i + 32] for i in range(0, 320, 32)}.isdisjoint(
        {parent[i:i + 32] for i in range(0, 320, 32)})


def test_delay_gives_each_task_its_own_id(app: App) -> None:
    @app.task
    def noop() -> None:
        return None

    ids = {noop.delay().id for _ in range(300)}
    assert len(ids) == 300
