"""`app.pause()`, `app.resume()`, `app.paused()` (issue 14) on memory:// and SQLite, and an
in-process worker that honours them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from conveyor import App, State
from conveyor.backends.memory import MemoryCoordination
from conveyor.errors import BrokerUnavailable
from conveyor.testing import run_until_idle
from conveyor.worker import paused as worker_paused
from conveyor.worker.paused import PausedQueues


@pytest.fixture(params=["memory", "sqlite"])
def any_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/c.db"
    app = App("t", broker=url)
    yield app
    app.close()


def test_pause_resume_round_trip(any_app: App) -> None:
    assert any_app.paused() == set()

    assert any_app.pause("emails") is True
    assert any_app.pause("emails") is False  # pausing twice is fine, and changes nothing
    assert any_app.pause("reports") is True
    assert any_app.paused() == {"emails", "reports"}

    assert any_app.resume("emails") is True
    assert any_app.paused() == {"reports"}


def test_resuming_a_queue_that_is_not_paused_returns_false(any_app: App) -> None:
    any_app.pause("reports")

    assert any_app.resume("emails") is False
    assert any_app.paused() == {"reports"}


@pytest.mark.parametrize(("name", "says"), [
    ("", "non-empty name"), ("a,b", "without commas"), (" emails", "surrounding spaces"),
    ("bad\x1bname", "control characters"), (42, "non-empty name"),
])
def test_a_bad_queue_name_is_a_clear_error(any_app: App, name: object, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        any_app.pause(name)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=says):
        any_app.resume(name)  # type: ignore[arg-type]
    assert any_app.paused() == set()


def test_a_pause_is_seen_by_every_app_on_the_store(tmp_path: Path) -> None:
    # Two Apps on one SQLite file stand for two hosts of one cluster
    url = f"sqlite:///{tmp_path}/c.db"
    here, there = App("shop", broker=url), App("shop", broker=url)
    try:
        here.pause("emails")
        assert there.paused() == {"emails"}
        assert there.resume("emails") is True
        assert here.paused() == set()
    finally:
        here.close()
        there.close()


def test_concurrent_pauses_of_different_queues_all_hold(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    apps = [App("shop", broker=url) for _ in range(6)]
    threads = [threading.Thread(target=app.pause, args=(f"q{i}",)) for i, app in enumerate(apps)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert apps[0].paused() == {f"q{i}" for i in range(6)}
    finally:
        for app in apps:
            app.close()


def test_a_worker_takes_no_task_of_a_paused_queue_until_it_is_resumed(any_app: App) -> None:
    @any_app.task
    def add(x: int, y: int) -> int:
        return x + y

    # Given "default" paused and tasks sent to it and to another queue (producers go on)
    any_app.pause("default")
    waiting = [add.delay(i, i) for i in range(3)]
    elsewhere = add.apply_async((5, 5), queue="other")

    # When a worker of both queues runs until idle
    ran = run_until_idle(any_app, ["default", "other"])

    # Then only the other queue's task ran; the paused ones wait, ready, nothing lost
    assert ran == 1 and elsewhere.get(timeout=1) == 10
    assert [r.state for r in waiting] == [State.PENDING] * 3
    assert any_app.broker.stats()["default"].ready == 3

    # And once resumed, they all run
    any_app.resume("default")
    assert run_until_idle(any_app, ["default", "other"]) == 3
    assert [r.get(timeout=1) for r in waiting] == [0, 2, 4]


class FlakyCoordination(MemoryCoordination):
    """Unreachable while `down` is set."""

    down = False

    def fetch(self, keys: Sequence[str]) -> list[str | None]:
        if self.down:
            raise BrokerUnavailable("coordination is down (test)")
        return super().fetch(keys)


def test_a_worker_keeps_the_last_known_pauses_while_the_store_is_down(
    any_app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a worker of "default" and "other" that reads the pauses on every reserve
    monkeypatch.setattr(worker_paused, "REFRESH", 0.0)
    store = FlakyCoordination()
    any_app.use(coordination=store)
    queues = PausedQueues(any_app, ["default", "other"], "worker w1")
    any_app.pause("default")
    assert queues.consumable() == ["other"]

    # When the store can't be read, many times, and "default" is resumed meanwhile
    store.down = True
    with caplog.at_level(logging.INFO, logger="conveyor.worker"):
        for _ in range(5):
            assert queues.consumable() == ["other"]  # the last known set holds
        store.down = False
        any_app.resume("default")
        consumable = queues.consumable()

    # Then the outage was logged once, its end once, and the resume is seen once it's back
    lost = [r for r in caplog.records if "lost the store" in r.getMessage()]
    assert len(lost) == 1 and "paused queues" in lost[0].getMessage()
    assert sum("reached the store again" in r.getMessage() for r in caplog.records) == 1
    assert consumable == ["default", "other"]
    assert any("queue default is resumed" in r.getMessage() for r in caplog.records)
