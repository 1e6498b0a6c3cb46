"""The page of shared memory through which worker processes tell their supervisor the
deadlines of their running tasks (worker/deadlines.py)."""

from __future__ import annotations

import os

from conveyor.worker.deadlines import Board, Deadlines, Entry


def test_a_forked_child_writes_deadlines_the_parent_reads() -> None:
    board = Board()
    pid = os.fork()
    if pid == 0:  # the worker process
        deadlines: Deadlines[str] = Deadlines(board)
        deadlines.watch("a", 20.0, "a", "task-a", 1)
        deadlines.watch("b", 10.0, "b", "task-b", 3, "terminate")
        os._exit(0)
    os.waitpid(pid, 0)

    assert board.read() == [Entry(10.0, "task-b", 3, "terminate"),
                            Entry(20.0, "task-a", 1, "limit")]


def test_forgetting_a_task_takes_it_off_the_board() -> None:
    board = Board()
    deadlines: Deadlines[str] = Deadlines(board)
    deadlines.watch("a", 5.0, "a", "task-a", 1)
    deadlines.forget("a")

    assert board.read() == []


def test_a_read_that_overlaps_a_write_says_so_instead_of_returning_half_of_it() -> None:
    board = Board()
    board.write([Entry(1.0, "x", 1, "limit")])
    Board._HEAD.pack_into(board._map, 0, 3, 0)  # a writer stopped halfway: odd sequence

    assert board.read() is None


def test_a_board_too_small_for_every_task_keeps_the_soonest_deadlines() -> None:
    board = Board()
    many = [Entry(float(i), "t" * 200 + str(i), 1, "limit") for i in range(1000)]
    board.write(many)

    kept = board.read()
    assert kept is not None and 0 < len(kept) < 1000
    assert kept == many[:len(kept)]
