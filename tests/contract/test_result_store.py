"""The result store contract: what every ResultStore must do, checked only through the Protocol.

Expiry follows the `clock` fixture: on the in-process stores it is fake, so TTLs run out
at once when the test advances it; elsewhere advancing it sleeps. (The coordination
primitives have their own contract: test_coordination.py.)"""

from __future__ import annotations

import threading
import time
import uuid

from conveyor.records import ErrorInfo, ResultRecord, State
from conveyor.store import ResultStore
from tests.conftest import Clock

TTL = 60.0


def record(
    state: State = State.SUCCESS, task_id: str | None = None, **fields: object
) -> ResultRecord:
    return ResultRecord(id=task_id or uuid.uuid4().hex, state=state, task="tasks.add",
                        updated=time.time(), **fields)  # type: ignore[arg-type]


def test_stored_record_comes_back_as_json_types(result_store: ResultStore) -> None:
    sent = record(
        State.FAILURE,
        result={"pair": (1, 2), "nested": [1.5, None, "x", True], "n": 3},
        error=ErrorInfo("ValueError", "bad input", "Traceback (most recent call last): ..."),
        progress=(3.0, 4.0, "almost"),
        attempt=2,
        retry_at=1234.5,
    )

    result_store.store([(sent, TTL)])
    got = result_store.get(sent.id)

    assert got is not None
    assert got.id == sent.id
    assert got.state is State.FAILURE
    assert got.task == "tasks.add"
    assert got.result == {"pair": [1, 2], "nested": [1.5, None, "x", True], "n": 3}
    assert got.error == ErrorInfo("ValueError", "bad input",
                                  "Traceback (most recent call last): ...")
    assert got.progress == (3.0, 4.0, "almost")
    assert (got.attempt, got.updated, got.retry_at) == (2, sent.updated, 1234.5)


def test_progress_meta_comes_back_as_it_was_sent(result_store: ResultStore) -> None:
    meta = {"file": "orders-2026-12.csv", "rows": [12, 0], "stage": "import", "ok": True}
    sent, bare = record(progress=(3, 40, "rows"), progress_meta=meta), record(progress=(1, 2, None))

    result_store.store([(sent, TTL), (bare, TTL)])

    got = result_store.get(sent.id)
    assert got is not None and (got.progress, got.progress_meta) == ((3, 40, "rows"), meta)
    nothing = result_store.get(bare.id)
    assert nothing is not None and nothing.progress_meta is None


def test_progress_counted_in_whole_numbers_reads_back_as_whole_numbers(
        result_store: ResultStore) -> None:
    # task.progress(3, 40, "rows") shows "3 of 40 rows", not "3.0 of 40.0 rows"
    counted, measured = record(progress=(3, 40, "rows")), record(progress=(0.5, 1.5, None))
    result_store.store([(counted, TTL), (measured, TTL)])
    got = result_store.get(counted.id)
    assert got is not None and got.progress is not None
    assert got.progress == (3, 40, "rows")
    assert (type(got.progress[0]), type(got.progress[1])) == (int, int)
    fractional = result_store.get(measured.id)
    assert fractional is not None and fractional.progress == (0.5, 1.5, None)


def test_a_tuple_result_comes_back_as_a_list(result_store: ResultStore) -> None:
    sent = record(result=(1, "two", 3.0))

    result_store.store([(sent, TTL)])
    got = result_store.get(sent.id)

    assert got is not None
    assert got.result == [1, "two", 3.0]


def test_get_of_an_unknown_id_is_none(result_store: ResultStore) -> None:
    assert result_store.get("no-such-task") is None


def test_record_expires_after_its_ttl(result_store: ResultStore, clock: Clock) -> None:
    sent = record()
    result_store.store([(sent, 0.3)])
    before = result_store.get(sent.id)

    clock.advance(0.45)

    assert before is not None
    assert result_store.get(sent.id) is None


def test_several_records_stored_in_one_call(result_store: ResultStore) -> None:
    sent = [record(State.SUCCESS, result=1), record(State.STARTED), record(State.FAILURE)]

    result_store.store([(r, TTL) for r in sent])

    got = [result_store.get(r.id) for r in sent]
    assert [(g.id, g.state) if g else None for g in got] == [(r.id, r.state) for r in sent]


def test_a_later_record_replaces_the_whole_earlier_one(result_store: ResultStore) -> None:
    started = record(State.STARTED, progress=(1.0, 10.0, "working"))
    result_store.store([(started, TTL)])

    result_store.store([(record(State.SUCCESS, task_id=started.id, result="done"), TTL)])

    got = result_store.get(started.id)
    assert got is not None
    assert (got.state, got.result, got.progress) == (State.SUCCESS, "done", None)


def test_the_last_record_for_an_id_in_one_call_wins(result_store: ResultStore) -> None:
    task_id = uuid.uuid4().hex

    result_store.store([
        (record(State.STARTED, task_id=task_id), TTL),
        (record(State.SUCCESS, task_id=task_id, result=42), TTL),
    ])

    got = result_store.get(task_id)
    assert got is not None
    assert (got.state, got.result) == (State.SUCCESS, 42)


def test_forget_deletes_records_now(result_store: ResultStore) -> None:
    gone, kept = record(), record()
    result_store.store([(gone, TTL), (kept, TTL)])

    result_store.forget([gone.id, "never-stored"])

    assert result_store.get(gone.id) is None
    assert result_store.get(kept.id) is not None


def test_wait_returns_at_once_for_a_final_record(result_store: ResultStore) -> None:
    done = record(State.SUCCESS, result="ok")
    result_store.store([(done, TTL)])
    started = time.monotonic()

    got = result_store.wait(done.id, 10.0)

    assert got is not None
    assert (got.state, got.result) == (State.SUCCESS, "ok")
    assert time.monotonic() - started < 5.0  # did not sit out the timeout


def test_wait_returns_when_another_thread_stores_the_final_record(
    result_store: ResultStore,
) -> None:
    task_id = uuid.uuid4().hex

    def work() -> None:
        time.sleep(0.1)
        result_store.store([(record(State.STARTED, task_id=task_id), TTL)])
        time.sleep(0.2)
        result_store.store([(record(State.SUCCESS, task_id=task_id, result=7), TTL)])

    worker = threading.Thread(target=work)
    worker.start()
    try:
        got = result_store.wait(task_id, 10.0)
    finally:
        worker.join()

    assert got is not None
    assert (got.state, got.result) == (State.SUCCESS, 7)


def test_wait_times_out_with_the_latest_unfinished_record(result_store: ResultStore) -> None:
    running = record(State.STARTED, progress=(2.0, 5.0, None))
    result_store.store([(running, TTL)])

    got = result_store.wait(running.id, 0.3)

    assert got is not None
    assert (got.state, got.progress) == (State.STARTED, (2.0, 5.0, None))


def test_wait_times_out_with_none_when_nothing_is_stored(result_store: ResultStore) -> None:
    assert result_store.wait("no-such-task", 0.3) is None


def test_close_is_safe_to_call_twice(result_store: ResultStore) -> None:
    result_store.store([(record(), TTL)])

    result_store.close()
    result_store.close()


def test_get_many_returns_records_in_the_order_asked(result_store: ResultStore) -> None:
    first, second = record(State.SUCCESS, result=1), record(State.STARTED)
    result_store.store([(first, TTL), (second, TTL)])

    got = result_store.get_many([second.id, "no-such-task", first.id])

    assert [(g.id, g.state) if g else None for g in got] == [
        (second.id, State.STARTED), None, (first.id, State.SUCCESS)]
    assert result_store.get_many([]) == []


def test_get_many_reads_more_ids_than_one_query_holds(result_store: ResultStore) -> None:
    sent = [record(result=n) for n in range(1200)]
    result_store.store([(r, TTL) for r in sent])

    got = result_store.get_many([r.id for r in sent])

    assert [g.result if g else None for g in got] == list(range(1200))


def test_get_many_leaves_out_expired_records(result_store: ResultStore, clock: Clock) -> None:
    short, long = record(), record()
    result_store.store([(short, 0.2), (long, TTL)])

    clock.advance(0.3)

    assert [g.id if g else None for g in result_store.get_many([short.id, long.id])] == [
        None, long.id]
