"""Schedule math (cron in a time zone across DST, every() aligned to the epoch) and the
errors bad schedules, entries and configs raise. No store, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from conveyor import App, cron, every
from conveyor.beat.scheduler import due_ticks
from conveyor.errors import ConfigurationError
from conveyor.periodic import PeriodicTask
from conveyor.schedules import Cron, Every, ticks_between, to_schedule

PARIS = ZoneInfo("Europe/Paris")


def ts(*args: int, tz: ZoneInfo | None = None) -> float:
    return datetime(*args, tzinfo=tz or UTC).timestamp()  # type: ignore[misc]


def utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")


# -- every() ---------------------------------------------------------------------------


def test_every_is_aligned_to_the_unix_epoch() -> None:
    five = every(minutes=5)

    assert five == Every(300)
    assert five.next_after(ts(2026, 1, 1, 10, 2)) == ts(2026, 1, 1, 10, 5)
    assert five.next_after(ts(2026, 1, 1, 10, 5)) == ts(2026, 1, 1, 10, 10)  # strictly after
    assert five.last_at_or_before(ts(2026, 1, 1, 10, 5)) == ts(2026, 1, 1, 10, 5)
    assert five.last_at_or_before(ts(2026, 1, 1, 10, 9, 59)) == ts(2026, 1, 1, 10, 5)
    assert every(days=1).next_after(ts(2026, 1, 1, 10)) == ts(2026, 1, 2)
    assert every(hours=1, minutes=30).seconds == 5400
    assert str(every(hours=1, minutes=30)) == "every 1h30m"


def test_ticks_between_is_open_at_the_start_and_closed_at_the_end() -> None:
    ticks = ticks_between(every(seconds=10), 100.0, 140.0, limit=100)

    assert ticks == [110.0, 120.0, 130.0, 140.0]
    assert ticks_between(every(seconds=10), 100.0, 140.0, limit=2) == [130.0, 140.0]


@pytest.mark.parametrize("kwargs", [{}, {"seconds": 0}, {"minutes": -5}, {"seconds": 1.5},
                                    {"seconds": 0.2}, {"hours": float("inf")},
                                    {"seconds": "5"}, {"seconds": True}])
def test_every_rejects_intervals_that_are_not_whole_positive_seconds(kwargs: dict[str, object]
                                                                     ) -> None:
    with pytest.raises(ConfigurationError, match="every"):
        every(**kwargs)  # type: ignore[arg-type]


# -- cron() ----------------------------------------------------------------------------


def test_cron_in_utc_next_and_last() -> None:
    schedule = cron("*/5 * * * *")

    assert schedule.next_after(ts(2026, 1, 1, 0, 5)) == ts(2026, 1, 1, 0, 10)
    assert schedule.next_after(ts(2026, 1, 1, 0, 4, 59)) == ts(2026, 1, 1, 0, 5)
    assert schedule.last_at_or_before(ts(2026, 1, 1, 0, 5)) == ts(2026, 1, 1, 0, 5)
    assert schedule.last_at_or_before(ts(2026, 1, 1, 0, 9, 59)) == ts(2026, 1, 1, 0, 5)
    assert cron("@daily").next_after(ts(2026, 1, 1, 12)) == ts(2026, 1, 2)
    assert cron("0 9 * * mon-fri").next_after(ts(2026, 1, 2, 10)) == ts(2026, 1, 5, 9)  # Fri->Mon


def test_cron_follows_the_wall_clock_of_its_zone_across_the_year() -> None:
    nine = cron("0 9 * * *", tz="Europe/Paris")

    assert utc(nine.next_after(ts(2026, 1, 10))) == "2026-01-10 08:00"  # CET, UTC+1
    assert utc(nine.next_after(ts(2026, 7, 10))) == "2026-07-10 07:00"  # CEST, UTC+2
    assert str(nine) == "cron 0 9 * * * (Europe/Paris)"


def test_a_time_skipped_by_spring_forward_runs_right_after_the_jump() -> None:
    # 2026-03-29 in Paris: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    schedule = cron("30 2 * * *", tz="Europe/Paris")
    start = ts(2026, 3, 28, 12, tz=PARIS)

    ticks = ticks_between(schedule, start, start + 3 * 86400, limit=10)

    assert [datetime.fromtimestamp(t, PARIS).strftime("%d %H:%M %Z") for t in ticks] == [
        "29 03:00 CEST", "30 02:30 CEST", "31 02:30 CEST"]


def test_a_fixed_time_repeated_by_fall_back_runs_once() -> None:
    # 2026-10-25 in Paris: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    schedule = cron("30 2 * * *", tz="Europe/Paris")
    start = ts(2026, 10, 24, 12, tz=PARIS)

    ticks = ticks_between(schedule, start, start + 3 * 86400, limit=10)

    assert [utc(t) for t in ticks] == ["2026-10-25 00:30", "2026-10-26 01:30",
                                      "2026-10-27 01:30"]
    assert schedule.last_at_or_before(ts(2026, 10, 25, 2)) == ts(2026, 10, 25, 0, 30)


def test_an_hourly_wildcard_keeps_real_time_through_fall_back() -> None:
    schedule = cron("*/30 * * * *", tz="Europe/Paris")

    ticks = ticks_between(schedule, ts(2026, 10, 24, 23, 50), ts(2026, 10, 25, 2, 10), 100)

    # every 30 real minutes, both passes through 02:00-03:00 local included
    assert [utc(t)[-5:] for t in ticks] == ["00:00", "00:30", "01:00", "01:30", "02:00"]


@pytest.mark.parametrize(("expression", "problem"), [
    ("* * * *", "5 fields"),
    ("* * * * * *", "5 fields"),
    ("61 * * * *", "minute '61' is out of range 0-59"),
    ("0 24 * * *", "hour '24' is out of range"),
    ("0 0 0 * *", "day of month '0' is out of range 1-31"),
    ("0 0 * foo *", "'foo' is not a valid month"),
    ("*/0 * * * *", "step must be at least 1"),
    ("5-3-1 * * * *", "can't read '5-3-1'"),
    ("@sometimes", "5 fields"),
])
def test_bad_cron_expressions_say_what_is_wrong(expression: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        cron(expression)
    assert problem in str(caught.value)
    assert expression in str(caught.value)


def test_an_unknown_time_zone_is_an_error_at_definition() -> None:
    with pytest.raises(ConfigurationError, match="unknown time zone 'Mars/Olympus'"):
        cron("0 3 * * *", tz="Mars/Olympus")


def test_croniter_extensions_are_checked_when_the_schedule_is_first_used() -> None:
    last_day = cron("0 0 L * *")
    last_day.check()
    assert utc(last_day.next_after(ts(2026, 2, 10))) == "2026-02-28 00:00"

    with pytest.raises(ConfigurationError, match="not a valid cron expression"):
        cron("0 0 L#L * *").check()


def test_config_values_become_schedules() -> None:
    assert to_schedule("*/5 * * * *", "x") == Cron("*/5 * * * *")
    assert to_schedule(30, "x") == Every(30)
    assert to_schedule(timedelta(hours=2), "x") == Every(7200)
    with pytest.raises(ConfigurationError, match=r"x: schedule must be cron"):
        to_schedule([1, 2], "x")


# -- entries, @app.periodic and beat_schedule= ----------------------------------------


def make_app(**kwargs: object) -> App:
    return App("beat-unit", broker="memory://", **kwargs)  # type: ignore[arg-type]


def test_periodic_registers_the_function_as_a_task_and_schedules_it() -> None:
    app = make_app()

    @app.periodic(every(minutes=5), args=(2,), catch_up="skip", retries=2)
    def cleanup(days: int) -> int:
        return days

    assert app.tasks[cleanup.name] is cleanup and cleanup.options["retries"] == 2
    entry = app.periodic_tasks[cleanup.name]
    assert (entry.task, entry.schedule, entry.args, entry.catch_up) == (
        cleanup.name, Every(300), (2,), "skip")
    assert cleanup(3) == 3  # still a plain function when called


def test_periodic_on_a_registered_task_can_schedule_it_twice_under_two_names() -> None:
    app = make_app()

    @app.task
    def report(kind: str) -> str:
        return kind

    app.periodic("0 * * * *", name="hourly-report", args=("hourly",))(report)
    app.periodic(cron("0 3 * * *", tz="Europe/Paris"), name="nightly-report",
                 kwargs={"kind": "nightly"})(report)

    assert sorted(app.periodic_tasks) == ["hourly-report", "nightly-report"]
    assert {e.task for e in app.periodic_tasks.values()} == {report.name}


def test_schedule_names_must_be_unique() -> None:
    app = make_app(beat_schedule={"cleanup": {"task": "a.b", "schedule": 60}})

    @app.task
    def other() -> None: ...

    with pytest.raises(ConfigurationError, match="two periodic tasks are named 'cleanup'"):
        app.periodic(every(minutes=1), name="cleanup")(other)


def test_arguments_that_do_not_fit_the_task_are_rejected_at_definition() -> None:
    app = make_app()

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(ConfigurationError, match="periodic task 'add-one'.*missing"):
        app.periodic(every(minutes=1), name="add-one", args=(1,))(add)


def test_bad_periodic_options_are_configuration_errors() -> None:
    app = make_app()

    @app.task
    def job() -> None: ...

    with pytest.raises(ConfigurationError, match="catch_up must be 'once' or 'skip'"):
        app.periodic(every(minutes=1), catch_up="always")(job)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="priority must be an int from 0 to 9"):
        app.periodic(every(minutes=1), priority=12)(job)
    with pytest.raises(ConfigurationError, match="belong on its @app.task"):
        app.periodic(every(minutes=1), retries=3)(job)


def test_config_schedules_are_checked_when_the_app_is_made() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown key 'shedule'; did you mean "
                                                 r"'schedule'\?"):
        make_app(beat_schedule={"n": {"task": "a.b", "shedule": 60}})
    with pytest.raises(ConfigurationError, match=r"beat_schedule\['n'\] needs a 'task'"):
        make_app(beat_schedule={"n": {"schedule": 60}})
    with pytest.raises(ConfigurationError, match="out of range"):
        make_app(beat_schedule={"n": {"task": "a.b", "schedule": "99 * * * *"}})
    app = make_app(beat_schedule={"n": {"task": "a.b", "schedule": "0 3 * * *",
                                        "args": [1], "catch_up": "skip", "queue": "q"}})
    assert app.periodic_tasks["n"] == PeriodicTask("n", "a.b", Cron("0 3 * * *"), (1,), {},
                                              "skip", "q")


# -- which ticks are due (the heart of the beat, as a pure function) --------------------


def entry(catch_up: str = "once") -> PeriodicTask:
    return PeriodicTask("e", "t", every(seconds=10), catch_up=catch_up)  # type: ignore[arg-type]


def test_due_ticks_in_normal_operation_are_the_ticks_since_the_last_pass() -> None:
    # the same beat leads: its last pass at 1000 answered until 1010
    assert due_ticks(entry(), upto=1000, gap=(1000, 1010), since=0, now=1025) == (
        [1010.0, 1020.0], False)


def test_due_ticks_after_a_crash_cover_the_lease_gap_then_apply_catch_up() -> None:
    # the old holder passed at 1000 with a 10 s lease and died; nothing ran until 1105
    assert due_ticks(entry("once"), 1000, gap=(1000, 1010), since=1105, now=1105) == (
        [1010.0, 1100.0], True)
    assert due_ticks(entry("skip"), 1000, gap=(1000, 1010), since=1105, now=1105) == (
        [1010.0], True)
    # a tick at the very moment a beat starts is on time, not missed
    assert due_ticks(entry("skip"), 1000, gap=(1000, 1010), since=1100, now=1100) == (
        [1010.0, 1100.0], True)
    # ... but a follower that was running all along publishes every tick of the gap
    assert due_ticks(entry("skip"), 1000, gap=(1000, 1010), since=500, now=1013) == (
        [1010.0], False)
