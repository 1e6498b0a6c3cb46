"""``manage.py conveyor worker|beat|status|result|purge|dead``: the ``conveyor`` commands
with the project's App, as settings.CONVEYOR names it.

``manage.py conveyor worker`` hands over to the same lean supervisor as ``conveyor
worker``: each worker process runs ``django.setup()`` itself (DJANGO_SETTINGS_MODULE is
in the environment manage.py set up), so no database connection crosses fork().
"""

from __future__ import annotations

import click

from conveyor.app import App
from conveyor.cli import COMMANDS


@click.group("conveyor")
@click.pass_context
def conveyor_cli(ctx: click.Context) -> None:
    """Conveyor workers, beat and inspection for this Django project."""
    from conveyor.contrib.django.app import project_app

    ctx.obj = project_app()
    ctx.meta["conveyor.app_spec"] = f"{__name__}:worker_app"


def worker_app() -> App:
    """Set Django up in a worker process and hand over the project's App."""
    import django

    from conveyor.contrib.django.app import project_app

    django.setup()
    return project_app()


for command in COMMANDS:
    conveyor_cli.add_command(command)
