"""`conveyor pause` and `conveyor resume`: stop and restart the taking of a queue's tasks,
cluster-wide (`App.pause`, docs/worker.md)."""

from __future__ import annotations

import click

from conveyor.app import App
from conveyor.cli.inspect import echo
from conveyor.cli.options import with_app
from conveyor.cli.worker import parse_queues
from conveyor.options import check_queue

QUEUES_HELP = "The queue(s), comma-separated: -Q emails,reports."


def checked(value: str) -> list[str]:
    """The queues of ``-Q``, each a valid name, or a usage error naming the bad one (before
    any is changed)."""
    queues = list(dict.fromkeys(parse_queues(value)))
    try:
        for queue in queues:
            check_queue(queue)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'-Q'") from exc
    return queues


@click.command()
@with_app
@click.option("-Q", "--queue", "--queues", "queues", required=True, help=QUEUES_HELP)
def pause(app: App, queues: str) -> None:
    """Stop every worker taking these queues' tasks (within a second). Tasks already
    running finish; new ones wait in the queue until `conveyor resume`."""
    for queue in checked(queues):
        echo(f"paused {queue}" if app.pause(queue) else f"{queue} was already paused")


@click.command()
@with_app
@click.option("-Q", "--queue", "--queues", "queues", required=True, help=QUEUES_HELP)
def resume(app: App, queues: str) -> None:
    """Let workers take these queues' tasks again (within a second)."""
    for queue in checked(queues):
        echo(f"resumed {queue}" if app.resume(queue) else f"{queue} was not paused")


COMMANDS = (pause, resume)
