"""Running the Flask example (examples/flask_app) in tests.

Each test gets its own copy of the example's package in its tmp dir (so the log files
of the processes it starts land there, not in examples/) and its own DATA_DIR. This
process and the worker or web server it starts share the files and both databases
through ``FLASK_*`` environment variables, exactly as a user would configure them.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.conftest import ROOT
from tests.flask.conftest import FlaskProcess

EXAMPLE_DIR = ROOT / "examples" / "flask_app"
PACKAGE = "flask_app"
FINAL_STATES = {"SUCCESS", "FAILURE", "REVOKED"}


class Example:
    """The example app for one test: `create_app()` here, `start_worker()` and
    `start_server()` as real processes; `close()` releases everything."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 start_flask: Callable[..., FlaskProcess], *, row_delay: float = 0.02,
                 broker_url: str | None = None) -> None:
        self.root = tmp_path / "example"
        self.data_dir = tmp_path / "data"
        shutil.copytree(EXAMPLE_DIR / PACKAGE, self.root / PACKAGE,
                        ignore=shutil.ignore_patterns("__pycache__"))
        self._start_flask = start_flask
        self.apps: list[Flask] = []
        self.processes: list[FlaskProcess] = []
        # Set in os.environ: the processes started below inherit them.
        monkeypatch.setenv("FLASK_DATA_DIR", str(self.data_dir))
        monkeypatch.setenv("FLASK_IMPORT_ROW_DELAY", str(row_delay))
        monkeypatch.setenv("FLASK_EXPORT_ROW_DELAY", str(row_delay))
        if broker_url is not None:
            monkeypatch.setenv("FLASK_CONVEYOR_BROKER_URL", broker_url)
        monkeypatch.syspath_prepend(str(self.root))
        forget_package()  # another test's copy may be imported

    def create_app(self, **config: Any) -> Flask:
        from flask_app import create_app

        app = create_app(config or None)
        self.apps.append(app)
        return app

    def start_worker(self) -> FlaskProcess:
        """``flask --app flask_app conveyor worker -p 1``, as the README says."""
        return self._start(PACKAGE, "conveyor", "worker", "-p", "1")

    def start_server(self, port: int) -> FlaskProcess:
        """``flask --app flask_app run --port PORT``: the development server."""
        return self._start(PACKAGE, "run", "--port", str(port))

    def _start(self, *args: str) -> FlaskProcess:
        process = self._start_flask(self.root, *args)
        self.processes.append(process)
        return process

    def output(self) -> str:
        """The logs of every process started, for assertion messages."""
        return "\n".join(f"--- {p.log.name}\n{p.output()}" for p in self.processes)

    def close(self) -> None:
        """Stop the processes, then close what this process opened (pytest turns an
        unclosed SQLite connection's ResourceWarning into a failure)."""
        for process in self.processes:
            process.kill()
        from flask_app.extensions import db

        for app in self.apps:
            with app.app_context():
                for engine in db.engines.values():
                    engine.dispose()
            app.extensions["conveyor"].close()
        forget_package()


def forget_package() -> None:
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]


def job_id(response: TestResponse) -> str:
    """The id of the job a form started: the forms redirect to /jobs/<id>."""
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.location.rsplit("/", 1)[1]


def wait_for_job(client: FlaskClient, job: str, example: Example,
                 timeout: float = 30.0) -> list[dict[str, Any]]:
    """Poll /jobs/<id>.json as the job page does, until the task has finished; every
    answer seen, in order."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/jobs/{job}.json")
        assert response.status_code == 200, response.get_data(as_text=True)
        seen.append(response.get_json())
        if seen[-1]["state"] in FINAL_STATES:
            return seen
        time.sleep(0.03)
    raise AssertionError(f"job {job} did not finish within {timeout} s; last answer "
                         f"{seen[-1] if seen else None}\n{example.output()}")


def contacts_csv(count: int, *, bad_row: int | None = None) -> bytes:
    """A contacts file with `count` people; with `bad_row`, that line of the file (the
    header is line 1) has 'bob' for an e-mail address."""
    lines = ["name,email"]
    for number in range(2, count + 2):
        email = "bob" if number == bad_row else f"person{number}@example.com"
        lines.append(f"Person {number},{email}")
    return ("\n".join(lines) + "\n").encode()
