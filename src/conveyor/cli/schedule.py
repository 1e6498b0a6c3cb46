"""`conveyor schedule list|add|pause|resume|remove`: periodic schedules that operators
change at run time, without a deploy (`app.schedules`, docs/periodic.md)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from conveyor import schedules
from conveyor.app import App
from conveyor.cli.inspect import echo, table
from conveyor.cli.options import group_app_option, with_app
from conveyor.errors import ConfigurationError, ScheduleNotFound
from conveyor.lifecycle.scheduling import ScheduleInfo
from conveyor.schedules import Schedule, cron, show_time


def parse_every(text: str) -> Schedule:
    try:
        return schedules.parse_every(text)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="'--every'") from exc


def parse_json(text: str | None, kind: type, option: str) -> Any:
    if text is None:
        return kind()
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=option) from exc
    if not isinstance(value, kind):
        raise click.BadParameter(f"must be a JSON {'list' if kind is list else 'object'}, "
                                 f"got {text}", param_hint=option)
    return value


def call(info: ScheduleInfo) -> str:
    shown = [json.dumps(a) for a in info.args]
    shown += [f"{k}={json.dumps(v)}" for k, v in info.kwargs.items()]
    return ", ".join(shown)


@click.group()
@group_app_option
def schedule() -> None:
    """Periodic schedules: list them all; add, pause, resume and remove those kept in the
    store (a schedule in code changes with the code). Beats see changes within seconds."""


@schedule.command("list")
@with_app
def schedule_list(app: App) -> None:
    """Every schedule, in code and added at run time: when it runs next, and its state."""
    now = time.time()
    infos = app.schedules.list()
    if not infos:
        echo("no schedules: declare them with @app.periodic, or add one with "
             "`conveyor schedule add`")
        return
    echo(table(["SCHEDULE", "TASK", "ARGS", "WHEN", "NEXT RUN", "STATE", "SOURCE"], [
        (i.name, i.task, call(i), str(i.schedule),
         "-" if i.paused else show_time(i.next_run(now), i.schedule.zone, now),
         "paused" if i.paused else "active", i.source) for i in infos]))


@schedule.command("add")
@with_app
@click.argument("name")
@click.argument("task")
@click.option("--cron", "cron_text", metavar="EXPR", help='A cron expression: "0 3 * * *".')
@click.option("--tz", default="UTC", show_default=True, help="The time zone of --cron.")
@click.option("--every", "every_text", metavar="SPAN", help="An interval: 30s, 5m, 1h30m, 2d.")
@click.option("--args", "args_json", metavar="JSON", help='Positional arguments: \'[1, "a"]\'.')
@click.option("--kwargs", "kwargs_json", metavar="JSON",
              help='Keyword arguments: \'{"days": 30}\'.')
@click.option("-Q", "--queue", default=None, help="The queue (default: the task's).")
@click.option("--priority", type=click.IntRange(0, 9), default=None)
@click.option("--catch-up", type=click.Choice(["once", "skip"]), default="once",
              show_default=True, help="Ticks missed while no beat ran: run the latest, or skip.")
@click.option("--replace", is_flag=True, help="Change the schedule if NAME exists.")
@click.option("--allow-unregistered", is_flag=True,
              help="TASK is one only the workers import: send it by name.")
def schedule_add(app: App, name: str, task: str, cron_text: str | None, tz: str,
                 every_text: str | None, args_json: str | None, kwargs_json: str | None,
                 queue: str | None, priority: int | None, catch_up: str, replace: bool,
                 allow_unregistered: bool) -> None:
    """Publish TASK at each tick of --cron or --every, from its next tick, under NAME."""
    if (cron_text is None) == (every_text is None):
        raise click.UsageError("give --cron or --every (one of them)")
    when = cron(cron_text, tz) if cron_text is not None else parse_every(every_text or "")
    info = app.schedules.add(name, task, when, parse_json(args_json, list, "'--args'"),
                             parse_json(kwargs_json, dict, "'--kwargs'"), queue=queue,
                             priority=priority, catch_up="skip" if catch_up == "skip" else "once",
                             replace=replace, allow_unregistered=allow_unregistered)
    now = time.time()
    state = " (paused)" if info.paused else ""
    echo(f"{name}: {info.task} {info.schedule}{state}, next run "
         f"{show_time(info.next_run(now), info.schedule.zone, now)}")


def _each(app: App, names: tuple[str, ...], act: str) -> None:
    """Apply `act` to each name; a name that matches nothing is said on stderr and makes
    the exit status 1, after the others are done."""
    missing = 0
    for name in dict.fromkeys(names):
        try:
            if act == "remove":
                app.schedules.remove(name)
                echo(f"removed {name}")
            elif getattr(app.schedules, act)(name):
                echo(f"{act}d {name}")
            else:
                echo(f"{name} was {'already paused' if act == 'pause' else 'not paused'}")
        except ScheduleNotFound as exc:
            click.echo(f"Error: {exc}", err=True)
            missing += 1
    if missing:
        click.get_current_context().exit(1)


@schedule.command("pause")
@with_app
@click.argument("names", nargs=-1, required=True)
def schedule_pause(app: App, names: tuple[str, ...]) -> None:
    """Stop publishing these schedules' ticks until `resume`."""
    _each(app, names, "pause")


@schedule.command("resume")
@with_app
@click.argument("names", nargs=-1, required=True)
def schedule_resume(app: App, names: tuple[str, ...]) -> None:
    """Publish these schedules' ticks again, from their next tick (none of the pause)."""
    _each(app, names, "resume")


@schedule.command("remove")
@with_app
@click.argument("names", nargs=-1, required=True)
def schedule_remove(app: App, names: tuple[str, ...]) -> None:
    """Delete these schedules for good."""
    _each(app, names, "remove")


COMMANDS = (schedule,)
