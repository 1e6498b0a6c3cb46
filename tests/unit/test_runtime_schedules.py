"""`app.schedules` (issue 14): runtime schedules stored in the coordination store, on
memory:// and SQLite: what `add` checks before anything is stored, what `list` and `get`
show, and changes by several operators at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conveyor import App, cron, every
from conveyor.errors import (
    ConfigurationError,
    MessageTooLarge,
    ScheduleNotFound,
    SerializationError,
)
from conveyor.lifecycle import schedule_store


def make_app(url: str) -> App:
    app = App("shop", broker=url, beat_schedule={
        "nightly": {"task": "shop.cleanup", "schedule": cron("0 3 * * *")}})

    @app.task(name="shop.cleanup")
    def cleanup(days: int = 30) -> None: ...

    @app.task(name="shop.report")
    def report(kind: str, *, email: bool = False) -> None: ...

    return app


@pytest.fixture(params=["memory", "sqlite"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    made = make_app("memory://" if request.param == "memory"
                    else f"sqlite:///{tmp_path}/c.db")
    yield made
    made.close()


def test_added_schedules_are_listed_beside_those_in_code(app: App) -> None:
    added = app.schedules.add("weekly", "shop.report", cron("0 8 * * mon", tz="Europe/Paris"),
                              args=("weekly",), kwargs={"email": True}, queue="reports")
    app.schedules.add("often", app.tasks["shop.cleanup"], every(minutes=5), priority=7)

    listed = {info.name: info for info in app.schedules.list()}

    assert list(listed) == ["nightly", "often", "weekly"]
    assert (listed["nightly"].source, listed["weekly"].source) == ("code", "runtime")
    weekly = app.schedules.get("weekly")
    assert weekly == added
    assert (weekly.task, weekly.args, weekly.kwargs, weekly.queue) == (
        "shop.report", ("weekly",), {"email": True}, "reports")
    assert str(weekly.schedule) == "cron 0 8 * * mon (Europe/Paris)"
    assert listed["often"].priority == 7 and str(listed["often"].schedule) == "every 5m"
    monday = datetime(2026, 3, 2, 7, 0, tzinfo=UTC).timestamp()  # 08:00 in Paris
    assert weekly.next_run(monday - 1) == monday


def test_a_schedule_added_by_one_app_is_seen_by_another_on_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    one, other = make_app(url), make_app(url)

    one.schedules.add("hourly", "shop.cleanup", "0 * * * *", kwargs={"days": 1})

    assert other.schedules.get("hourly").kwargs == {"days": 1}
    one.close()
    other.close()


@pytest.mark.parametrize(("call", "error", "says"), [
    (lambda a: a.schedules.add("x", "shop.cleanp", every(seconds=5)), ConfigurationError,
     "no task named 'shop.cleanp' is registered in App 'shop'; did you mean 'shop.cleanup'?"),
    (lambda a: a.schedules.add("x", "shop.cleanup", "0 25 * * *"), ConfigurationError,
     "hour '25' is out of range 0-23"),
    (lambda a: a.schedules.add("x", "shop.cleanup", cron("0 3 * * *", tz="Mars/Base")),
     ConfigurationError, "unknown time zone 'Mars/Base'"),
    (lambda a: a.schedules.add("x", "shop.cleanup", every(seconds=5), args=(1, 2)),
     ConfigurationError, "too many positional arguments"),
    (lambda a: a.schedules.add("x", "shop.report", every(seconds=5), args=("a",),
                               kwargs={"when": datetime.now(UTC)}),
     SerializationError, "kwargs must be plain JSON: kwargs['when'] is a datetime"),
    (lambda a: a.schedules.add("x", "shop.report", every(seconds=5), args=("a" * 70_000,)),
     MessageTooLarge, "over the 65,536 a runtime schedule may hold"),
    (lambda a: a.schedules.add("nightly", "shop.cleanup", every(seconds=5)),
     ConfigurationError, "schedule 'nightly' is declared in code"),
    (lambda a: a.schedules.add("", "shop.cleanup", every(seconds=5)), ConfigurationError,
     "a schedule name must be printable text"),
    (lambda a: a.schedules.add("x", "shop.cleanup", every(seconds=5), queue="bad q\n"),
     ConfigurationError, "queue 'bad q\\n' can't be consumed"),
    (lambda a: a.schedules.add("x", "shop.cleanup", every(seconds=5), catch_up="all"),
     ConfigurationError, "catch_up must be 'once' or 'skip'"),
    (lambda a: a.schedules.pause("nightly"), ConfigurationError,
     "'nightly' is declared in code (@app.periodic or beat_schedule): change it there"),
    (lambda a: a.schedules.remove("nigthly"), ScheduleNotFound,
     "no schedule named 'nigthly'; did you mean 'nightly'?"),
    (lambda a: a.schedules.get("nope"), ScheduleNotFound, "no schedule named 'nope'"),
])
def test_mistakes_are_clear_errors_and_store_nothing(app: App, call: object, error: type,
                                                     says: str) -> None:
    with pytest.raises(error, match=None) as raised:
        call(app)  # type: ignore[operator]

    assert says in str(raised.value)
    assert app.schedules.stored() == {}


def test_a_task_only_workers_know_can_be_scheduled_by_name_when_asked(app: App) -> None:
    info = app.schedules.add("remote", "billing.invoice", every(hours=1), args=(1, "x"),
                             allow_unregistered=True)

    assert (info.task, info.args) == ("billing.invoice", (1, "x"))


def test_adding_a_name_twice_needs_replace(app: App) -> None:
    app.schedules.add("s", "shop.cleanup", every(minutes=5))

    with pytest.raises(ConfigurationError, match="a runtime schedule named 's' exists .* "
                                                 "replace=True"):
        app.schedules.add("s", "shop.cleanup", every(minutes=1))
    app.schedules.pause("s")
    changed = app.schedules.add("s", "shop.cleanup", every(minutes=1), kwargs={"days": 2},
                                replace=True)

    assert str(changed.schedule) == "every 1m" and changed.kwargs == {"days": 2}
    assert changed.paused  # a change doesn't restart a paused schedule


def test_pause_resume_and_remove(app: App) -> None:
    app.schedules.add("s", "shop.cleanup", every(minutes=5))

    assert app.schedules.pause("s") is True
    assert app.schedules.get("s").paused and app.schedules.get("s").next_run(0) is None
    assert app.schedules.pause("s") is False
    assert app.schedules.resume("s") is True and app.schedules.resume("s") is False
    app.schedules.remove("s")

    assert [i.name for i in app.schedules.list()] == ["nightly"]
    with pytest.raises(ScheduleNotFound):
        app.schedules.remove("s")


def test_operators_changing_schedules_at_once_all_win(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    apps = [make_app(url) for _ in range(6)]

    threads = [threading.Thread(target=a.schedules.add,
                                args=(f"s{i}", "shop.cleanup", every(minutes=i + 1)))
               for i, a in enumerate(apps)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert [i.name for i in apps[0].schedules.list()] == [
        "nightly", "s0", "s1", "s2", "s3", "s4", "s5"]
    for a in apps:
        a.close()


def test_an_unreadable_stored_value_is_not_overwritten(app: App) -> None:
    app.coordination.put(schedule_store.key("shop"), '{"version": 9, "schedules": {}}', 60)

    with pytest.raises(ConfigurationError, match="format version 9; this Conveyor reads 1"):
        app.schedules.add("s", "shop.cleanup", every(minutes=5))
    assert app.coordination.fetch([schedule_store.key("shop")])[0] == (
        '{"version": 9, "schedules": {}}')
