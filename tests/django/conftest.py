"""Django tests: pytest-django with tests.django.settings (a SQLite file database that
worker processes share), and real ``django-admin conveyor`` processes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, ConveyorProcess

pytest.importorskip("django")


class DjangoProcess(ConveyorProcess):
    """`python -m django ARGS` (django-admin) with the test settings."""

    def __init__(self, cwd: Path, env: dict[str, str], args: list[str]) -> None:
        super().__init__(cwd, env, args, launcher=("-m", "django"))


@pytest.fixture
def start_django(tmp_path: Path) -> Iterator[Callable[..., DjangoProcess]]:
    """``start_django("conveyor", "worker", "-p", "1", env={...})``: a real process with
    the test settings (and the test process's broker and database), killed after the test."""
    started: list[DjangoProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> DjangoProcess:
        base = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.django.settings",
                "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]), **(env or {})}
        started.append(DjangoProcess(tmp_path, base, list(args)))
        return started[-1]

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def clean_backend() -> Iterator[None]:
    """The default django.tasks backend emptied before and after the test, and what the
    test tasks recorded in this process forgotten (Django 6 only)."""
    from django.tasks import default_task_backend

    from conveyor.contrib.django.testing import reset
    from tests.django import dj_tasks

    reset(default_task_backend)
    dj_tasks.RAN.clear()
    yield
    reset(default_task_backend)
