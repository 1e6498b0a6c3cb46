"""A worker whose result store fails for a while keeps finished work and writes it later."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor import App, State
from conveyor.backends.memory import MemoryResultStore
from conveyor.errors import BrokerUnavailable
from conveyor.records import ResultRecord
from conveyor.testing import run_until_idle


class FlakyStore(MemoryResultStore):
    """A result store that is unreachable for its first `failures` writes."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def store(self, records: Sequence[tuple[ResultRecord, float]]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise BrokerUnavailable("result store is down (test)")
        super().store(records)


def test_results_and_acks_written_after_the_store_comes_back() -> None:
    # Given an app whose result store fails its first two writes
    app = App("outage", broker="memory://")
    store = FlakyStore(failures=2)
    app.use(results=store)
    runs: list[int] = []

    @app.task
    def square(x: int) -> int:
        runs.append(x)
        return x * x

    # When tasks finish while the store is down
    results = square.map([(i,) for i in range(5)])
    run_until_idle(app, timeout=30)

    # Then every result arrives, each task ran once, and nothing is left in the queue
    assert store.failures == 0
    assert [r.get(timeout=1) for r in results] == [0, 1, 4, 9, 16]
    assert sorted(runs) == [0, 1, 2, 3, 4]
    assert all(r.state is State.SUCCESS for r in results)
    assert app.broker.stats()["default"].running == 0
    assert app.broker.stats()["default"].ready == 0
