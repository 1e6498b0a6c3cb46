"""Read-mostly commands over the broker and result store: status, result, revoke, purge,
dead."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import click
import msgspec

from conveyor.app import App
from conveyor.backends import describe
from conveyor.cli.options import group_app_option, with_app
from conveyor.errors import did_you_mean
from conveyor.message import UnreadableMessage, unseal
from conveyor.records import State


def echo(text: str) -> None:
    """Print `text` with every control character but newline and tab escaped (``\\x1b``):
    task ids, names, reasons and results come from the store, where anyone who can
    publish can put a terminal escape sequence."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() or c in "\n\t" else
                       c.encode("unicode_escape").decode() for c in text)
    click.echo(text)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


def moment(timestamp: float) -> str:
    """A time as the reader's clock shows it, with its zone and how far off it is:
    ``2026-11-23 14:03:05 CET (in 28s)``; a time without a zone is ambiguous as soon
    as a worker and its operator are in different places."""
    local = datetime.fromtimestamp(timestamp, UTC).astimezone()
    seconds = int(timestamp - time.time())
    span = f"in {seconds}s" if seconds >= 0 else ago(timestamp)
    return f"{local:%Y-%m-%d %H:%M:%S %Z} ({span})"


def stores(app: App) -> str:
    """Which broker and result store this command reads, each with the file it resolves
    to: the first thing to check when a task seems to go nowhere."""
    settings = app.settings
    shown = f"broker:  {describe(settings.broker_url)}"
    if settings.effective_results_url != settings.broker_url:
        shown += f"\nresults: {describe(settings.effective_results_url)}"
    return shown


def task_queues(app: App) -> dict[str, list[str]]:
    """queue -> the registered tasks that go there (after `task_defaults` and `routes`),
    plus the queues routes name for tasks sent by name; Conveyor's own tasks left out."""
    found: dict[str, list[str]] = {}
    for name, task in sorted(app.tasks.items()):
        if not name.startswith("conveyor."):
            found.setdefault(task.options.queue, []).append(name)
    for route in app.controls.routes:
        if route.queue is not None:
            found.setdefault(route.queue, [])
    return found


def ago(timestamp: float) -> str:
    seconds = max(0, int(time.time() - timestamp))
    if seconds < 120:
        return f"{seconds}s ago"
    return f"{seconds // 60}m ago" if seconds < 7200 else f"{seconds // 3600}h ago"


@click.command()
@with_app
def status(app: App) -> None:
    """Queues (ready, scheduled, running, reserved, dead, paused), live workers and
    periodic tasks.

    RUNNING counts task bodies running now, as the workers report them (within a
    second); RESERVED, tasks taken out of the queue by a worker ahead of a free thread
    (its prefetch), not started yet."""
    stats = app.broker.stats()
    paused = app.paused()
    workers = app.broker.workers()
    running: Counter[str] = Counter()
    for worker in workers:
        running.update(worker.started_by_queue)
    echo(stores(app) + "\n")
    rows = sorted([*[(q, s.ready, s.scheduled, min(running[q], s.running),
                      max(0, s.running - running[q]), s.dead) for q, s in stats.items()],
                   *[(q, 0, 0, 0, 0, 0) for q in paused - stats.keys()]])
    echo(table(["QUEUE", "READY", "SCHEDULED", "RUNNING", "RESERVED", "DEAD", ""],
               [(*row, "PAUSED" if row[0] in paused else "") for row in rows]))
    if paused:
        echo(f"\n{len(paused)} paused queue(s), whose tasks no worker takes until they are "
             f"resumed: {', '.join(sorted(paused))}")
    echo(f"\n{len(workers)} worker process(es) alive")
    if workers:
        echo(table(
            ["WORKER", "QUEUES", "THREADS", "RUNNING", "RESERVED", "PROCESSED", "STARTED"],
            [(w.id, ",".join(w.queues), w.concurrency, w.running, w.reserved, w.processed,
              ago(w.started)) for w in workers],
        ))
    from conveyor.beat.scheduler import overview

    schedules, leader = overview(app, time.time())  # in code and added at run time
    if schedules:
        echo(f"\n{len(schedules)} periodic task(s); {leader}")
        echo(table(["SCHEDULE", "TASK", "WHEN", "NEXT RUN", "LAST RUN"], schedules))


@click.command()
@with_app
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print the whole record as JSON.")
def result(app: App, task_id: str, as_json: bool) -> None:
    """State, progress, and the result or traceback of one task."""
    record = app.results.get(task_id)
    if as_json:
        echo(msgspec.json.encode(record).decode() if record else "null")
        return
    if record is None:
        echo(f"{task_id}: PENDING (nothing recorded: queued, unknown, or expired)")
        return
    echo(f"id:       {record.id}\ntask:     {record.task}\nstate:    {record.state.value}"
         f"\nattempt:  {record.attempt}\nupdated:  {ago(record.updated)}")
    if record.progress:
        current, total, message = record.progress
        shown = f"{current:g}/{total:g}" if total else f"{current:g}"
        echo(f"progress: {shown}{' ' + message if message else ''}")
        if record.progress_meta is not None:
            echo(f"          {json.dumps(record.progress_meta)}")
    if record.retry_at:
        echo(f"retry at: {moment(record.retry_at)}")
    if record.state is State.SUCCESS or record.state is State.REVOKED:
        echo(f"result:   {json.dumps(record.result)}")
    if record.error:
        echo(f"error:    {record.error.type}: {record.error.message}")
        if record.error.traceback:
            echo(record.error.traceback.rstrip())


@click.command()
@with_app
@click.argument("ids", nargs=-1, required=True)
@click.option("--terminate", is_flag=True,
              help="Stop running tasks too, within seconds (they end REVOKED).")
def revoke(app: App, ids: tuple[str, ...], terminate: bool) -> None:
    """Make tasks that haven't started never run (they end REVOKED); with --terminate,
    stop running ones too. Exit status 1 if any ID was left alone."""
    try:
        revoked = set(app.revoke(list(ids)))
        rest = [task_id for task_id in dict.fromkeys(ids) if task_id not in revoked]
        stopped = set(app.revoke(rest, terminate=True)) if terminate and rest else set()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="ID") from exc
    for task_id in dict.fromkeys(ids):
        if task_id in revoked:
            echo(f"{task_id}: revoked")
        elif task_id in stopped:
            echo(f"{task_id}: running: asked to stop (it ends REVOKED within seconds)")
        elif terminate:
            echo(f"{task_id}: not waiting or running (finished or unknown), left alone")
        else:
            echo(f"{task_id}: not pending (running, finished or unknown), left alone")
    if len(revoked) + len(stopped) < len(set(ids)):
        click.get_current_context().exit(1)


@click.command()
@with_app
@click.option("-Q", "--queue", required=True, help="The queue to empty.")
@click.option("-f", "--force", is_flag=True, help="Don't ask for confirmation.")
def purge(app: App, queue: str, force: bool) -> None:
    """Delete a queue's ready and scheduled tasks (running ones finish)."""
    known = app.broker.stats().keys() | app.paused() | task_queues(app).keys()
    if queue not in known:
        raise click.ClickException(
            f"no queue {queue!r} on {describe(app.settings.broker_url)}: nothing purged"
            f"{did_you_mean(queue, known) or f' (queues: {chr(44).join(sorted(known))})'}")
    if not force:
        click.confirm(f"Delete every waiting task of queue {queue!r}?", abort=True)
    echo(f"purged {app.broker.purge(queue)} task(s) from {queue!r}")


@click.group()
@group_app_option
def dead() -> None:
    """Dead letters: tasks that failed for good, or that could never run."""


@dead.command("list")
@with_app
@click.option("-Q", "--queue", default=None, help="Only this queue.")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=50, show_default=True)
def dead_list(app: App, queue: str | None, limit: int) -> None:
    """The newest dead letters, with the reason."""
    letters = app.broker.dead_letters(queue, limit)
    if not letters:
        echo("no dead letters")
        return
    rows = []
    for letter in letters:
        try:
            name = unseal(letter.body, app.settings.signing_keys).task
        except UnreadableMessage:
            name = "(undecodable)"
        rows.append((letter.id, letter.queue, name, ago(letter.failed_at), letter.reason))
    echo(table(["ID", "QUEUE", "TASK", "FAILED", "REASON"], rows))


@dead.command("retry")
@with_app
@click.argument("ids", nargs=-1)
@click.option("-Q", "--queue", default=None, help="Only this queue.")
def dead_retry(app: App, ids: tuple[str, ...], queue: str | None) -> None:
    """Run dead letters again (all, or those IDS), from attempt 1."""
    count = app.retry_dead(list(ids) if ids else None, queue)
    wanted = len(set(ids))
    if ids and count < wanted:
        raise click.ClickException(
            f"re-queued {count} task(s): {wanted - count} of the {wanted} ID(s) given "
            "matched no dead letter" + (f" of queue {queue!r}" if queue else "")
            + " (conveyor dead list shows them)")
    if not count and queue:
        raise click.ClickException(f"no dead letters in queue {queue!r}: nothing re-queued")
    echo(f"re-queued {count} task(s)" if count else "no dead letters: nothing re-queued")


@dead.command("purge")
@with_app
@click.option("-Q", "--queue", default=None, help="Only this queue.")
@click.option("-f", "--force", is_flag=True, help="Don't ask for confirmation.")
def dead_purge(app: App, queue: str | None, force: bool) -> None:
    """Delete dead letters for good."""
    if not force:
        click.confirm("Delete dead letters for good?", abort=True)
    echo(f"deleted {app.broker.purge_dead(queue)} dead letter(s)")


COMMANDS = (status, result, revoke, purge, dead)
