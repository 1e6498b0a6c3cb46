"""``flask conveyor ...`` as users run it: real worker processes loading a Flask app
through Flask's own CLI, on SQLite and Redis."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from conveyor import State
from conveyor.errors import TaskError
from tests.conftest import ROOT, drop_namespace, redis_namespace_url
from tests.flask.conftest import FlaskProcess

HERE = Path(__file__).resolve().parent
Start = Callable[..., FlaskProcess]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory holding flask_tasks.py, importable here; its files go in it too."""
    (tmp_path / "flask_tasks.py").write_text((HERE / "flask_tasks.py").read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("FLASK_TEST_DIR", str(tmp_path))
    sys.modules.pop("flask_tasks", None)
    yield tmp_path
    module = sys.modules.pop("flask_tasks", None)
    if module is not None:
        for app in module.conveyor.apps.values():
            app.close()


@pytest.fixture(params=["sqlite", "redis"])
def broker_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
               ) -> Iterator[dict[str, str]]:
    """The broker as a Flask user sets it: FLASK_CONVEYOR_BROKER_URL, or the app's default."""
    if request.param == "sqlite":
        yield {}
        return
    url = redis_namespace_url()
    monkeypatch.setenv("FLASK_CONVEYOR_BROKER_URL", url)
    yield {"FLASK_CONVEYOR_BROKER_URL": url}
    drop_namespace(url)


def tasks(project: Path) -> ModuleType:
    import flask_tasks  # type: ignore[import-not-found]

    return flask_tasks  # type: ignore[no-any-return]


def events(project: Path) -> list[str]:
    log = project / "events.log"
    return log.read_text().splitlines() if log.exists() else []


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_worker_on_flask_cli_runs_tasks_in_the_app_context(
        project: Path, broker_env: dict[str, str], start_flask: Start) -> None:
    module = tasks(project)
    flask_app = module.create_app("blue")
    with flask_app.app_context():
        where, where_async = module.where.delay(), module.where_async.delay()
        explode, nested = module.explode.delay("bad row 3"), module.nested.delay()
    worker = start_flask(project, 'flask_tasks:create_app("blue")', "conveyor", "worker",
                         "-p", "1", env=broker_env)
    assert where.get(timeout=30) == {"app": "shop_blue", "colour": "blue"}, worker.output()
    assert where_async.get(timeout=10) == "blue"
    with pytest.raises(TaskError, match="bad row 3"):
        explode.get(timeout=10)
    # A task that publishes sends to its own App: the inner task ran on this worker too.
    inner = flask_app.extensions["conveyor"].AsyncResult(nested.get(timeout=10))
    assert inner.get(timeout=10) == {"app": "shop_blue", "colour": "blue"}
    wait_for(lambda: "teardown blue ValueError" in events(project), "the teardown")
    assert events(project).count("teardown blue ok") == 2  # where, inner where
    assert worker.stop() == 0


def test_factory_apps_keep_their_config_and_broker_apart(project: Path,
                                                          start_flask: Start) -> None:
    module = tasks(project)
    blue, red = module.create_app("blue"), module.create_app("red")
    with blue.app_context():
        from_blue = module.where.delay()
    with red.app_context():
        from_red = module.where.delay()
    assert blue.extensions["conveyor"].broker.stats()["default"].ready == 1
    start_flask(project, 'flask_tasks:create_app("red")', "conveyor", "worker", "-p", "1")
    assert from_red.get(timeout=30) == {"app": "shop_red", "colour": "red"}
    assert from_blue.state is State.PENDING  # the red worker never sees blue's broker
    start_flask(project, 'flask_tasks:create_app("blue")', "conveyor", "worker", "-p", "1")
    assert from_blue.get(timeout=30) == {"app": "shop_blue", "colour": "blue"}


def test_worker_beat_publishes_periodic_tasks_inside_the_app(project: Path,
                                                             start_flask: Start) -> None:
    worker = start_flask(project, "flask_tasks:create_app", "conveyor", "worker", "-p", "1",
                         "--beat")
    wait_for(lambda: events(project).count("tick blue") >= 2, "two ticks")
    assert worker.stop() == 0
    assert "with beat" in worker.output()


def test_status_and_result_commands(project: Path, start_flask: Start) -> None:
    module = tasks(project)
    with module.create_app("blue").app_context():
        pending = module.where.delay()
    status = flask_cli(project, "flask_tasks:create_app", "conveyor", "status")
    assert status.returncode == 0, status.stderr
    assert "default  1" in status.stdout
    result = flask_cli(project, "flask_tasks:create_app", "conveyor", "result", pending.id)
    assert "PENDING" in result.stdout


def test_an_app_without_conveyor_gets_a_clear_message(project: Path) -> None:
    (project / "plain.py").write_text("from flask import Flask\napp = Flask('plain')\n")
    out = flask_cli(project, "plain", "conveyor", "status")
    assert out.returncode != 0
    assert "has no Conveyor: call Conveyor(app) or conveyor.init_app(app)" in out.stderr


def test_the_a_option_is_refused_under_flask(project: Path) -> None:
    out = flask_cli(project, "flask_tasks:create_app", "conveyor", "status", "-A", "other")
    assert out.returncode != 0
    assert "flask --app" in out.stderr


def test_a_killed_worker_loses_nothing(project: Path, start_flask: Start) -> None:
    env = {"FLASK_CONVEYOR_LEASE_SECONDS": "2"}
    module = tasks(project)
    flask_app = module.create_app("blue")
    app = flask_app.extensions["conveyor"]
    result = module.slow.delay(1.5)
    first = start_flask(project, "flask_tasks:create_app", "conveyor", "worker", "-p", "1",
                        env=env)
    wait_for(lambda: any(e.startswith("slow started") for e in events(project)),
             "the task to start")
    first.signal_group(signal.SIGKILL)
    first.proc.wait(10)
    start_flask(project, "flask_tasks:create_app", "conveyor", "worker", "-p", "1", env=env)
    assert result.get(timeout=60) == "slept in shop_blue"
    assert app.AsyncResult(result.id).state is State.SUCCESS
    assert len([e for e in events(project) if e.startswith("slow started")]) == 2


def flask_cli(project: Path, app_path: str, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "FLASK_APP": app_path,
           "PYTHONPATH": os.pathsep.join([str(project), str(ROOT / "src")])}
    return subprocess.run([sys.executable, "-m", "flask", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=60)
