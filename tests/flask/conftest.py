"""Real ``flask ... conveyor`` processes, for the Flask integration and example tests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, ConveyorProcess

pytest.importorskip("flask")


class FlaskProcess(ConveyorProcess):
    """`python -m flask ARGS` with ``FLASK_APP=app_path``, in its own process group."""

    def __init__(self, cwd: Path, env: dict[str, str], app_path: str, args: list[str]) -> None:
        super().__init__(cwd, {**env, "FLASK_APP": app_path}, args, launcher=("-m", "flask"))


@pytest.fixture
def start_flask() -> Iterator[Callable[..., FlaskProcess]]:
    """``start_flask(cwd, "pkg:create_app", "conveyor", "worker", "-p", "1", env={...})``:
    a real process, killed after the test. `cwd` and conveyor's ``src`` are importable."""
    started: list[FlaskProcess] = []

    def start(cwd: Path, app_path: str, *args: str,
              env: dict[str, str] | None = None) -> FlaskProcess:
        base = {**os.environ, **(env or {})}
        base["PYTHONPATH"] = os.pathsep.join([str(cwd), str(ROOT / "src")])
        started.append(FlaskProcess(cwd, base, app_path, list(args)))
        return started[-1]

    yield start
    for process in started:
        process.kill()
