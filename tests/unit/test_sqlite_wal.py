"""The SQLite store shared by long-lived processes (workers) and short-lived ones (the
CLI, producers): what one commits, the others see, whoever opens and closes it."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from conveyor.backends.sqlite.db import Database


def in_another_process(path: Path, sql: str) -> None:
    """Open the file, run `sql`, commit and close, as `conveyor status` or a producer does."""
    code = (f"import sqlite3; c = sqlite3.connect({str(path)!r}); c.execute({sql!r}); "
            "c.commit(); c.close()")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_process_with_many_connections_keeps_seeing_others_commits(tmp_path: Path) -> None:
    path = tmp_path / "conveyor.db"
    db = Database(f"sqlite:///{path}", "CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    db.connection().execute("INSERT INTO t VALUES (1)")
    # a second thread opens its own connection, as a worker's threads do
    thread = threading.Thread(target=lambda: db.connection().execute("SELECT 1").fetchall())
    thread.start()
    thread.join()

    in_another_process(path, "SELECT count(*) FROM t")  # opens and closes: the last one?
    in_another_process(path, "INSERT INTO t VALUES (2)")

    assert db.connection().execute("SELECT count(*) FROM t").fetchone()[0] == 2
    assert (tmp_path / "conveyor.db-wal").exists()  # not deleted under this process
    db.close()
