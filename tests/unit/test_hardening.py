"""A worker that meets a broken store, a dying thread or bad input says so and stops or
goes on, never wedges; and bad input is refused where it is given."""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from conveyor import App, ConfigurationError, TaskContext
from conveyor.backends.memory import MemoryResultStore
from conveyor.broker import WorkerInfo
from conveyor.errors import BrokerUnavailable
from conveyor.records import ResultRecord
from conveyor.testing import run_until_idle
from conveyor.worker import Worker


class ExplodingStore(MemoryResultStore):
    """A result store that breaks in a way no one planned for."""

    def store(self, records: Sequence[tuple[ResultRecord, float]]) -> None:
        raise RuntimeError("the disk is on fire")


def test_a_worker_thread_that_dies_stops_the_worker_and_hands_its_tasks_back() -> None:
    app = App("dying", broker="memory://")
    app.use(results=ExplodingStore())

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    add.delay(1, 2)
    worker = Worker(app, ["default"], threads=1)

    with pytest.raises(RuntimeError, match="worker thread conveyor-writer died"):
        worker.run(burst=True)
    assert app.broker.stats()["default"].ready == 1  # back in the queue, to run again


def test_a_lost_store_is_logged_once_and_its_return_once(
        caplog: pytest.LogCaptureFixture) -> None:
    app = App("outage", broker="memory://")
    healthy = app.broker.heartbeat
    failures = iter(range(15))  # about 1.5 s of heartbeat ticks

    def heartbeat(worker: WorkerInfo, ttl: float) -> None:
        if next(failures, None) is not None:
            raise BrokerUnavailable("Redis at redis://127.0.0.1:6379/0 is unreachable")
        healthy(worker, ttl)

    app.broker.heartbeat = heartbeat  # type: ignore[method-assign]
    worker = Worker(app, ["default"], threads=1)
    runner = threading.Thread(target=worker.run)
    with caplog.at_level(logging.INFO, logger="conveyor.worker"):
        runner.start()
        deadline = time.monotonic() + 10
        while not app.broker.workers() and time.monotonic() < deadline:
            time.sleep(0.05)
        registered = bool(app.broker.workers())  # its heartbeat got through in the end
        worker.stop()
        runner.join(10)

    messages = [r.getMessage() for r in caplog.records]
    assert sum("lost the store" in m for m in messages) == 1, messages
    assert sum("reached the store again" in m for m in messages) == 1, messages
    assert registered


def test_a_sqlite_store_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    app = App("private", broker=f"sqlite:///{tmp_path / 'private.db'}")
    previous = os.umask(0o022)
    try:
        app.broker.stats()
        app.results.get("anything")
    finally:
        os.umask(previous)
        app.close()

    files = sorted(tmp_path.glob("private.db*"))
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files), \
        [(f.name, oct(f.stat().st_mode)) for f in files]


@pytest.mark.parametrize(("url", "says"), [
    ("redis://127.0.0.1/11x", "the path is the database number"),
    ("redis://127.0.0.1:abc/0", "bad port 'abc'"),
    ("redis://127.0.0.1:6379/0?namespce=x", "unknown option 'namespce'; did you mean "
                                             "'namespace'"),
    ("redis://127.0.0.1:6379/0?publish_timeout=soon", "publish_timeout must be a number"),
    ("redis+sentinel://127.0.0.1:26379/", "names no master"),
    ("redis+sentinel://127.0.0.1:26379/mymaster/x", "names no master"),
    ("redis+cluster://127.0.0.1:7000/3", "a cluster has one database"),
    ("sqlite:///x.db?sync=full", "unknown option"),
    ("nats://127.0.0.1", "unknown broker URL scheme nats://"),
    ("amqp://guest:guest@127.0.0.1/", "the amqp:// broker keeps no results: give the App a "
                                       "result store, results="),
])
def test_a_bad_url_is_refused_when_the_app_is_made(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        App("bad", broker=url)


@pytest.mark.parametrize(("url", "says"), [
    ("amqp://127.0.0.1/?queue_tpye=quorum", "unknown option 'queue_tpye'; did you mean "
                                             "'queue_type'"),
    ("amqp://127.0.0.1/?queue_type=stream", "queue_type must be one of classic, quorum"),
    ("amqp://127.0.0.1:notaport/", "bad port"),
    ("amqps://127.0.0.1/?verify=maybe", "verify must be true or false"),
    ("amqp://127.0.0.1/a/b", "the path is the vhost, percent-encoded"),
])
def test_a_bad_rabbitmq_url_is_refused_when_the_app_is_made(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        App("bad", broker=url, results="memory://")


def test_a_rabbitmq_url_with_a_result_store_makes_an_app_without_connecting() -> None:
    app = App("shop", broker="amqp://user:s3cret@127.0.0.1:1/%2F?queue_type=quorum",
              results="memory://")

    assert "s3cret" not in repr(app) and "***" in repr(app)


@pytest.mark.parametrize("queue", ["emails ", " emails", "a,b", "tab\tbed", ""])
def test_a_queue_no_worker_could_consume_is_refused(queue: str) -> None:
    app = App("queues", broker="memory://")

    @app.task
    def noop() -> None: ...

    with pytest.raises(ValueError, match="queue"):
        noop.apply_async(queue=queue)
    with pytest.raises(ConfigurationError, match="queue"):
        app.task(queue=queue)


@pytest.mark.parametrize("task_id", [42, b"bytes-id", "", "line\nbreak", "x" * 256])
def test_a_task_id_that_is_not_a_plain_string_is_refused(task_id: object) -> None:
    app = App("ids", broker="memory://")

    @app.task
    def noop() -> None: ...

    with pytest.raises(ValueError, match="task_id"):
        noop.apply_async(task_id=task_id)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="task_id"):
        app.send_task("noop", task_id=task_id)  # type: ignore[arg-type]
    assert app.broker.stats()["default"].ready == 0


@pytest.mark.parametrize(("countdown", "says"), [(float("nan"), "finite"),
                                                 (float("inf"), "finite"), (-1, ">= 0")])
def test_a_countdown_that_is_no_time_is_refused(countdown: float, says: str) -> None:
    app = App("countdown", broker="memory://")

    @app.task
    def noop() -> None: ...

    with pytest.raises(ValueError, match=says):
        noop.apply_async(countdown=countdown)


@pytest.mark.parametrize(("args", "error"), [
    ((1, 2, Path("rows.csv")), TypeError),
    (("1", 2), TypeError),
    ((1, float("nan")), ValueError),
    ((1, -2), ValueError),
    ((1, 2, "\ud800"), ValueError),
])
def test_progress_no_store_could_keep_raises_in_the_task(
        args: tuple[object, ...], error: type[Exception]) -> None:
    app = App("progress", broker="memory://")
    raised: list[BaseException] = []

    @app.task(bind=True)
    def report(task: TaskContext) -> None:
        try:
            task.progress(*args)  # type: ignore[arg-type]
        except Exception as exc:
            raised.append(exc)

    report.delay()
    run_until_idle(app, fail_fast=True)
    assert len(raised) == 1 and isinstance(raised[0], error)


def test_a_redis_that_is_out_of_memory_counts_as_unavailable_so_writes_are_retried() -> None:
    import redis

    from conveyor.backends.redis.client import call

    def refused() -> None:
        raise redis.exceptions.OutOfMemoryError(
            "command not allowed when used memory > 'maxmemory'.")

    with pytest.raises(BrokerUnavailable, match="out of memory"):
        call(refused, "redis://:secret@127.0.0.1:6379/0", "Redis result store")


def test_delay_on_an_unreachable_rabbitmq_raises_after_the_publish_timeout() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = App("down", broker=f"amqp://guest:hunter2@127.0.0.1:{port}/?publish_timeout=0.5",
              results="memory://")

    @app.task
    def noop() -> None: ...

    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as caught:
        noop.delay()
    assert 0.5 <= time.monotonic() - started < 10
    assert "hunter2" not in str(caught.value) and "unreachable" in str(caught.value)
    app.close()
