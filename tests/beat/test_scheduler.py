"""Beats in this process on one store (in memory, SQLite, Redis), on a fake clock that
the tests move: hours of ticks in seconds, handovers, crashes and outages.

The store's leases run on real time while the beats read the fake clock, so a test plays
the lease of a dead beat running out (`expire`) once the fake clock has passed it.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import App, cron, every, signing
from conveyor.backends.memory import MemoryBroker, MemoryCoordination, MemoryResultStore
from conveyor.beat.scheduler import Beat, iso, read_alive, tick_id
from conveyor.errors import ConfigurationError
from conveyor.message import Message, decode
from tests.conftest import drop_namespace, redis_url_for

START = 1_767_225_600.0 + 3.0  # 2026-01-01 00:00:03 UTC
Connect = Callable[..., App]


class Clock:
    def __init__(self, t: float = START) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-cluster"])
def connect(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Connect]:
    """Makes Apps on one shared broker and store, one per beat, as separate processes
    would have: `connect(schedules)` with schedules {name: (schedule, catch_up)}."""
    kind: str = request.param
    url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path / 'beat.db'}"}.get(kind) \
        or redis_url_for(request, kind)
    made: list[App] = []
    memory = (MemoryBroker(), MemoryResultStore(), MemoryCoordination())

    def make(schedules: dict[str, tuple[Any, str]] | None = None) -> App:
        schedules = schedules or {"ten": (every(seconds=10), "once"),
                                  "five-min": (cron("*/5 * * * *"), "once")}
        app = App("beat-test", broker=url, beat_schedule={
            name: {"task": "jobs.tick", "schedule": s, "catch_up": c}
            for name, (s, c) in schedules.items()})

        @app.task(name="jobs.tick")
        def tick() -> None: ...

        if kind == "memory":  # one in-process store, shared as a server's would be
            app.use(*memory)
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()
    if kind == "redis":
        drop_namespace(url)


def drain(app: App) -> list[Message]:
    """Take every published message off the broker, oldest first."""
    found = []
    while deliveries := app.broker.reserve(["default"], 500, 0.0):
        app.broker.ack(deliveries)
        found += [decode(signing.verify(d.body, ())) for d in deliveries]
    return found


def ticks(messages: list[Message], schedule: str) -> list[float]:
    from datetime import datetime

    return [datetime.fromisoformat(m.headers["beat_tick"]).timestamp() for m in messages
            if m.headers["beat_schedule"] == schedule]


def expire(beat: Beat) -> None:
    """The dead `beat`'s lease runs out (the store would do it after `lease` real seconds)."""
    beat.app.coordination.release(beat.leader_key, beat.id)


def alive_until(app: App) -> float:
    alive = read_alive(app)
    assert alive is not None
    return alive.until


def test_beats_taking_turns_publish_every_tick_exactly_once(connect: Connect) -> None:
    # Given two beats on one store, whose leader now and then dies or stops, replaced
    clock, rng = Clock(), random.Random(7)
    beats = [Beat(connect(), lease=10, clock=clock, beat_id=f"beat-{i}") for i in range(2)]
    dying: list[tuple[Beat, float]] = []
    first_pass, handovers = None, 0

    # When they run for two hours of fake time
    while clock.t < START + 2 * 3600:
        clock.advance(rng.uniform(0.5, 3.0))
        for beat in rng.sample(beats, len(beats)):
            beat.step()
        first_pass = first_pass or (clock.t if any(b.is_leader for b in beats) else None)
        for dead, until in list(dying):
            if clock.t >= until:
                expire(dead)
                dying.remove((dead, until))
        leader = next((b for b in beats if b.is_leader), None)
        if leader is not None and rng.random() < 0.01:
            beats.remove(leader)
            if rng.random() < 0.5:
                leader.resign()
            else:
                dying.append((leader, alive_until(leader.app)))
            beats.append(Beat(connect(), lease=10, clock=clock, beat_id=f"beat-{len(beats)}-"
                                                                        f"{clock.t}"))
            handovers += 1
    for dead, _ in dying:
        expire(dead)
    for beat in beats:
        beat.step()

    # Then every tick since the first pass was published exactly once, under its own id
    assert first_pass is not None and handovers >= 10
    messages = drain(beats[0].app)
    assert max(Counter(m.id for m in messages).values()) == 1
    assert ticks(messages, "ten") == [float(t) for t in range(
        int(first_pass) // 10 * 10 + 10, int(clock.t) + 1, 10)]
    assert ticks(messages, "five-min") == [float(t) for t in range(
        int(first_pass) // 300 * 300 + 300, int(clock.t) + 1, 300)]
    for m in messages:
        tick = ticks([m], m.headers["beat_schedule"])[0]
        assert m.once and m.task == "jobs.tick"
        assert m.id == tick_id("beat-test", m.headers["beat_schedule"], tick)
        assert m.headers["beat_tick"] == iso(tick)


def test_a_dead_leaders_gap_is_published_by_the_follower_without_a_repeat(
    connect: Connect
) -> None:
    # Given a leader and a follower publishing a tick a second
    clock = Clock()
    schedules = {"second": (every(seconds=1), "skip")}
    leader = Beat(connect(schedules), lease=10, clock=clock, beat_id="leader")
    follower = Beat(connect(schedules), lease=10, clock=clock, beat_id="follower")
    for _ in range(20):
        clock.advance(1)
        leader.step()
        follower.step()
    assert leader.is_leader and not follower.is_leader
    before = ticks(drain(leader.app), "second")

    # When the leader dies: its lock holds until its lease runs out, then the follower
    # takes over
    died_at = clock.t
    for _ in range(10):
        clock.advance(1)
        follower.step()
        assert not follower.is_leader
    assert drain(follower.app) == []
    expire(leader)
    clock.advance(1)
    follower.step()
    assert follower.is_leader
    gap = ticks(drain(follower.app), "second")
    for _ in range(5):
        clock.advance(1)
        follower.step()
    after = ticks(drain(follower.app), "second")

    # Then the gap's ticks came at once, and no tick is missing or repeated
    assert gap == [died_at + i for i in range(1, 12)]
    run = before + gap + after
    assert run == [run[0] + i for i in range(len(run))]


def test_a_leader_dying_between_publishing_and_recording_is_repeated_under_the_same_ids(
    connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    schedules = {"second": (every(seconds=1), "once")}
    leader = Beat(connect(schedules), lease=10, clock=clock, beat_id="leader")
    follower = Beat(connect(schedules), lease=10, clock=clock, beat_id="follower")
    for _ in range(3):
        clock.advance(1)
        leader.step()
        follower.step()

    # When the leader is killed right after a publish, before it records the last run
    def publish_then_die(messages: list[Message], *args: Any) -> None:
        App.publish(leader.app, messages)
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(leader.app, "publish", publish_then_die)
    clock.advance(1)
    with pytest.raises(KeyboardInterrupt):
        leader.step()
    expire(leader)
    clock.advance(1)
    follower.step()

    # Then the follower publishes that tick again, with the same id, for the worker to
    # run once (Message.once); and the tick after it once
    messages = drain(follower.app)
    repeated = [id for id, n in Counter(m.id for m in messages).items() if n > 1]
    assert len(repeated) == 1 and all(m.once for m in messages)
    assert sorted(set(ticks(messages, "second"))) == [START + i for i in range(2, 6)]


@pytest.mark.parametrize("how", ["stopped", "died"])
def test_ticks_missed_while_no_beat_ran_follow_the_catch_up_policy(
    connect: Connect, how: str
) -> None:
    # Given a beat that ran for ten minutes with a "once" and a "skip" schedule
    clock = Clock(START - 3)  # 00:00:00
    schedules = {"once": (every(minutes=1), "once"), "skip": (every(minutes=1), "skip")}
    first = Beat(connect(schedules), lease=10, clock=clock, beat_id="first")
    while clock.t < START - 3 + 595:  # the last pass at 00:09:55
        clock.advance(5)
        first.step()
    ran = drain(first.app)
    assert ticks(ran, "once") == ticks(ran, "skip") == [START - 3 + 60 * i for i in range(1, 10)]

    # When it stops (or dies) and no beat runs for three hours
    if how == "stopped":
        first.resign()
    clock.advance(3 * 3600 + 30)  # 03:10:25
    if how == "died":
        expire(first)
    second = Beat(connect(schedules), lease=10, clock=clock, beat_id="second")
    second.step()
    caught_up = drain(second.app)
    for _ in range(24):
        clock.advance(5)
        second.step()
    resumed = drain(second.app)

    # Then "once" runs the latest missed tick, "skip" none; a dead beat's lease gap (its
    # 00:10 tick) is published either way, since it may have been due before it died
    gap = [START - 3 + 600] if how == "died" else []
    assert ticks(caught_up, "once") == [*gap, START - 3 + 3 * 3600 + 600]
    assert ticks(caught_up, "skip") == gap
    expected = [START - 3 + 3 * 3600 + 600 + 60 * i for i in (1, 2)]
    assert ticks(resumed, "once") == ticks(resumed, "skip") == expected


def test_last_runs_survive_a_restart_of_the_beat(connect: Connect) -> None:
    clock = Clock()
    schedules = {"ten": (every(seconds=10), "skip")}
    first = Beat(connect(schedules), lease=10, clock=clock, beat_id="first")
    for _ in range(30):
        clock.advance(2)
        first.step()
    first.resign()
    first.app.close()

    # When a new beat (a new App, new connections) starts before the next tick
    clock.advance(1)
    again = Beat(connect(schedules), lease=10, clock=clock, beat_id="again")
    for _ in range(30):
        again.step()
        clock.advance(2)

    # Then it carries on from the stored last run: no tick repeated, none skipped
    run = ticks(drain(again.app), "ten")
    assert len(run) == 12 and run == [run[0] + 10 * i for i in range(len(run))]


def test_a_new_schedule_starts_at_its_next_tick(connect: Connect) -> None:
    clock = Clock(START + 100)
    beat = Beat(connect({"minute": (every(minutes=1), "once")}), lease=10, clock=clock)

    beat.step()
    assert drain(beat.app) == []  # no past tick is "missed" by a schedule that didn't exist
    clock.advance(60)
    beat.step()

    assert ticks(drain(beat.app), "minute") == [START - 3 + 120]


def test_a_beat_refuses_schedules_it_cannot_run(connect: Connect) -> None:
    app = connect({"orphan": (every(minutes=1), "once")})
    app.periodic_tasks["orphan"] = type(app.periodic_tasks["orphan"])(
        "orphan", "no.such.task", every(minutes=1))
    with pytest.raises(ConfigurationError, match="names task 'no.such.task', which is not "
                                                 "registered"):
        Beat(app)
    with pytest.raises(ConfigurationError, match="lease must be seconds > 0"):
        Beat(connect(), lease=0)


def test_beats_on_threads_with_the_real_clock_hand_over_when_the_leader_dies(
    connect: Connect
) -> None:
    # Given two beats running on threads, a tick a second, a one-second lease
    schedules = {"second": (every(seconds=1), "skip")}
    beats = [Beat(connect(schedules), lease=1.0, beat_id=f"t{i}") for i in range(2)]
    drain(beats[0].app)  # creates the store: two threads creating one SQLite file at once
    beats[0].app.coordination.fetch([])  # may see "database is locked" (retried, but noisy)
    threads = [threading.Thread(target=b.run, daemon=True) for b in beats]
    for thread in threads:
        thread.start()
    time.sleep(3.2)

    # When the leader dies (stops without releasing its lock)
    leader = next(b for b in beats if b.is_leader)
    other = next(b for b in beats if b is not leader)
    leader.stop(release=False)
    time.sleep(3.2)
    other.stop()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()

    # Then the other took over: each tick from the first to the last, once
    run = ticks(drain(leader.app), "second")
    assert other.is_leader is False and len(run) >= 5
    assert run == [run[0] + i for i in range(len(run))]
