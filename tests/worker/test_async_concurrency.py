"""`async def` tasks run many at once per process, beyond its threads and prefetch, up to
`--async-concurrency`: a task awaiting the network costs only memory."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest

from tests.conftest import WorkerProcess

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.parametrize("project", ["sqlite", "redis"], indirect=True),
]
Start = Callable[..., WorkerProcess]


def most_at_once(spans: list[list[float]]) -> int:
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def test_async_tasks_run_up_to_their_own_concurrency_not_the_threads(
    tasks: ModuleType, start_worker: Start
) -> None:
    # Given one process with 2 threads (a prefetch of 4) and room for 30 async tasks
    start_worker("-p", "1", "-t", "2", "--async-concurrency", "30")

    # When 120 tasks each await half a second
    results = tasks.async_nap.map([(0.5,) for _ in range(120)])
    spans = [r.get(timeout=60) for r in results]

    # Then far more than 4 ran at once, and never more than the setting (plus one
    # reserve's worth of tasks taken while under it)
    peak = most_at_once(spans)
    assert 20 <= peak <= 30 + 4, peak
