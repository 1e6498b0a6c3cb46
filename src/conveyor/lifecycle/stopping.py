"""Stopping tasks that already run: `revoke(terminate=True)`, and hard time limits that a
stuck worker process could not enforce itself.

Both leave a mark in the coordination store, keyed by task id, that outlives the process
running the task:

- `terminate:<id>`: someone asked the task to stop. The worker holding it reads the marks
  of what it holds every `POLL` seconds (one round trip) and stops it; a worker that
  gets the message redelivered (its first holder died) ends it REVOKED unrun.
- `overdue:<id>` = attempt: that attempt ran past its hard time limit in a process the
  supervisor had to kill (a task holding the GIL inside C code stops every thread of its
  process, the one enforcing limits too). The redelivered message ends that attempt with
  TimeLimitExceeded, retried as the task says, instead of running it again.

Marks expire after `KEEP`: a redelivery comes within a lease, long before.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from conveyor.store import Coordination

KEEP = 86400.0
POLL = 0.5  # seconds between two reads of the terminate marks by a busy worker process
TERMINATED = "terminated while running (revoke(terminate=True))"


def _terminate_key(task_id: str) -> str:
    return f"terminate:{task_id}"


def _overdue_key(task_id: str) -> str:
    return f"overdue:{task_id}"


def request_termination(coordination: Coordination, task_ids: Sequence[str]) -> None:
    """Ask whichever worker runs (or will get) these tasks to stop them."""
    for task_id in task_ids:
        coordination.put(_terminate_key(task_id), "1", KEEP)


def termination_requested(coordination: Coordination, task_ids: Collection[str]) -> set[str]:
    """Which of these tasks someone asked to stop (one round trip)."""
    ids = list(task_ids)
    values = coordination.fetch([_terminate_key(i) for i in ids])
    return {task_id for task_id, value in zip(ids, values, strict=True) if value is not None}


def mark_overdue(coordination: Coordination, task_id: str, attempt: int) -> None:
    """Record that `attempt` of the task ran past its hard time limit and was killed."""
    coordination.put(_overdue_key(task_id), str(attempt), KEEP)


def after_death(coordination: Coordination, task_id: str, attempt: int) -> str | None:
    """For a redelivered message: "terminate" if it must end REVOKED unrun, "overdue" if
    this attempt already ran out its hard time limit, else None (run it again)."""
    terminate, overdue = coordination.fetch([_terminate_key(task_id), _overdue_key(task_id)])
    if terminate is not None:
        return "terminate"
    if overdue == str(attempt):
        return "overdue"
    return None
