"""The example's settings: defaults, then ``FLASK_*`` environment variables, then the
test config. Everything on disk is under DATA_DIR, so ``FLASK_DATA_DIR=/tmp/x`` moves
it all, and ``FLASK_CONVEYOR_BROKER_URL=redis://127.0.0.1:6379/0`` is the one setting
that moves the queue to Redis.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from flask_app.mail import BACKENDS

DEFAULTS: dict[str, Any] = {
    "MAIL_BACKEND": "file",  # or "console"
    "MAIL_SENDER": "Conveyor example <noreply@conveyor.example>",
    "IMPORT_ROW_DELAY": 0.02,  # seconds per imported row, so the progress bar moves
    "EXPORT_ROW_DELAY": 0.01,  # the same for exported rows
    "CLEANUP_AFTER": 24 * 3600,  # seconds an upload or export is kept
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,  # bytes in a request: caps an upload's size
}


def load_config(app: Flask, test_config: Mapping[str, Any] | None) -> Path:
    """Fill `app.config`; return DATA_DIR, made absolute. Settings derived from DATA_DIR
    (the two databases) are filled in last, so they follow a DATA_DIR set anywhere, and
    any of them set explicitly wins. Raises ValueError for an unknown MAIL_BACKEND."""
    app.config.from_mapping(DATA_DIR=app.instance_path, **DEFAULTS)
    app.config.from_prefixed_env()  # FLASK_X=... sets X; values are JSON-decoded if they can be
    if test_config is not None:
        app.config.from_mapping(test_config)
    data_dir = Path(str(app.config["DATA_DIR"])).resolve()
    app.config["DATA_DIR"] = str(data_dir)
    app.config.setdefault("SQLALCHEMY_DATABASE_URI", f"sqlite:///{data_dir / 'shop.db'}")
    app.config.setdefault("CONVEYOR_BROKER_URL", f"sqlite:///{data_dir / 'conveyor.db'}")
    if str(app.config["CONVEYOR_BROKER_URL"]).startswith("amqp"):  # RabbitMQ keeps no results
        app.config.setdefault("CONVEYOR_RESULTS_URL", f"sqlite:///{data_dir / 'results.db'}")
    if app.config["MAIL_BACKEND"] not in BACKENDS:
        raise ValueError(f"MAIL_BACKEND must be one of {', '.join(BACKENDS)}, "
                         f"got {app.config['MAIL_BACKEND']!r}")
    return data_dir
