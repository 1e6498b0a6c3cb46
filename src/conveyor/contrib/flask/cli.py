"""``flask conveyor worker|beat|status|result|purge|dead``: the ``conveyor`` commands on
Flask's CLI, with the App of the Flask app that ``flask --app`` loads.

``flask conveyor worker`` loads the app once, to check it and the broker, then hands
over to the same lean supervisor as ``conveyor worker``: the supervisor never imports
the Flask app, and each worker process loads it afresh, the way ``flask --app`` did. So
nothing the factory opened (a database pool, say) is shared across fork(); the factory
does run once more per worker process.
"""

from __future__ import annotations

import os

import click
from flask.cli import ScriptInfo

from conveyor.app import App
from conveyor.cli import COMMANDS

FLASK_APP_ENV = "CONVEYOR_FLASK_APP"  # how the worker processes find the Flask app
EXTENSION_KEY = "conveyor"


@click.group("conveyor")
@click.pass_context
def conveyor_cli(ctx: click.Context) -> None:
    """Conveyor workers, beat and inspection for this Flask app."""
    info = ctx.ensure_object(ScriptInfo)
    flask_app = info.load_app()
    app = flask_app.extensions.get(EXTENSION_KEY)
    if not isinstance(app, App):
        raise click.UsageError(f"Flask app {flask_app.name!r} has no Conveyor: call "
                               "Conveyor(app) or conveyor.init_app(app) where it is made")
    ctx.obj = app
    if info.create_app is None:  # a custom FlaskGroup(create_app=...) can't be re-run
        os.environ[FLASK_APP_ENV] = info.app_import_path or ""
        ctx.meta["conveyor.app_spec"] = f"{__name__}:worker_app"


def worker_app() -> App:
    """Load the Flask app again in a worker process, as ``flask --app`` found it."""
    info = ScriptInfo(app_import_path=os.environ.get(FLASK_APP_ENV) or None)
    app = info.load_app().extensions.get(EXTENSION_KEY)
    if not isinstance(app, App):
        raise click.UsageError("the Flask app has no Conveyor: call Conveyor(app) or "
                               "conveyor.init_app(app) where it is made")
    return app


for command in COMMANDS:
    conveyor_cli.add_command(command)
