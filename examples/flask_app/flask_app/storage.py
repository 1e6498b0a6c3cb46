"""Where the example keeps its files: everything lives under ``DATA_DIR``, so the web
server and the worker (separate processes, maybe separate machines sharing a disk)
find the same files, and one environment variable moves it all.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from flask import current_app

UPLOADS, EXPORTS, OUTBOX = "uploads", "exports", "outbox"
FOLDERS = (UPLOADS, EXPORTS, OUTBOX)


def folder(name: str) -> Path:
    """One of `FOLDERS` under the current app's DATA_DIR."""
    return Path(current_app.config["DATA_DIR"]) / name


def create_folders(data_dir: Path) -> None:
    for name in FOLDERS:
        (data_dir / name).mkdir(parents=True, exist_ok=True)


def write_atomically(path: Path, data: bytes) -> None:
    """Write `path` so that a reader sees either no file or all of it, never a part:
    the download view and the tests look at these files while tasks write them."""
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    partial.write_bytes(data)
    os.replace(partial, path)


def delete_older_than(directory: Path, seconds: float) -> int:
    """Delete the files in `directory` last modified more than `seconds` ago; return
    how many. A file another process deletes meanwhile is simply not counted."""
    cutoff = time.time() - seconds
    deleted = 0
    for path in directory.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                deleted += 1
        except FileNotFoundError:
            continue
    return deleted
