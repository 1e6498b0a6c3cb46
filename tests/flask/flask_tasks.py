"""A Flask app for the integration tests: tasks that report what their app context holds.

Copied into each test's directory; worker processes load it with
``FLASK_APP='flask_tasks:create_app("blue")'``. Everything a task sees is written to
files under $FLASK_TEST_DIR so the test can read it back.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from flask import Flask, current_app, g

from conveyor import every
from conveyor.contrib.flask import Conveyor

conveyor = Conveyor()


def _directory() -> Path:
    return Path(os.environ.get("FLASK_TEST_DIR", "."))


def _log(line: str) -> None:
    with (_directory() / "events.log").open("a") as f:
        f.write(line + "\n")


@conveyor.task
def where() -> dict[str, str]:
    """What a task sees of its Flask app."""
    g.touched = True  # g lives in the app context: teardown reads it back
    return {"app": current_app.name, "colour": current_app.config["COLOUR"]}


@conveyor.task
async def where_async() -> str:
    return str(current_app.config["COLOUR"])


@conveyor.task
def explode(why: str) -> None:
    g.touched = True
    raise ValueError(why)


@conveyor.task(bind=True)
def nested(task: object) -> str:
    """Publishes from inside a task: it goes to this worker's own App."""
    return where.delay().id


@conveyor.task
def slow(seconds: float) -> str:
    _log(f"slow started {os.getpid()}")
    time.sleep(seconds)
    return f"slept in {current_app.name}"


@conveyor.periodic(every(seconds=1), name="tick")
def tick() -> None:
    _log(f"tick {current_app.config['COLOUR']}")


def create_app(colour: str = "blue") -> Flask:
    app = Flask(f"shop_{colour}")
    app.config["COLOUR"] = colour
    app.config["CONVEYOR_BROKER_URL"] = f"sqlite:///{_directory()}/{colour}.db"
    app.config.from_prefixed_env()  # FLASK_CONVEYOR_BROKER_URL=... as in Flask's recipe
    conveyor.init_app(app)

    @app.teardown_appcontext
    def record_teardown(error: BaseException | None) -> None:
        if g.get("touched"):
            _log(f"teardown {colour} {type(error).__name__ if error else 'ok'}")

    return app
