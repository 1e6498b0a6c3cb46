"""The ``conveyor`` command line. Every command takes ``-A pkg.module[:app]`` (or reads
``$CONVEYOR_APP``); integrations (Flask, Django) reuse these commands with their App
already resolved, by putting it in ``ctx.obj``."""

from __future__ import annotations

import click

from conveyor.cli import beat, inspect, queues, schedule, worker
from conveyor.cli.options import group_app_option


@click.group()
@click.version_option(package_name="conveyor")
@group_app_option
def main() -> None:
    """Conveyor: a task queue that loses nothing."""


# Every command; the Flask and Django command groups offer the same ones.
COMMANDS = (worker.worker, beat.beat, *inspect.COMMANDS, *queues.COMMANDS,
            *schedule.COMMANDS)

for command in COMMANDS:
    main.add_command(command)
