"""The broker contract: what every Broker must do, checked only through the Protocol.

The same tests run against every backend in the `make_broker` fixture. Two brokers made by
one `make_broker` share one store, like two clients of one server, so "a consumer" and
"another consumer" below are two such connections.

Leases, etas and heartbeats follow the `clock` fixture: on the in-process brokers it is
fake, so `clock.advance()` makes them run out at once; elsewhere it sleeps. The waits of
`reserve` are real time either way.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import closing
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from conveyor.backends import broker_from_url
from conveyor.broker import Broker, Delivery, QueueStats, WorkerInfo
from conveyor.message import Envelope
from tests.conftest import Clock

MakeBroker = Callable[..., Broker]

# Leases are short here so lost-lease tests run quickly where the clock is real; reserve
# waits are generous upper bounds, never exact timings.
LEASE = 1.0
GENEROUS_WAIT = 3.0
CLOCK_SLACK = 0.05


def envelope(
    queue: str = "default",
    *,
    priority: int = 0,
    eta: float | None = None,
    body: bytes | None = None,
) -> Envelope:
    message_id = uuid.uuid4().hex
    if body is None:
        body = f"body of {message_id}".encode()
    return Envelope(id=message_id, queue=queue, priority=priority, eta=eta, body=body)


def sees_others_running(make_broker: MakeBroker) -> bool:
    """Whether `stats()` counts messages another consumer holds. RabbitMQ can't count
    another connection's unacknowledged messages without its management plugin: there
    `running` is what this process holds plus what live workers say in their heartbeats
    (docs/rabbitmq.md)."""
    return not make_broker.kind.startswith("amqp")  # type: ignore[attr-defined]


def skip_unless_priorities(make_broker: MakeBroker) -> None:
    if make_broker.kind == "amqp-quorum":  # type: ignore[attr-defined]
        pytest.skip("RabbitMQ's quorum queues have no priorities before RabbitMQ 4.0 "
                    "(docs/rabbitmq.md)")


def reserve_one(broker: Broker, queues: Sequence[str] = ("default",),
                wait: float = GENEROUS_WAIT) -> Delivery:
    got = broker.reserve(list(queues), 1, wait)
    assert len(got) == 1, f"expected one message from {list(queues)}, got {got}"
    return got[0]


def counts(broker: Broker, queue: str = "default") -> tuple[int, int, int, int]:
    """(ready, scheduled, running, dead) of `queue` as `stats()` reports them."""
    stats = broker.stats().get(queue, QueueStats())
    return stats.ready, stats.scheduled, stats.running, stats.dead


def worker_info(worker_id: str, processed: int = 0) -> WorkerInfo:
    now = time.time()
    return WorkerInfo(id=worker_id, hostname="host-a", pid=4242, queues=("default", "emails"),
                      concurrency=4, started=now - 10, seen=now, processed=processed,
                      running=1)


def lose_lease(make_broker: MakeBroker,
               clock: Clock) -> tuple[Broker, Delivery, Broker, Delivery]:
    """A message reserved by one consumer whose lease ran out, then reserved by another:
    (old consumer, its stale delivery, new consumer, the current delivery)."""
    old_consumer, new_consumer = make_broker(lease_seconds=LEASE), make_broker(lease_seconds=LEASE)
    old_consumer.publish([envelope(body=b"original")])
    stale = reserve_one(old_consumer)
    clock.advance(LEASE + CLOCK_SLACK)  # the first lease runs out
    current = reserve_one(new_consumer)
    assert current.id == stale.id
    assert current.deliveries == 2
    return old_consumer, stale, new_consumer, current


# -- publish and reserve ---------------------------------------------------------------


def test_published_message_is_reserved_with_its_body_id_queue_and_priority(
    make_broker: MakeBroker,
) -> None:
    producer, consumer = make_broker(), make_broker()
    sent = envelope("emails", priority=5, body=b"\x00binary \xff body")

    producer.publish([sent])
    got = consumer.reserve(["emails"], 10, GENEROUS_WAIT)

    assert len(got) == 1
    delivery = got[0]
    assert (delivery.id, delivery.queue, delivery.priority, delivery.body) == (
        sent.id, "emails", 5, b"\x00binary \xff body"
    )
    assert delivery.deliveries == 1
    assert not delivery.redelivered


def test_reserve_hands_out_at_most_n_messages(broker: Broker) -> None:
    sent = [envelope() for _ in range(5)]
    broker.publish(sent)

    first = broker.reserve(["default"], 3, GENEROUS_WAIT)
    second = broker.reserve(["default"], 3, GENEROUS_WAIT)
    third = broker.reserve(["default"], 3, 0.1)

    assert len(first) == 3
    assert len(second) == 2
    assert third == []
    assert sorted(d.id for d in first + second) == sorted(e.id for e in sent)


def test_reserve_returns_empty_after_waiting_when_nothing_is_ready(broker: Broker) -> None:
    started = time.monotonic()

    got = broker.reserve(["default", "never-used"], 5, 0.3)

    assert got == []
    assert time.monotonic() - started < 0.3 + GENEROUS_WAIT  # it did give up


def test_reserve_wakes_up_for_a_message_published_while_waiting(
    make_broker: MakeBroker,
) -> None:
    producer, consumer = make_broker(), make_broker()
    sent = envelope()
    publisher = threading.Timer(0.2, producer.publish, args=([sent],))

    started = time.monotonic()
    publisher.start()
    try:
        got = consumer.reserve(["default"], 1, 8.0)
    finally:
        publisher.join()

    assert [d.id for d in got] == [sent.id]
    assert time.monotonic() - started < 6.0  # returned for the message, not at the timeout


def test_reserve_takes_only_from_the_queues_asked_for(broker: Broker) -> None:
    wanted = [envelope("a"), envelope("b")]
    other = envelope("c")
    broker.publish([wanted[0], other, wanted[1]])

    got = broker.reserve(["a", "b"], 10, GENEROUS_WAIT)

    assert sorted(d.id for d in got) == sorted(e.id for e in wanted)
    assert counts(broker, "c")[:3] == (1, 0, 0)
    assert [d.id for d in broker.reserve(["c"], 10, GENEROUS_WAIT)] == [other.id]


def test_messages_published_in_one_call_are_all_stored(make_broker: MakeBroker) -> None:
    producer, consumer = make_broker(), make_broker()
    sent = [envelope("bulk") for _ in range(50)]

    producer.publish(sent)

    assert counts(consumer, "bulk")[0] == 50
    got = consumer.reserve(["bulk"], 100, GENEROUS_WAIT)
    assert [d.id for d in got] == [e.id for e in sent]


# -- order ------------------------------------------------------------------------------


def test_higher_priority_is_reserved_first(broker: Broker, make_broker: MakeBroker) -> None:
    skip_unless_priorities(make_broker)
    low, high, middle = envelope(priority=0), envelope(priority=9), envelope(priority=5)
    broker.publish([low])
    broker.publish([high])
    broker.publish([middle])

    one_by_one = [reserve_one(broker).id for _ in range(3)]

    assert one_by_one == [high.id, middle.id, low.id]


def test_same_priority_is_first_in_first_out(broker: Broker) -> None:
    sent = [envelope(priority=3) for _ in range(6)]
    broker.publish(sent[:3])
    broker.publish(sent[3:])

    batch = broker.reserve(["default"], 4, GENEROUS_WAIT)
    rest = [reserve_one(broker).id for _ in range(2)]

    assert [d.id for d in batch] + rest == [e.id for e in sent]


def test_priority_then_age_order_holds_across_a_batch_from_several_queues(
    broker: Broker, make_broker: Callable[..., Broker]
) -> None:
    if make_broker.kind == "redis-cluster":  # type: ignore[attr-defined]
        pytest.skip("on Redis Cluster each queue is its own slot, reserved in turn: "
                    "priority is exact within a queue only (docs/redis.md)")
    skip_unless_priorities(make_broker)
    a_low, a_high = envelope("a", priority=0), envelope("a", priority=9)
    b_mid, b_high, b_low = envelope("b", priority=5), envelope("b", priority=9), envelope("b")
    for sent in (a_low, a_high, b_mid, b_high, b_low):
        broker.publish([sent])

    got = broker.reserve(["a", "b"], 10, GENEROUS_WAIT)

    assert [d.id for d in got] == [a_high.id, b_high.id, b_mid.id, a_low.id, b_low.id]
    assert [d.priority for d in got] == [9, 9, 5, 0, 0]


# -- delayed messages ---------------------------------------------------------------------


def test_delayed_message_is_not_reserved_before_it_is_due(broker: Broker, clock: Clock) -> None:
    eta = clock.time() + 0.5
    delayed = envelope(eta=eta)
    broker.publish([delayed])

    early = broker.reserve(["default"], 1, 0.1)
    clock.advance(0.5)
    due = reserve_one(broker)

    assert early == []
    assert due.id == delayed.id
    assert clock.time() >= eta - CLOCK_SLACK


def test_ready_messages_are_reserved_while_a_delayed_one_waits(
    broker: Broker, clock: Clock,
) -> None:
    delayed, ready = envelope(eta=clock.time() + 30), envelope()
    broker.publish([delayed, ready])

    got = broker.reserve(["default"], 10, GENEROUS_WAIT)

    assert [d.id for d in got] == [ready.id]


def test_message_with_an_eta_in_the_past_is_ready_at_once(broker: Broker, clock: Clock) -> None:
    overdue = envelope(eta=clock.time() - 5)
    broker.publish([overdue])

    assert counts(broker)[:2] == (1, 0)
    assert [d.id for d in broker.reserve(["default"], 1, 0.5)] == [overdue.id]


def test_delayed_message_counts_as_scheduled_until_due(broker: Broker, clock: Clock) -> None:
    # 1.5 s: the first publish to a queue RabbitMQ has never seen creates its queues,
    # which takes it up to 0.3 s of the delay
    broker.publish([envelope("later", eta=clock.time() + 1.5)])

    before = counts(broker, "later")
    clock.advance(1.65)
    after = counts(broker, "later")

    assert before[:2] == (0, 1)
    assert after[:2] == (1, 0)


# -- leases -------------------------------------------------------------------------------


def test_reserved_message_is_not_handed_out_again_while_its_lease_holds(
    make_broker: MakeBroker,
) -> None:
    first, second = make_broker(), make_broker()
    first.publish([envelope()])
    reserve_one(first)

    again = second.reserve(["default"], 10, 0.3)

    assert again == []
    assert counts(second)[:3] == (0, 0, 1 if sees_others_running(make_broker) else 0)
    assert counts(first)[:3] == (0, 0, 1)


def test_message_is_handed_out_again_after_its_lease_expires(
    make_broker: MakeBroker, clock: Clock,
) -> None:
    first, second = make_broker(lease_seconds=LEASE), make_broker(lease_seconds=LEASE)
    sent = envelope(body=b"work")
    first.publish([sent])
    lost = reserve_one(first)

    clock.advance(LEASE + CLOCK_SLACK)  # the lease runs out
    again = reserve_one(second)

    assert not lost.redelivered
    assert (again.id, again.body) == (sent.id, b"work")
    assert again.redelivered
    assert again.deliveries == 2


def test_a_message_whose_lease_expired_counts_as_ready_not_running(
    make_broker: MakeBroker, clock: Clock,
) -> None:
    consumer = make_broker(lease_seconds=LEASE)
    consumer.publish([envelope()])
    reserve_one(consumer)

    clock.advance(LEASE + 0.2)

    assert counts(consumer)[:3] == (1, 0, 0)


def test_extend_keeps_a_message_past_its_original_lease(
    make_broker: MakeBroker, clock: Clock,
) -> None:
    holder, other = make_broker(lease_seconds=LEASE), make_broker(lease_seconds=LEASE)
    holder.publish([envelope()])
    delivery = reserve_one(holder)
    clock.advance(0.6)

    holder.extend([delivery])
    # Past the original lease (reserved + 1), before the renewed one (>= reserved + 1.6).
    clock.advance(LEASE + 0.3 - 0.6)
    stolen = other.reserve(["default"], 1, 0.1)

    assert stolen == []
    assert counts(other if sees_others_running(make_broker) else holder)[2] == 1
    clock.advance(0.3 + CLOCK_SLACK)  # the renewed lease runs out in its turn
    later = reserve_one(other)
    assert later.id == delivery.id and later.deliveries == 2


# -- fencing: a lost lease can't touch the message any more -------------------------------


def test_ack_with_a_lost_lease_does_nothing(make_broker: MakeBroker, clock: Clock) -> None:
    old_consumer, stale, new_consumer, current = lose_lease(make_broker, clock)

    old_consumer.ack([stale])

    assert counts(new_consumer)[:3] == (0, 0, 1)
    new_consumer.ack([current])
    assert counts(new_consumer)[:3] == (0, 0, 0)
    assert new_consumer.reserve(["default"], 10, 0.2) == []


def test_retry_with_a_lost_lease_does_nothing(make_broker: MakeBroker, clock: Clock) -> None:
    old_consumer, stale, new_consumer, current = lose_lease(make_broker, clock)

    old_consumer.retry(stale, b"stale retry", None)
    old_consumer.retry(stale, b"stale retry later", clock.time() + 0.2)
    clock.advance(0.2 + CLOCK_SLACK)  # past the stale retry's time, within the new lease

    assert new_consumer.reserve(["default"], 10, 0.4) == []
    assert counts(new_consumer)[:3] == (0, 0, 1)
    new_consumer.ack([current])
    assert counts(new_consumer)[:3] == (0, 0, 0)
    assert new_consumer.reserve(["default"], 10, 0.2) == []


def test_dead_letter_with_a_lost_lease_does_nothing(make_broker: MakeBroker, clock: Clock) -> None:
    old_consumer, stale, new_consumer, current = lose_lease(make_broker, clock)

    old_consumer.dead_letter(stale, "stale failure")

    assert new_consumer.dead_letters() == []
    assert counts(new_consumer) == (0, 0, 1, 0)
    new_consumer.ack([current])
    assert counts(new_consumer) == (0, 0, 0, 0)
    assert new_consumer.dead_letters() == []


def test_extend_with_a_lost_lease_does_not_renew_the_new_holders_lease(
    make_broker: MakeBroker, clock: Clock,
) -> None:
    old_consumer, stale, new_consumer, current = lose_lease(make_broker, clock)
    clock.advance(0.7)

    old_consumer.extend([stale])
    clock.advance(LEASE - 0.7 + CLOCK_SLACK)  # the new holder never acks: its lease runs out
    third = new_consumer.reserve(["default"], 1, 0.2)

    # A working stale extend would still hold the message, for another LEASE from then.
    assert [(d.id, d.deliveries) for d in third] == [(current.id, 3)]


# -- finishing messages ---------------------------------------------------------------------


def test_acked_message_is_gone_for_good(make_broker: MakeBroker, clock: Clock) -> None:
    consumer = make_broker(lease_seconds=LEASE)
    consumer.publish([envelope()])
    delivery = reserve_one(consumer)

    consumer.ack([delivery])

    assert counts(consumer)[:3] == (0, 0, 0)
    # Even once its lease would have run out, it never comes back.
    clock.advance(LEASE + CLOCK_SLACK)
    assert consumer.reserve(["default"], 10, 0.2) == []


def test_ack_of_a_batch_removes_every_message_in_it(broker: Broker) -> None:
    broker.publish([envelope() for _ in range(4)])
    batch = broker.reserve(["default"], 4, GENEROUS_WAIT)

    broker.ack(batch)

    assert counts(broker)[:3] == (0, 0, 0)


def test_retry_with_a_later_time_redelivers_the_new_body_only_then(
    broker: Broker, clock: Clock,
) -> None:
    sent = envelope("jobs", body=b"attempt 1")
    broker.publish([sent])
    delivery = reserve_one(broker, ["jobs"])
    at = clock.time() + 0.5

    broker.retry(delivery, b"attempt 2", at)
    early = broker.reserve(["jobs"], 1, 0.1)
    early_counts = counts(broker, "jobs")
    clock.advance(0.5)
    again = reserve_one(broker, ["jobs"])

    assert early == []
    assert early_counts[:3] == (0, 1, 0)
    assert clock.time() >= at - CLOCK_SLACK
    assert (again.id, again.queue, again.body) == (sent.id, "jobs", b"attempt 2")


def test_retry_without_a_time_is_ready_at_once(broker: Broker) -> None:
    sent = envelope(body=b"attempt 1")
    broker.publish([sent])
    delivery = reserve_one(broker)

    broker.retry(delivery, b"attempt 2", None)

    again = broker.reserve(["default"], 1, 0.5)
    assert [(d.id, d.body) for d in again] == [(sent.id, b"attempt 2")]


# -- entries: one stored message, named alike in every process ---------------------------
# The run-once guard (workflow steps, beat ticks) claims a task id with `Delivery.entry`:
# a hand-out of the same entry must run again, a second publish of the id must not.


def test_a_message_handed_out_again_after_a_lost_lease_keeps_its_entry(
    make_broker: MakeBroker, clock: Clock,
) -> None:
    _, stale, _, current = lose_lease(make_broker, clock)

    assert stale.entry
    assert current.entry == stale.entry


def test_a_message_whose_consumer_went_away_keeps_its_entry(
    make_broker: MakeBroker, clock: Clock,
) -> None:
    # Given a consumer that finished a message, then reserved another and went away
    # without settling it
    holder, other = make_broker(lease_seconds=LEASE), make_broker(lease_seconds=LEASE)
    holder.publish([envelope()])
    holder.ack([reserve_one(holder)])
    holder.publish([envelope()])
    first = reserve_one(holder)
    if make_broker.kind != "memory":  # type: ignore[attr-defined]  # one shared store
        holder.close()

    # When it is handed out to another consumer (at once on RabbitMQ, after the lease)
    clock.advance(LEASE + CLOCK_SLACK)
    again = reserve_one(other)

    # Then it is the same entry
    assert (again.id, again.redelivered) == (first.id, True)
    assert again.entry == first.entry


def test_a_retried_message_keeps_its_entry(broker: Broker, clock: Clock) -> None:
    broker.publish([envelope()])
    first = reserve_one(broker)

    broker.retry(first, b"attempt 2", None)
    second = reserve_one(broker)
    broker.retry(second, b"attempt 3", clock.time() + 0.3)
    clock.advance(0.3 + CLOCK_SLACK)
    third = reserve_one(broker)

    assert [d.body for d in (second, third)] == [b"attempt 2", b"attempt 3"]
    assert first.entry == second.entry == third.entry


def test_each_publish_of_a_task_id_is_an_entry_of_its_own(make_broker: MakeBroker) -> None:
    # Given one task id published twice in one call and once more in another
    sent = envelope()
    consumers = [make_broker() for _ in range(3)]
    consumers[0].publish([sent, sent])
    consumers[0].publish([sent])

    # When three consumers take a copy each
    got = [reserve_one(consumer) for consumer in consumers]

    # Then they are three entries, though each consumer got its first message
    assert [d.id for d in got] == [sent.id] * 3
    assert len({d.entry for d in got}) == 3


# -- dead letters ---------------------------------------------------------------------------


def dead_letter_new(broker: Broker, queue: str, reason: str = "failed") -> str:
    sent = envelope(queue)
    broker.publish([sent])
    broker.dead_letter(reserve_one(broker, [queue]), reason)
    return sent.id


def test_dead_letter_keeps_the_body_and_reason_out_of_the_queue(broker: Broker) -> None:
    sent = envelope("emails", body=b"the exact bytes")
    broker.publish([sent])
    delivery = reserve_one(broker, ["emails"])

    broker.dead_letter(delivery, "ValueError: bad address")

    dead = broker.dead_letters()
    assert len(dead) == 1
    assert (dead[0].id, dead[0].queue, dead[0].reason, dead[0].body) == (
        sent.id, "emails", "ValueError: bad address", b"the exact bytes"
    )
    assert abs(dead[0].failed_at - time.time()) < 60
    assert counts(broker, "emails") == (0, 0, 0, 1)
    assert broker.reserve(["emails"], 10, 0.2) == []


def test_dead_letters_are_newest_first_filtered_by_queue_and_limited(broker: Broker) -> None:
    first = dead_letter_new(broker, "a")
    second = dead_letter_new(broker, "b")
    third = dead_letter_new(broker, "a")

    everything = broker.dead_letters()
    of_a = broker.dead_letters("a")
    newest = broker.dead_letters(limit=1)

    assert [d.id for d in everything] == [third, second, first]
    assert [d.id for d in of_a] == [third, first]
    assert [d.id for d in newest] == [third]


def test_purge_dead_of_one_queue(broker: Broker) -> None:
    dead_letter_new(broker, "a")
    dead_letter_new(broker, "a")
    kept = dead_letter_new(broker, "b")

    removed = broker.purge_dead("a")

    assert removed == 2
    assert [d.id for d in broker.dead_letters()] == [kept]
    assert counts(broker, "a")[3] == 0
    assert counts(broker, "b")[3] == 1


def test_purge_dead_by_ids(broker: Broker) -> None:
    first = dead_letter_new(broker, "a")
    second = dead_letter_new(broker, "b")
    third = dead_letter_new(broker, "a")

    removed = broker.purge_dead(ids=[first, second])

    assert removed == 2
    assert [d.id for d in broker.dead_letters()] == [third]


def test_purge_dead_with_no_ids_removes_nothing(broker: Broker) -> None:
    kept = dead_letter_new(broker, "a")

    removed = broker.purge_dead(ids=[])

    assert removed == 0
    assert [d.id for d in broker.dead_letters()] == [kept]


def test_purge_dead_of_everything(broker: Broker) -> None:
    for queue in ("a", "b", "default"):
        dead_letter_new(broker, queue)

    removed = broker.purge_dead()

    assert removed == 3
    assert broker.dead_letters() == []
    assert all(stats.dead == 0 for stats in broker.stats().values())


# -- revoking waiting messages ------------------------------------------------------------


def revoked_ids(broker: Broker, ids: Sequence[str]) -> list[str]:
    return sorted(r.id for r in broker.revoke(ids))


def test_revoke_removes_a_ready_message_and_hands_back_its_body(broker: Broker) -> None:
    doomed, kept = envelope("jobs", body=b"doomed"), envelope("jobs")
    broker.publish([doomed, kept])

    revoked = broker.revoke([doomed.id])

    assert [(r.id, r.queue, r.body) for r in revoked] == [(doomed.id, "jobs", b"doomed")]
    assert counts(broker, "jobs")[:3] == (1, 0, 0)
    assert [d.id for d in broker.reserve(["jobs"], 10, GENEROUS_WAIT)] == [kept.id]
    assert broker.reserve(["jobs"], 10, 0.2) == []


def test_revoke_removes_a_scheduled_message_which_then_never_comes_due(
    broker: Broker, clock: Clock,
) -> None:
    later = envelope(eta=clock.time() + 0.3)
    broker.publish([later])

    revoked = revoked_ids(broker, [later.id])

    assert revoked == [later.id]
    assert counts(broker)[:3] == (0, 0, 0)
    clock.advance(0.3 + CLOCK_SLACK)  # past when it was due
    assert broker.reserve(["default"], 10, 0.2) == []


def test_revoke_removes_a_message_waiting_for_a_retry_backoff(
    broker: Broker, clock: Clock,
) -> None:
    sent = envelope(body=b"attempt 1")
    broker.publish([sent])
    broker.retry(reserve_one(broker), b"attempt 2", clock.time() + 0.3)

    revoked = broker.revoke([sent.id])

    assert [(r.id, r.body) for r in revoked] == [(sent.id, b"attempt 2")]
    assert counts(broker)[:3] == (0, 0, 0)
    clock.advance(0.3 + CLOCK_SLACK)  # past when it was due
    assert broker.reserve(["default"], 10, 0.2) == []


def test_revoke_leaves_a_reserved_message_to_its_worker(make_broker: MakeBroker) -> None:
    worker, admin = make_broker(), make_broker()
    worker.publish([envelope()])
    running = reserve_one(worker)

    revoked = admin.revoke([running.id])

    assert revoked == []
    assert counts(admin if sees_others_running(make_broker) else worker)[:3] == (0, 0, 1)
    worker.ack([running])
    assert counts(admin)[:3] == (0, 0, 0)


def test_revoke_ignores_unknown_finished_and_dead_messages(broker: Broker) -> None:
    finished = envelope()
    broker.publish([finished])
    broker.ack([reserve_one(broker)])
    dead = dead_letter_new(broker, "default")

    revoked = broker.revoke(["never-published", finished.id, dead])

    assert revoked == []
    assert [d.id for d in broker.dead_letters()] == [dead]
    assert counts(broker) == (0, 0, 0, 1)


def test_revoke_finds_messages_in_any_queue_and_leaves_the_others_as_they_were(
    make_broker: MakeBroker, clock: Clock,
) -> None:
    skip_unless_priorities(make_broker)
    producer, admin = make_broker(), make_broker()
    low, high = envelope("a", priority=1), envelope("a", priority=8)
    doomed_a, doomed_b = envelope("a", priority=9), envelope("b")
    kept_b, kept_later = envelope("b", body=b"kept"), envelope("c", eta=clock.time() + 60)
    producer.publish([low, doomed_a, high, doomed_b, kept_b, kept_later])

    revoked = revoked_ids(admin, [doomed_a.id, doomed_b.id])

    assert revoked == sorted([doomed_a.id, doomed_b.id])
    assert (counts(admin, "a")[:3], counts(admin, "b")[:3], counts(admin, "c")[:3]) == (
        (2, 0, 0), (1, 0, 0), (0, 1, 0))
    assert [d.id for d in producer.reserve(["a"], 10, GENEROUS_WAIT)] == [high.id, low.id]
    assert [(d.id, d.body) for d in producer.reserve(["b"], 10, GENEROUS_WAIT)] == [
        (kept_b.id, b"kept")]


def test_revoking_again_or_nothing_revokes_nothing(broker: Broker) -> None:
    sent = envelope()
    broker.publish([sent])

    first = revoked_ids(broker, [sent.id, sent.id])
    again = broker.revoke([sent.id])

    assert first == [sent.id]
    assert again == []
    assert broker.revoke([]) == []


def test_revoke_matches_ids_exactly_whatever_characters_they_hold(broker: Broker) -> None:
    odd = Envelope(id="order|7*[x]?", queue="default", priority=0, eta=None, body=b"odd")
    similar = Envelope(id="7*[x]?", queue="default", priority=0, eta=None, body=b"similar")
    broker.publish([odd, similar])

    revoked = revoked_ids(broker, ["7*[x]?", "order|7*"])

    assert revoked == ["7*[x]?"]
    assert [d.id for d in broker.reserve(["default"], 10, GENEROUS_WAIT)] == [odd.id]


# -- purge and stats --------------------------------------------------------------------------


def test_purge_deletes_ready_and_scheduled_but_lets_running_messages_finish(
    broker: Broker, clock: Clock,
) -> None:
    broker.publish([envelope("q") for _ in range(4)])
    broker.publish([envelope("q", eta=clock.time() + 60) for _ in range(2)])
    other = envelope("other")
    broker.publish([other])
    running = reserve_one(broker, ["q"])

    removed = broker.purge("q")

    assert removed == 5
    assert counts(broker, "q")[:3] == (0, 0, 1)
    assert counts(broker, "other")[:3] == (1, 0, 0)
    broker.ack([running])
    assert counts(broker, "q")[:3] == (0, 0, 0)
    assert broker.reserve(["q"], 10, 0.2) == []
    assert [d.id for d in broker.reserve(["other"], 10, GENEROUS_WAIT)] == [other.id]


def test_purge_of_an_empty_queue_returns_zero(broker: Broker) -> None:
    assert broker.purge("nothing-here") == 0


def test_stats_include_default_even_when_nothing_was_published(broker: Broker) -> None:
    stats = broker.stats()

    assert "default" in stats
    assert counts(broker) == (0, 0, 0, 0)


def test_stats_count_ready_scheduled_and_running_per_queue(broker: Broker, clock: Clock) -> None:
    broker.publish([envelope("a"), envelope("a"), envelope("a", eta=clock.time() + 60)])
    broker.publish([envelope("b")])
    reserve_one(broker, ["a"])

    stats = broker.stats()

    assert {"default", "a", "b"} <= set(stats)
    assert counts(broker, "a") == (1, 1, 1, 0)
    assert counts(broker, "b") == (1, 0, 0, 0)
    assert counts(broker, "default") == (0, 0, 0, 0)


# -- workers ----------------------------------------------------------------------------------


def test_heartbeats_list_live_workers_and_forget_drops_one(make_broker: MakeBroker) -> None:
    worker, monitor = make_broker(), make_broker()
    one, two = worker_info("w-1"), worker_info("w-2")

    worker.heartbeat(one, 60)
    worker.heartbeat(two, 60)
    both = {w.id: w for w in monitor.workers()}
    worker.forget_worker("w-1")
    after = monitor.workers()

    assert both == {"w-1": one, "w-2": two}
    assert after == [two]


def test_a_new_heartbeat_replaces_the_workers_info(broker: Broker) -> None:
    broker.heartbeat(worker_info("w-1", processed=1), 60)

    broker.heartbeat(worker_info("w-1", processed=7), 60)

    assert [(w.id, w.processed) for w in broker.workers()] == [("w-1", 7)]


def test_a_worker_disappears_when_its_heartbeat_expires(broker: Broker, clock: Clock) -> None:
    broker.heartbeat(worker_info("short"), 0.5)
    broker.heartbeat(worker_info("long"), 60)
    before = {w.id for w in broker.workers()}

    clock.advance(0.7)

    assert before == {"short", "long"}
    assert [w.id for w in broker.workers()] == ["long"]


def stored_workers(broker: Broker, kind: str) -> int:
    """How many worker entries the store holds, expired or not (a look inside)."""
    if kind == "memory":
        return len(broker._workers)  # type: ignore[attr-defined]
    if kind == "sqlite":
        with closing(sqlite3.connect(broker._db.path)) as conn:  # type: ignore[attr-defined]
            return int(conn.execute("SELECT count(*) FROM conveyor_workers").fetchone()[0])
    if kind.startswith("amqp"):
        from conveyor.backends.amqp.topology import count

        names = broker.names  # type: ignore[attr-defined]

        async def workers_queue(session: Any) -> int:
            return await count(await session.channel("admin"), names.workers)

        return int(broker.client.run(workers_queue))  # type: ignore[attr-defined]
    client, ns = broker.client, broker.namespace  # type: ignore[attr-defined]
    return max(int(client.zcard(f"{ns}:workers")), int(client.hlen(f"{ns}:worker-info")))


def test_a_heartbeat_drops_the_entries_of_workers_that_died(make_broker: MakeBroker,
                                                             clock: Clock) -> None:
    # A SIGKILLed worker never deregisters: the next heartbeat of any worker clears it
    broker = make_broker()
    broker.heartbeat(worker_info("killed"), 0.5)
    clock.advance(0.7)

    broker.heartbeat(worker_info("alive"), 60)

    assert [w.id for w in broker.workers()] == ["alive"]
    assert stored_workers(broker, make_broker.kind) == 1  # type: ignore[attr-defined]


def test_forgetting_an_unknown_worker_is_harmless(broker: Broker) -> None:
    broker.forget_worker("never-seen")

    assert broker.workers() == []


# -- concurrency ------------------------------------------------------------------------------


def drain(broker: Broker, got: list[str], errors: list[BaseException]) -> None:
    """Reserve small batches and ack them until nothing is left to reserve."""
    try:
        while batch := broker.reserve(["default"], 5, 0.3):
            got.extend(d.id for d in batch)
            broker.ack(batch)
            time.sleep(0.001)  # "work" between batches, so the consumers interleave
    except BaseException as exc:  # reported by the test, not lost in the thread
        errors.append(exc)


def test_concurrent_consumers_get_every_message_exactly_once(make_broker: MakeBroker) -> None:
    sent = [envelope() for _ in range(600)]
    make_broker().publish(sent)
    consumers = [make_broker() for _ in range(4)]
    got: list[list[str]] = [[] for _ in consumers]
    errors: list[BaseException] = []
    threads = [threading.Thread(target=drain, args=(consumer, ids, errors))
               for consumer, ids in zip(consumers, got, strict=True)]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    handed_out = [message_id for ids in got for message_id in ids]
    assert len(handed_out) == len(sent)
    assert set(handed_out) == {e.id for e in sent}
    assert counts(consumers[0])[:3] == (0, 0, 0)


def consume_in_process(url: str, out: str, barrier: Barrier) -> None:
    """A consumer process: its own broker on the same store, writing the ids it got."""
    broker = broker_from_url(url)
    got: list[str] = []
    try:
        barrier.wait(60)
        while batch := broker.reserve(["default"], 5, 0.5):
            got.extend(d.id for d in batch)
            broker.ack(batch)
            time.sleep(0.001)  # "work" between batches, so the processes interleave
    finally:
        broker.close()
    Path(out).write_text("".join(f"{message_id}\n" for message_id in got))


def test_consumer_processes_get_every_message_exactly_once(
    make_broker: MakeBroker, tmp_path: Path
) -> None:
    if getattr(make_broker, "kind", None) == "memory":
        pytest.skip("the memory broker lives in one process: other processes can't share it")
    broker = make_broker()
    sent = [envelope() for _ in range(800)]
    broker.publish(sent)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    outputs = [tmp_path / f"ids-{i}.txt" for i in range(4)]
    processes = [context.Process(target=consume_in_process, args=(broker.url, str(out), barrier))
                 for out in outputs]

    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join(90)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()

    assert [process.exitcode for process in processes] == [0, 0, 0, 0]
    handed_out = [line for out in outputs for line in out.read_text().splitlines()]
    assert len(handed_out) == len(sent)
    assert set(handed_out) == {e.id for e in sent}
    assert counts(broker)[:3] == (0, 0, 0)


# -- closing ----------------------------------------------------------------------------------


def test_close_is_safe_to_call_twice(make_broker: MakeBroker) -> None:
    broker = make_broker()
    broker.publish([envelope()])

    broker.close()
    broker.close()
