"""`async def` tasks: registered as AsyncTask, run on the worker's event loop, and a plain
call returns the coroutine, like the function."""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
import warnings
from collections.abc import Iterator

import pytest

from conveyor import App, TaskContext, TaskError
from conveyor.task import AsyncTask
from conveyor.testing import eager, run_until_idle


def _join_worker_threads() -> None:
    """Wait for the in-process worker's threads to end: the heartbeat thread outlives
    run_until_idle() by up to one tick and holds the worker (and its event loop) until then."""
    for thread in threading.enumerate():
        if thread.name in ("conveyor-asyncio", "conveyor-heartbeat"):
            thread.join(timeout=5)


@pytest.fixture(autouse=True)
def contain_unclosed_event_loops() -> Iterator[None]:
    """Collect the event loops in-process workers leave behind after each test here.

    Pools.shutdown() stops its event loop without closing it, so its ResourceWarning would
    otherwise surface (filterwarnings=error) in whichever later test the GC happens to run.
    The leak itself is asserted, once, by test_in_process_worker_closes_its_event_loop.
    """
    yield
    _join_worker_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture
def app() -> Iterator[App]:
    app = App("t", broker="memory://")
    yield app
    app.close()


def test_async_task_delays_and_returns_the_awaited_value(app: App) -> None:
    @app.task
    async def fetch(url: str) -> int:
        await asyncio.sleep(0)
        return len(url)

    assert isinstance(fetch, AsyncTask)
    result = fetch.delay("https://example.org")
    run_until_idle(app)
    assert result.get(timeout=1) == len("https://example.org")


def test_async_task_plain_call_returns_a_coroutine(app: App) -> None:
    @app.task
    async def fetch(url: str) -> int:
        return len(url)

    coroutine = fetch("abc")
    assert inspect.iscoroutine(coroutine)
    assert asyncio.run(coroutine) == 3


def test_async_bound_task_gets_its_context(app: App) -> None:
    @app.task(bind=True)
    async def whoami(task: TaskContext) -> str:
        return task.id

    result = whoami.delay()
    run_until_idle(app)
    assert result.get(timeout=1) == result.id


def test_async_task_failure_is_reported_like_a_sync_one(app: App) -> None:
    @app.task
    async def fetch(url: str) -> int:
        await asyncio.sleep(0)
        raise ConnectionError(f"can't reach {url}")

    result = fetch.delay("http://down")
    run_until_idle(app)
    with pytest.raises(TaskError) as info:
        result.get(timeout=1)
    assert info.value.type == "ConnectionError"
    assert "http://down" in info.value.message
    assert 'raise ConnectionError(f"can\'t reach {url}")' in (info.value.traceback or "")


def test_async_and_sync_tasks_run_together(app: App) -> None:
    @app.task
    async def double(x: int) -> int:
        await asyncio.sleep(0.001)
        return 2 * x

    @app.task
    def triple(x: int) -> int:
        return 3 * x

    doubles = double.map([(i,) for i in range(5)])
    triples = triple.map([(i,) for i in range(5)])
    run_until_idle(app)
    assert [r.get(timeout=1) for r in doubles] == [0, 2, 4, 6, 8]
    assert [r.get(timeout=1) for r in triples] == [0, 3, 6, 9, 12]


def test_async_task_runs_in_eager_mode(app: App) -> None:
    @app.task
    async def fetch(url: str) -> int:
        return len(url)

    with eager(app):
        assert fetch.delay("abcd").get(timeout=1) == 4


def test_in_process_worker_closes_its_event_loop(app: App) -> None:
    # Given an async task that ran in an in-process worker
    @app.task
    async def ping() -> str:
        return "pong"

    result = ping.delay()
    run_until_idle(app)
    assert result.get(timeout=1) == "pong"
    _join_worker_threads()
    # When the worker's objects are garbage-collected
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    # Then no event loop (nor its self-pipe sockets) was left unclosed
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []
