"""Accounting for chaos tests: every accepted task must end SUCCESS and have run."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from conveyor import App, AsyncResult, State


def runs(project: Path) -> Counter[str]:
    log = project / "runs.log"
    if not log.exists():
        return Counter()
    return Counter(line.split()[0] for line in log.read_text().splitlines() if line.strip())


def wait_all_succeeded(app: App, results: list[AsyncResult[str]], timeout: float) -> list[str]:
    """Wait until every result is SUCCESS; return the ids still unfinished at the deadline."""
    pending = {r.id for r in results}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = {i for i in pending if app.AsyncResult(i).state is not State.SUCCESS}
        if pending:
            time.sleep(0.2)
    return sorted(pending)


def account(app: App, pending: list[str]) -> str:
    """Where the unfinished tasks are, for the failure message of a chaos test."""
    lines = [f"{len(pending)} task(s) unfinished; queues: {app.broker.stats()}"]
    for task_id in pending[:5]:
        record = app.results.get(task_id)
        lines.append(f"  {task_id}: {record!r}")
    dead = [d for d in app.broker.dead_letters(limit=1000) if d.id in set(pending)]
    lines += [f"  dead: {d.id} {d.reason}" for d in dead[:5]]
    return "\n".join(lines)


def wait_until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
