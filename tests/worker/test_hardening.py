"""No input, return value or store entry may wedge a worker: each ends in a result or the
dead letters with the reason, and the next message runs, in the same worker process."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from types import ModuleType

import pytest
import redis

from conveyor import App, State, TaskError
from conveyor.message import Message, encode
from tests.conftest import ROOT, WorkerProcess

pytestmark = pytest.mark.timeout(120)
Start = type[WorkerProcess]


def runs(project: Path, prefix: str) -> Counter[str]:
    log = project / "runs.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return Counter(line.split()[0] for line in lines if line.startswith(prefix))


def test_a_result_that_cant_be_stored_fails_once_and_the_worker_goes_on(
        tasks: ModuleType, start_worker: Start, project: Path) -> None:
    worker = start_worker("-p", "1", "-t", "2")
    kinds = ["surrogate", "deep", "datetime"]

    results = {kind: tasks.unstorable.delay(kind) for kind in kinds}

    for kind, result in results.items():
        with pytest.raises(TaskError) as caught:
            result.get(timeout=30)
        assert caught.value.type == "SerializationError", kind
    assert "lone surrogate" in str(results["surrogate"].result)
    assert "nested more than" in str(results["deep"].result)
    assert "is a datetime" in str(results["datetime"].result)
    assert tasks.add.delay(2, 2).get(timeout=30) == 4  # the worker goes on
    time.sleep(0.5)  # a task that ran again would have recorded it by now
    assert runs(project, "unstorable") == {f"unstorable-{k}": 1 for k in kinds}
    assert len(worker.children()) == 1


def test_progress_no_store_could_keep_is_refused_inside_the_task(
        tasks: ModuleType, start_worker: Start) -> None:
    start_worker("-p", "1")

    refused = tasks.bad_progress.delay().get(timeout=30)

    assert refused.startswith("refused: progress message must be a str")
    assert tasks.add.delay(1, 1).get(timeout=30) == 2


def message_body(task_id: str, task: str, **fields: object) -> bytes:
    message = Message(id=task_id, task=task, created=time.time(), **fields)  # type: ignore[arg-type]
    return encode(message, 10**7)


def poison_sqlite(path: str, entries: list[tuple[object, object, object]]) -> None:
    """Rows (id, priority, body) written straight into the SQLite broker's table."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(
            "INSERT INTO conveyor_messages (id, queue, priority, state, due, body)"
            " VALUES (?, 'default', ?, 0, ?, ?)",
            [(i, p, time.time(), body) for i, p, body in entries])


def poison_redis(app: App, entries: list[tuple[bytes, bytes]]) -> None:
    """Refs and bodies written straight into the Redis broker's keys of queue default."""
    namespace = app.broker.namespace  # type: ignore[attr-defined]
    client = redis.Redis.from_url(app.settings.broker_url.split("?")[0])
    try:
        for ref, body in entries:
            client.zadd(f"{{{namespace}:default}}:ready", {ref: 0})
            client.hset(f"{{{namespace}:default}}:body", ref, body)
        client.rpush(f"{{{namespace}:default}}:signal", 1)
    finally:
        client.close()


def test_entries_written_into_the_store_never_stop_the_queue(
        tasks: ModuleType, start_worker: Start) -> None:
    app: App = tasks.app
    worker = start_worker("-p", "1")
    assert tasks.add.delay(0, 0).get(timeout=30) == 0
    pids = worker.children()  # the worker process, running (not the start-up check)
    deep = b"[" * 50_000 + b"]" * 50_000
    expired = message_body("expired", "e2e_tasks.add", args=[1, 2], expires=-1e300)
    if app.settings.broker_url.startswith("sqlite"):
        path = app.settings.broker_url.removeprefix("sqlite:///")
        text = message_body("text-body", "e2e_tasks.add", args=[20, 1]).decode()
        poison_sqlite(path, [("deep", 0, deep), ("expired", 0, expired), ("text", 0, text),
                             (42, "high", b"\x00\xff not json")])
        poisoned = ["deep", "42"]
    else:
        poison_redis(app, [(b"not-a-ref", b"{}"), (b"1|x|bad-priority", expired),
                           (b"7|0|\xff\xfe", expired), (b"8|0|deep", deep),
                           (b"9|0|expired", expired)])
        poisoned = ["not-a-ref", "bad-priority", "deep"]

    good = tasks.add.map([(i, i) for i in range(20)])

    assert [r.get(timeout=30) for r in good] == [2 * i for i in range(20)]
    dead = {d.id: d.reason for d in app.broker.dead_letters()}
    for entry in poisoned:
        assert entry in dead, (entry, dead)
    assert "undecodable" in dead["deep"]
    assert app.AsyncResult("expired").state is State.REVOKED
    assert "expired at" in str(app.AsyncResult("expired").result)
    if app.settings.broker_url.startswith("redis"):
        assert "malformed queue entry" in dead["not-a-ref"]
        assert "malformed queue entry" in dead["bad-priority"]
        assert any("not UTF-8" in reason for reason in dead.values())
    else:  # a TEXT body is the same bytes: it runs
        assert app.AsyncResult("text-body").get(timeout=30) == 21
    assert worker.children() == pids, worker.output()  # the same worker process all along


def test_a_bad_broker_url_stops_the_worker_at_once_with_one_line(
        tasks: ModuleType, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not tasks.app.settings.broker_url.startswith("redis"):
        pytest.skip("a database number is a Redis matter")
    url = tasks.app.settings.broker_url.replace("/0?", "/99?")
    monkeypatch.setenv("CONVEYOR_BROKER_URL", url)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(ROOT / "src")])}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "conveyor", "worker", "-A", "e2e_tasks"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=60)

    assert done.returncode != 0
    assert time.monotonic() - started < 20
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "no database 99" in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def test_fuzzed_bodies_never_stop_a_real_worker(tasks: ModuleType, start_worker: Start) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from conveyor.message import Envelope
    from tests.unit.test_fuzz_messages import GOOD, envelopes, mutations

    app: App = tasks.app
    worker = start_worker("-p", "1", "-t", "2")
    assert tasks.add.delay(0, 0).get(timeout=30) == 0
    pids = worker.children()
    seen: list[str] = []

    @settings(max_examples=25, deadline=None)
    @given(st.lists(st.binary() | envelopes | mutations(GOOD), min_size=1, max_size=8))
    def feed(bodies: list[bytes]) -> None:
        ids = [f"fuzz-{len(seen)}-{i}" for i in range(len(bodies))]
        seen.extend(ids)
        app.broker.publish([Envelope(i, "default", 0, None, b) for i, b in zip(ids, bodies,
                                                                              strict=True)])
        assert tasks.add.delay(1, 2).get(timeout=30) == 3

    feed()
    assert worker.children() == pids, worker.output()
    assert app.broker.stats()["default"].ready == 0
