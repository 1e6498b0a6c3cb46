"""The coordination contract: what every Coordination store must do (claims, joined sets,
values, pace schedules), checked only through the Protocol.

Expiry follows the `clock` fixture: on the in-process stores it is fake, so TTLs run out
at once when the test advances it; elsewhere advancing it sleeps.
"""

from __future__ import annotations

import threading
import uuid

import pytest

from conveyor.store import Coordination
from tests.conftest import Clock

TTL = 60.0


def key() -> str:
    return f"k-{uuid.uuid4().hex}"


def test_a_claim_held_by_another_owner_returns_that_owner(coordination: Coordination) -> None:
    lock = key()

    first = coordination.claim(lock, "alice", TTL)
    second = coordination.claim(lock, "bob", TTL)

    assert (first, second) == ("alice", "alice")


def test_claiming_again_renews_the_claim(coordination: Coordination, clock: Clock) -> None:
    lock = key()
    coordination.claim(lock, "alice", 0.5)
    clock.advance(0.3)

    renewed = coordination.claim(lock, "alice", 0.5)
    clock.advance(0.3)  # past the first claim's expiry, within the renewal's

    assert renewed == "alice"
    assert coordination.claim(lock, "bob", TTL) == "alice"


def test_a_claim_expires_and_another_owner_can_take_it(
        coordination: Coordination, clock: Clock) -> None:
    lock = key()
    coordination.claim(lock, "alice", 0.2)

    clock.advance(0.3)

    assert coordination.claim(lock, "bob", TTL) == "bob"
    assert coordination.claim(lock, "alice", TTL) == "bob"


def test_release_frees_the_owners_claim(coordination: Coordination) -> None:
    lock = key()
    coordination.claim(lock, "alice", TTL)

    released = coordination.release(lock, "alice")

    assert released is True
    assert coordination.claim(lock, "bob", TTL) == "bob"


def test_release_by_another_owner_does_nothing(coordination: Coordination) -> None:
    lock = key()
    coordination.claim(lock, "alice", TTL)

    released = coordination.release(lock, "bob")

    assert released is False
    assert coordination.claim(lock, "bob", TTL) == "alice"
    assert coordination.release(key(), "bob") is False  # nobody holds it


def test_one_of_many_concurrent_claims_wins(coordination: Coordination) -> None:
    lock = key()
    barrier = threading.Barrier(20)
    holders: list[str] = []

    def contend(owner: str) -> None:
        barrier.wait()
        holders.append(coordination.claim(lock, owner, TTL))

    threads = [threading.Thread(target=contend, args=(f"owner-{n}",)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(holders) == 20
    assert len(set(holders)) == 1  # everyone saw the same winner...
    assert holders[0] in {f"owner-{n}" for n in range(20)}  # ...one of them


def test_join_counts_a_member_once(coordination: Coordination) -> None:
    chord = key()

    sizes = [coordination.join([(chord, member)], TTL)[0] for member in ["a", "b", "a", "c"]]

    assert sizes == [1, 2, 2, 3]


def test_join_takes_entries_of_several_keys_in_one_call(coordination: Coordination) -> None:
    one, two = key(), key()
    coordination.join([(one, "a")], TTL)

    sizes = coordination.join([(one, "b"), (two, "a"), (one, "b"), (one, "c"), (two, "b")],
                              TTL)

    assert sizes == [2, 1, 2, 3, 2]
    assert coordination.join([], TTL) == []


def test_a_joined_set_expires_after_its_ttl(coordination: Coordination, clock: Clock) -> None:
    chord = key()
    coordination.join([(chord, "a"), (chord, "b")], 0.2)

    clock.advance(0.3)

    assert coordination.join([(chord, "c")], TTL) == [1]


def test_each_join_renews_the_whole_set(coordination: Coordination, clock: Clock) -> None:
    chord = key()
    coordination.join([(chord, "a")], 0.5)
    clock.advance(0.3)
    coordination.join([(chord, "b")], 0.5)

    clock.advance(0.3)  # past "a"'s first expiry, within the renewal

    assert coordination.join([(chord, "c")], TTL) == [3]


def test_concurrent_joins_count_every_member_exactly_once(coordination: Coordination) -> None:
    chord = key()
    barrier = threading.Barrier(50)
    sizes: list[int] = []

    def join(member: str) -> None:
        barrier.wait()
        sizes.extend(coordination.join([(chord, member)], TTL))

    threads = [threading.Thread(target=join, args=(f"m-{n}",)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(sizes) == list(range(1, 51))  # each size seen once: the adds are atomic
    assert coordination.join([(chord, "m-0")], TTL) == [50]


def test_put_values_come_back_from_fetch(coordination: Coordination) -> None:
    one, two = key(), key()

    coordination.put(one, "first", TTL)
    coordination.put(two, '{"json": "ünïcode ✓"}', TTL)
    coordination.put(one, "replaced", TTL)

    assert coordination.fetch([two, "never-put", one]) == [
        '{"json": "ünïcode ✓"}', None, "replaced"]
    assert coordination.fetch([]) == []


def test_a_put_value_expires_after_its_ttl(coordination: Coordination, clock: Clock) -> None:
    gone, kept = key(), key()
    coordination.put(gone, "short", 0.2)
    coordination.put(kept, "long", TTL)

    clock.advance(0.3)

    assert coordination.fetch([gone, kept]) == [None, "long"]


def test_coordination_keys_never_meet_task_ids(coordination: Coordination) -> None:
    # A key that is a task id, and one that looks like a store's own prefixed key: claims,
    # sets and values of either never meet each other, nor those of the other key.
    task_id = uuid.uuid4().hex
    prefixed = f"claim:{task_id}"

    coordination.put(task_id, "a value", TTL)
    holder = coordination.claim(task_id, "alice", TTL)
    size = coordination.join([(task_id, "member")], TTL)
    coordination.put(prefixed, "another value", TTL)
    prefixed_holder = coordination.claim(prefixed, "bob", TTL)
    prefixed_size = coordination.join([(prefixed, "other"), (prefixed, "member")], TTL)

    assert (holder, size) == ("alice", [1])
    assert (prefixed_holder, prefixed_size) == ("bob", [1, 2])
    assert coordination.fetch([task_id, prefixed]) == ["a value", "another value"]
    assert coordination.claim(task_id, "bob", TTL) == "alice"
    assert coordination.claim(prefixed, "alice", TTL) == "bob"
    assert coordination.join([(task_id, "member")], TTL) == [1]
    assert coordination.release(task_id, "alice") is True
    assert coordination.claim(prefixed, "alice", TTL) == "bob"
    assert coordination.fetch([task_id, prefixed]) == ["a value", "another value"]


def test_a_value_put_for_a_century_is_kept(coordination: Coordination, clock: Clock) -> None:
    # What the paused queues rely on (lifecycle/pausing.py): a value that lasts until
    # replaced, with a TTL far past any store's default
    kept = key()
    coordination.put(kept, '["emails"]', 100 * 365 * 86400.0)
    clock.advance(0.2)

    assert coordination.fetch([kept]) == ['["emails"]']


# -- pace: the slots rate limits take ---------------------------------------------------
# On the real-clock stores a call's own time shows in its answer: hence the tolerances.


def test_pace_hands_out_one_slot_per_interval_starting_now(coordination: Coordination) -> None:
    schedule = key()

    waits = [coordination.pace(schedule, 10.0) for _ in range(4)]

    assert waits == pytest.approx([0.0, 10.0, 20.0, 30.0], abs=0.2)


def test_an_idle_pace_schedule_starts_now_again_without_a_burst(
        coordination: Coordination, clock: Clock) -> None:
    schedule = key()
    coordination.pace(schedule, 0.2)
    coordination.pace(schedule, 0.2)  # the second slot starts 0.2 s from now

    clock.advance(0.6)  # past both slots: the schedule is idle

    assert coordination.pace(schedule, 0.2) == pytest.approx(0.0, abs=0.05)
    assert coordination.pace(schedule, 0.2) == pytest.approx(0.2, abs=0.05)  # no credit kept


def test_pace_schedules_of_different_keys_are_independent(coordination: Coordination) -> None:
    one, two = key(), key()
    coordination.pace(one, 60.0)

    assert coordination.pace(two, 60.0) == pytest.approx(0.0, abs=0.2)
    assert coordination.pace(one, 60.0) == pytest.approx(60.0, abs=0.2)


def test_pace_keys_never_meet_the_other_primitives(coordination: Coordination) -> None:
    shared = key()
    coordination.put(shared, "a value", TTL)
    coordination.claim(shared, "alice", TTL)
    coordination.join([(shared, "member")], TTL)

    wait = coordination.pace(shared, 60.0)

    assert wait == pytest.approx(0.0, abs=0.2)
    assert coordination.fetch([shared]) == ["a value"]
    assert coordination.claim(shared, "bob", TTL) == "alice"
    assert coordination.join([(shared, "member")], TTL) == [1]


def test_concurrent_callers_get_distinct_evenly_spaced_slots(
        coordination: Coordination, clock: Clock) -> None:
    # What makes a rate limit hold cluster-wide: callers racing for one schedule (threads
    # here, worker processes in production) never share a slot, nor crowd one interval.
    # A slot is `wait` after the store's "now", some time between the call and its return:
    # callers that waited longer for their turn got nearer slots, the slots don't move.
    schedule, callers, interval = key(), 20, 0.5
    barrier = threading.Barrier(callers)
    slots: list[tuple[float, float]] = []  # (earliest, latest) the slot can be

    def take() -> None:
        barrier.wait()
        called = clock.time()
        wait = coordination.pace(schedule, interval)
        slots.append((called + wait, clock.time() + wait))

    threads = [threading.Thread(target=take) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    slots.sort(key=sum)
    for (earliest, latest), (next_earliest, next_latest) in zip(slots, slots[1:],
                                                                strict=False):
        assert next_latest - earliest >= interval - 0.01  # never two in one interval
        assert next_earliest - latest <= interval + 0.01  # and no gap between them
