"""`get()`'s TimeoutError says where the task went and who could run it: the store, the
queue, and which live workers consume what (or that none does)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import App
from conveyor.broker import WorkerInfo


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    monkeypatch.chdir(tmp_path)
    app = App("shop", broker="sqlite:///conveyor.db")

    @app.task(name="send_email", queue="emails")
    def send_email(to: str) -> None: ...

    yield app
    app.close()


def alive(app: App, *queues: str) -> None:
    """A live worker consuming `queues`, as its heartbeat reports it."""
    app.broker.heartbeat(WorkerInfo(id=f"host:1:{'-'.join(queues)}", hostname="host", pid=1,
                                    queues=queues, concurrency=8, started=time.time(),
                                    seen=time.time()), 15.0)


def test_with_no_worker_alive_it_names_the_stores_absolute_file(app: App,
                                                                tmp_path: Path) -> None:
    result = app.tasks["send_email"].delay("a@b.c")
    with pytest.raises(TimeoutError) as info:
        result.get(timeout=0.05)
    said = str(info.value)
    assert said.startswith(f"task {result.id} did not finish within 0.05 s: no worker is "
                           "alive on sqlite:///conveyor.db")
    assert f"(file {tmp_path}/conveyor.db)" in said
    assert "-Q emails" in said


def test_with_no_worker_on_its_queue_it_says_what_the_live_ones_take(app: App) -> None:
    alive(app, "default", "email")
    result = app.tasks["send_email"].delay("a@b.c")
    with pytest.raises(TimeoutError) as info:
        result.get(timeout=0.05)
    assert "it went to queue 'emails' on sqlite:///conveyor.db" in str(info.value)
    assert ("which no live worker consumes (1 live worker process(es) take default, email); "
            "start one with -Q emails") in str(info.value)


def test_with_a_worker_on_its_queue_it_says_it_waits_its_turn(app: App) -> None:
    alive(app, "emails")
    result = app.tasks["send_email"].delay("a@b.c")
    with pytest.raises(TimeoutError, match="it waits its turn or is still running"):
        result.get(timeout=0.05)


def test_a_handle_made_from_an_id_alone_lists_the_live_workers(app: App) -> None:
    alive(app, "default")
    with pytest.raises(TimeoutError, match=r"1 live worker process\(es\) take default\)$"):
        app.AsyncResult("some-id").get(timeout=0.05)
