"""Read-mostly commands over the broker and result store: status, result, revoke, purge,
dead."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import click
import msgspec

from conveyor.app import App
from conveyor.cli.options import group_app_option, with_app
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


def ago(timestamp: float) -> str:
    seconds = max(0, int(time.time() - timestamp))
    if seconds < 120:
        return f"{seconds}s ago"
    return f"{seconds // 60}m ago" if seconds < 7200 else f"{seconds // 3600}h ago"


@click.command()
@with_app
def status(app: App) -> None:
    """Queues (ready, scheduled, running, dead, paused), live workers and periodic tasks."""
    stats = app.broker.stats()
    paused = app.paused()
    rows = sorted([*[(q, s.ready, s.scheduled, s.running, s.dead) for q, s in stats.items()],
                   *[(q, 0, 0, 0, 0) for q in paused - stats.keys()]])
    echo(table(["QUEUE", "READY", "SCHEDULED", "RUNNING", "DEAD", ""],
               [(*row, "PAUSED" if row[0] in paused else "") for row in rows]))
    if paused:
        echo(f"\n{len(paused)} paused queue(s), whose tasks no worker takes until they are "
             f"resumed: {', '.join(sorted(paused))}")
    workers = app.broker.workers()
    echo(f"\n{len(workers)} worker process(es) alive")
    if workers:
        echo(table(
            ["WORKER", "QUEUES", "THREADS", "RUNNING", "PROCESSED", "STARTED"],
            [(w.id, ",".join(w.queues), w.concurrency, w.running, w.processed, ago(w.started))
             for w in workers],
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
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.retry_at))
        echo(f"retry at: {when}")
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
    echo(f"re-queued {count} task(s)")


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
