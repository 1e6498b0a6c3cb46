"""``results="django://"``: the result store and coordination contracts on the Django ORM,
and what is particular to them (another database, rows queued tasks get, expiry, threads,
a real worker)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from conveyor import App
from conveyor.contrib.django.coordination import DjangoCoordination
from conveyor.contrib.django.models import Claim, JoinedSet, SetMember, TaskResult, Value
from conveyor.contrib.django.results import DjangoResultStore
from conveyor.errors import ConfigurationError
from conveyor.message import Message, new_id
from conveyor.records import ErrorInfo, State
from tests.contract.test_coordination import *  # noqa: F403 - the whole contract, run here
from tests.contract.test_coordination import key
from tests.contract.test_result_store import *  # noqa: F403 - the whole contract, run here
from tests.contract.test_result_store import TTL, record

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def result_store() -> Iterator[DjangoResultStore]:
    store = DjangoResultStore("django://")
    yield store
    store.close()


@pytest.fixture
def coordination() -> Iterator[DjangoCoordination]:
    store = DjangoCoordination("django://")
    yield store
    store.close()


def message(**fields: Any) -> Message:
    return Message(**{"id": new_id(), "task": "shop.tasks.export", "created": time.time(),
                      **fields})


# -- queued tasks get a PENDING row ---------------------------------------------------


def test_record_pending_writes_a_pending_row_with_the_call(
    result_store: DjangoResultStore,
) -> None:
    queued = message(args=[1, "two"], kwargs={"month": "2026-05"}, queue="reports")

    result_store.record_pending([queued])

    row = TaskResult.objects.get(pk=queued.id)
    assert (row.task_name, row.state, row.queue) == ("shop.tasks.export", "PENDING", "reports")
    assert (row.args, row.kwargs) == ([1, "two"], {"month": "2026-05"})
    assert row.created.timestamp() == pytest.approx(queued.created, abs=1e-3)
    got = result_store.get(queued.id)
    assert got is not None
    assert (got.state, got.task, got.result) == (State.PENDING, "shop.tasks.export", None)


def test_record_pending_never_overwrites_what_a_worker_wrote(
    result_store: DjangoResultStore,
) -> None:
    queued = message(args=[5])
    result_store.store([(record(State.SUCCESS, task_id=queued.id, result=25), TTL)])

    result_store.record_pending([queued])

    got = result_store.get(queued.id)
    assert got is not None
    assert (got.state, got.result) == (State.SUCCESS, 25)


def test_a_worker_record_keeps_the_queue_and_arguments_of_the_pending_row(
    result_store: DjangoResultStore,
) -> None:
    queued = message(args=[5], queue="reports")
    result_store.record_pending([queued])

    result_store.store([(record(State.SUCCESS, task_id=queued.id, result=25), TTL)])

    row = TaskResult.objects.get(pk=queued.id)
    assert (row.state, row.result, row.queue, row.args) == ("SUCCESS", "25", "reports", [5])


def test_a_countdown_shows_as_due_at(result_store: DjangoResultStore) -> None:
    later = time.time() + 3600
    queued = message(eta=later)

    result_store.record_pending([queued])

    assert TaskResult.objects.get(pk=queued.id).retry_at.timestamp() == pytest.approx(later)


def test_record_pending_inside_a_transaction_waits_for_the_commit(
    result_store: DjangoResultStore,
) -> None:
    from django.db import transaction

    kept, dropped = message(), message()
    with transaction.atomic():
        result_store.record_pending([kept])
        assert not TaskResult.objects.filter(pk=kept.id).exists()
    with pytest.raises(RuntimeError), transaction.atomic():
        result_store.record_pending([dropped])
        raise RuntimeError("rolled back")

    assert TaskResult.objects.filter(pk=kept.id).exists()
    assert not TaskResult.objects.filter(pk=dropped.id).exists()


# -- columns, expiry, threads ----------------------------------------------------------


def test_a_failure_is_stored_in_columns_an_admin_can_filter(
    result_store: DjangoResultStore,
) -> None:
    failed = record(State.FAILURE, error=ErrorInfo("ValueError", "bad", "Traceback ..."),
                    progress=(1.0, 3.0, "rows"), attempt=3)

    result_store.store([(failed, TTL)])

    row = TaskResult.objects.get(pk=failed.id)
    assert (row.state, row.task_name, row.attempt) == ("FAILURE", "tasks.add", 3)
    assert (row.error_type, row.error_message, row.traceback) == (
        "ValueError", "bad", "Traceback ...")
    assert (row.progress_current, row.progress_total, row.progress_label) == (1.0, 3.0, "rows")
    assert row.updated.timestamp() == pytest.approx(failed.updated, abs=1e-3)


def test_purge_deletes_expired_rows_of_every_table(
    result_store: DjangoResultStore, coordination: DjangoCoordination,
) -> None:
    short, long = record(), record()
    result_store.store([(short, 0.2), (long, TTL)])
    coordination.claim(key(), "alice", 0.2)
    coordination.join([(key(), "a")], 0.2)
    coordination.put(key(), "v", 0.2)
    time.sleep(0.3)

    result_store.purge_expired()
    coordination.purge_expired()

    assert list(TaskResult.objects.values_list("task_id", flat=True)) == [long.id]
    assert (Claim.objects.count(), JoinedSet.objects.count(), SetMember.objects.count(),
            Value.objects.count()) == (0, 0, 0, 0)


def test_times_work_without_time_zone_support(
    result_store: DjangoResultStore, coordination: DjangoCoordination, settings: Any,
) -> None:
    settings.USE_TZ = False
    short, due = record(retry_at=1234.5), record()

    result_store.store([(short, 0.2), (due, TTL)])
    coordination.claim(lock := key(), "alice", 0.2)
    time.sleep(0.3)

    assert result_store.get(short.id) is None
    got = result_store.get(due.id)
    assert got is not None and got.updated == due.updated
    assert coordination.claim(lock, "bob", TTL) == "bob"
    assert result_store.get_many([short.id]) == [None]


def test_long_keys_are_stored_by_their_hash(coordination: DjangoCoordination) -> None:
    long_key = "unique:" + "x" * 400

    assert coordination.claim(long_key, "alice", TTL) == "alice"
    assert coordination.claim(long_key, "bob", TTL) == "alice"
    coordination.put(long_key, "value", TTL)
    assert coordination.fetch([long_key]) == ["value"]
    assert coordination.join([(long_key, "m" * 300)], TTL) == [1]


def test_a_task_id_too_long_for_its_column_is_skipped_not_retried_forever(
    result_store: DjangoResultStore,
) -> None:
    too_long, fine = record(task_id="x" * 300), record()

    result_store.store([(too_long, TTL), (fine, TTL)])
    result_store.record_pending([message(id="y" * 300)])

    assert result_store.get(too_long.id) is None
    assert result_store.get(fine.id) is not None


def test_threads_use_their_own_connections_and_close_them(
    result_store: DjangoResultStore,
) -> None:
    ids = [uuid.uuid4().hex for _ in range(8)]
    seen: list[object] = []

    def work(task_id: str) -> None:
        seen.append(connections["default"])
        result_store.store([(record(State.SUCCESS, task_id=task_id, result=task_id), TTL)])
        assert result_store.wait(task_id, 5.0) is not None

    threads = [threading.Thread(target=work, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({id(c) for c in seen}) == len(ids)
    assert all(c.connection is None for c in seen)  # type: ignore[attr-defined]
    assert [r.result if r else None for r in result_store.get_many(ids)] == ids


def test_works_inside_an_event_loop(result_store: DjangoResultStore) -> None:
    done = record(State.SUCCESS, result="async")

    async def main() -> Any:
        result_store.store([(done, TTL)])
        result_store.record_pending([message()])
        return result_store.get(done.id)

    got = asyncio.run(main())

    assert got is not None
    assert got.result == "async"


# -- configuration ---------------------------------------------------------------------


@pytest.fixture
def other_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A second database, ``DATABASES["other"]``, with the conveyor tables, for this test
    only: added to the connection handler (overriding DATABASES isn't supported) and
    connected on this thread at once (the test case would refuse a late connection)."""
    configured = connections.configure_settings({
        "default": dict(connections.settings["default"]),
        "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "other.db")},
    })
    monkeypatch.setitem(connections.settings, "other", configured["other"])
    connections["other"].connect()
    with connections["other"].schema_editor() as editor:
        for model in (TaskResult, Claim, JoinedSet, SetMember, Value):
            editor.create_model(model)
    yield "other"
    connections["other"].close()
    del connections["other"]


def test_an_alias_in_the_url_keeps_everything_in_that_database(other_database: str) -> None:
    store = DjangoResultStore(f"django://{other_database}")
    coordination = DjangoCoordination(f"django://{other_database}")
    done = record(State.SUCCESS, result="elsewhere")

    store.store([(done, TTL)])
    store.record_pending([message()])
    coordination.put("k", "v", TTL)

    got = store.get(done.id)
    assert got is not None
    assert got.result == "elsewhere"
    assert TaskResult.objects.using(other_database).count() == 2
    assert Value.objects.using(other_database).count() == 1
    assert not TaskResult.objects.exists() and not Value.objects.exists()  # not in default
    store.close()
    coordination.close()


def test_an_unknown_database_alias_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no database 'nowhere'"):
        DjangoResultStore("django://nowhere")


def test_a_url_with_a_path_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="django://ALIAS"):
        DjangoResultStore("django://default/results")


def test_the_app_finds_the_store_by_its_scheme() -> None:
    app = App("t", broker="memory://", results="django://")

    assert isinstance(app.results, DjangoResultStore)
    app.close()


# -- a real worker ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_worker_process_writes_its_results_to_the_database(
    start_django: Callable[..., Any], tmp_path: Path,
) -> None:
    broker = f"sqlite:///{tmp_path / 'broker.db'}"
    worker = start_django("conveyor", "worker", "-p", "1", env={
        "CONVEYOR_RESULTS_URL": "django://", "CONVEYOR_DJANGO_TEST_BROKER": broker})
    producer = App("producer", broker=broker, results="django://")
    try:
        result = producer.send_task("tests.django.testapp.tasks.count_orders")

        assert result.get(timeout=60) == 0, worker.output()
        row = TaskResult.objects.get(pk=result.id)
        assert (row.state, row.task_name, row.result) == (
            "SUCCESS", "tests.django.testapp.tasks.count_orders", "0")
    finally:
        producer.close()
