"""Runtime schedules (`app.schedules`) through beats in this process on one store (in
memory, SQLite, Redis), on a fake clock: what operators add, change, pause and remove
is published from its next tick, once, beside the schedules in code."""

from __future__ import annotations

import logging
import random
from collections import Counter

import pytest

from conveyor import App, every
from conveyor.beat.scheduler import REFRESH, Beat, overview, tick_id
from conveyor.lifecycle import schedule_store
from conveyor.lifecycle.scheduling import Schedules
from tests.beat.test_scheduler import START, Clock, Connect, connect, drain, expire, ticks

__all__ = ["connect"]
CODE = {"ten": (every(seconds=10), "once")}


def operator(app: App, clock: Clock) -> Schedules:
    """`app.schedules` on the fake clock the beats read."""
    return Schedules(app, clock=clock)


def run(beats: list[Beat], clock: Clock, seconds: float, step: float = 1.0) -> None:
    """Every beat makes a pass each `step` seconds of fake time, for `seconds`."""
    end = clock.t + seconds
    while clock.t < end:
        clock.advance(step)
        for beat in beats:
            beat.step()


def test_a_schedule_added_at_run_time_ticks_from_its_next_tick(connect: Connect) -> None:
    # Given a beat running the schedules in code
    clock = Clock()
    beat = Beat(connect(CODE), lease=10, clock=clock)
    run([beat], clock, 20)
    drain(beat.app)

    # When an operator adds one (from another App on the same store) at 00:00:23.5
    clock.advance(0.5)
    operator(connect(CODE), clock).add("five", "jobs.tick", every(seconds=5), args=())
    added = clock.t
    run([beat], clock, 30)

    # Then its ticks after that moment are published, once each, beside the code ones
    messages = drain(beat.app)
    assert ticks(messages, "five") == [START - 3 + 25 + 5 * i for i in range(6)]
    assert all(t > added for t in ticks(messages, "five"))
    assert ticks(messages, "ten") == [START - 3 + 30, START - 3 + 40, START - 3 + 50]
    assert all(m.id == tick_id("beat-test", m.headers["beat_schedule"],
                               ticks([m], m.headers["beat_schedule"])[0]) for m in messages)


def test_the_beat_sees_a_change_within_its_refresh_time(connect: Connect) -> None:
    # Given a beat whose only schedule ticks once a day: it would sleep a lease at a time
    clock = Clock()
    beat = Beat(connect({"daily": (every(days=1), "once")}), lease=30, clock=clock)
    assert beat.step() <= REFRESH

    # When a schedule is added, the beat's next pass, at most REFRESH later, has it
    operator(beat.app, clock).add("second", "jobs.tick", every(seconds=1))
    clock.advance(beat.step())
    beat.step()

    assert ticks(drain(beat.app), "second") == [clock.t]


def test_a_paused_schedule_does_not_fire_and_resumes_at_its_next_tick(
    connect: Connect,
) -> None:
    # Given a runtime schedule every 5 s that has been ticking
    clock = Clock()
    beat = Beat(connect(CODE), lease=10, clock=clock)
    schedules = operator(beat.app, clock)
    schedules.add("five", "jobs.tick", every(seconds=5), catch_up="once")
    run([beat], clock, 12)
    assert len(ticks(drain(beat.app), "five")) == 3  # at :05, :10, :15

    # When it is paused for a minute, then resumed
    assert schedules.pause("five") is True and schedules.pause("five") is False
    run([beat], clock, 60)
    while_paused = drain(beat.app)
    assert schedules.resume("five") is True and schedules.resume("five") is False
    resumed_at = clock.t
    run([beat], clock, 11)

    # Then nothing of it was published while paused (the code schedule went on), and
    # after the resume only its new ticks: no burst of the ticks it missed
    assert ticks(while_paused, "five") == [] and len(ticks(while_paused, "ten")) == 6
    after = ticks(drain(beat.app), "five")
    assert after == [t for t in range(int(resumed_at) + 1, int(clock.t) + 1) if t % 5 == 0]
    assert schedules.get("five").paused is False


def test_a_resume_after_every_beat_stopped_fires_nothing_from_the_pause(
    connect: Connect,
) -> None:
    clock = Clock()
    beat = Beat(connect(CODE), lease=10, clock=clock)
    schedules = operator(beat.app, clock)
    schedules.add("minute", "jobs.tick", every(minutes=1), catch_up="once")
    run([beat], clock, 5)
    schedules.pause("minute")
    beat.resign()

    # When no beat runs for an hour, and the schedule is resumed before one starts again
    clock.advance(3600)
    schedules.resume("minute")
    again = Beat(connect(CODE), lease=10, clock=clock)
    run([again], clock, 65)

    # Then catch_up="once" doesn't publish 01:00:00, which fell while it was paused:
    # its first tick is the first after the resume (01:00:08)
    assert ticks(drain(again.app), "minute") == [START - 3 + 3660]


def test_removing_a_schedule_stops_it_and_re_adding_the_name_starts_afresh(
    connect: Connect,
) -> None:
    clock = Clock()
    beat = Beat(connect(CODE), lease=10, clock=clock)
    schedules = operator(beat.app, clock)
    schedules.add("five", "jobs.tick", every(seconds=5))
    run([beat], clock, 10)
    drain(beat.app)

    schedules.remove("five")
    run([beat], clock, 30)
    after_removal = drain(beat.app)
    schedules.add("five", "jobs.tick", every(seconds=5))
    readded_at = clock.t
    run([beat], clock, 10)

    assert ticks(after_removal, "five") == []
    assert ticks(drain(beat.app), "five") == [readded_at + 2, readded_at + 7]


def test_replacing_a_schedule_changes_its_ticks_and_keeps_it_paused(connect: Connect) -> None:
    clock = Clock()
    beat = Beat(connect(CODE), lease=10, clock=clock)
    schedules = operator(beat.app, clock)
    schedules.add("s", "jobs.tick", every(seconds=5))
    run([beat], clock, 10)
    drain(beat.app)

    schedules.add("s", "jobs.tick", every(seconds=20), replace=True)
    run([beat], clock, 40)
    assert ticks(drain(beat.app), "s") == [START - 3 + 20, START - 3 + 40]

    schedules.pause("s")
    schedules.add("s", "jobs.tick", every(seconds=2), replace=True)
    run([beat], clock, 10)
    assert ticks(drain(beat.app), "s") == [] and schedules.get("s").paused


def test_two_beats_taking_turns_never_double_a_runtime_tick(connect: Connect) -> None:
    # Given two beats, an operator changing schedules, and leaders dying or stopping
    clock, rng = Clock(), random.Random(11)
    beats = [Beat(connect(CODE), lease=10, clock=clock, beat_id=f"b{i}") for i in range(2)]
    schedules = operator(connect(CODE), clock)
    schedules.add("three", "jobs.tick", every(seconds=3))
    schedules.add("seven", "jobs.tick", every(seconds=7))
    dying: list[tuple[Beat, float]] = []

    for _ in range(900):  # about half an hour
        clock.advance(rng.uniform(0.5, 3.0))
        for beat in rng.sample(beats, len(beats)):
            beat.step()
        for dead, until in list(dying):
            if clock.t >= until + 10:
                expire(dead)
                dying.remove((dead, until))
        leader = next((b for b in beats if b.is_leader), None)
        if leader is not None and rng.random() < 0.02:
            beats.remove(leader)
            if rng.random() < 0.5:
                leader.resign()
            else:
                dying.append((leader, clock.t))
            beats.append(Beat(connect(CODE), lease=10, clock=clock,
                              beat_id=f"b{len(beats)}-{clock.t}"))
        if rng.random() < 0.01:
            schedules.add("seven", "jobs.tick", every(seconds=rng.choice([7, 11])),
                          replace=True)

    # Then no tick of any schedule was published twice, and "three" never missed one
    messages = drain(beats[0].app)
    assert max(Counter(m.id for m in messages).values()) == 1
    three = ticks(messages, "three")
    assert three == [three[0] + 3 * i for i in range(len(three))] and len(three) > 400


def test_a_task_the_beat_does_not_know_is_sent_by_name(
    connect: Connect, caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    beat = Beat(connect(CODE), lease=10, clock=clock)
    operator(beat.app, clock).add("remote", "billing.invoice", every(seconds=5), args=(7,),
                                  queue="billing", allow_unregistered=True)

    with caplog.at_level(logging.WARNING, "conveyor.beat"):
        run([beat], clock, 5)

    [message] = [m for m in drain_queue(beat.app, "billing")]
    assert (message.task, message.args, message.once) == ("billing.invoice", [7], True)
    assert "task billing.invoice is not registered in this beat's App" in caplog.text


def drain_queue(app: App, queue: str) -> list[object]:
    from conveyor import signing
    from conveyor.message import decode

    found = []
    while deliveries := app.broker.reserve([queue], 100, 0.0):
        app.broker.ack(deliveries)
        found += [decode(signing.verify(d.body, ())) for d in deliveries]
    return found


def test_a_schedule_the_beat_cannot_run_is_left_out_and_the_others_go_on(
    connect: Connect, caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a stored schedule whose arguments no longer fit its task (a deploy changed
    # the signature), and one with the name of a schedule in code
    clock = Clock()
    beat = Beat(connect(CODE), lease=10, clock=clock)
    schedules = operator(beat.app, clock)
    schedules.add("fine", "jobs.tick", every(seconds=5))
    bad = schedule_store.StoredSchedule("jobs.tick", every=5, args=[1, 2], since=clock.t)
    shadowed = schedule_store.StoredSchedule("jobs.tick", every=1, since=clock.t)
    schedule_store.change(beat.app.coordination, "beat-test",
                          lambda s: s.update({"bad": bad, "ten": shadowed}))

    with caplog.at_level(logging.INFO, "conveyor.beat"):
        run([beat], clock, 10)

    messages = drain(beat.app)
    assert len(ticks(messages, "fine")) == 2 and ticks(messages, "bad") == []
    assert len(ticks(messages, "ten")) == 1  # the one in code, every 10 s
    assert "runtime schedule bad is left out" in caplog.text
    assert "runtime schedule ten is ignored: a schedule in code has its name" in caplog.text
    assert "runtime schedule fine added" in caplog.text


def test_status_shows_runtime_schedules_and_paused_ones(connect: Connect) -> None:
    clock = Clock()
    app = connect(CODE)
    schedules = operator(app, clock)
    schedules.add("five", "jobs.tick", every(seconds=5))
    schedules.add("held", "jobs.tick", every(seconds=5))
    schedules.pause("held")

    rows, _ = overview(app, clock.t)

    assert [row[0] for row in rows] == ["five", "held", "ten"]
    assert rows[1][3] == "paused" and rows[0][3].endswith("(in 2s)")
