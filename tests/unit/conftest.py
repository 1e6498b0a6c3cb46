"""Apps for the unit tests: in-memory by default, SQLite where a test needs a real file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import App


@pytest.fixture
def app() -> Iterator[App]:
    app = App("t", broker="memory://")
    yield app
    app.close()


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[App]:
    app = App("t", broker=f"sqlite:///{tmp_path}/c.db")
    yield app
    app.close()
