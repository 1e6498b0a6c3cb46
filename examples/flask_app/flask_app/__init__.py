"""Conveyor's Flask example: a small shop back-office that sends e-mail, imports and
exports contacts with a live progress bar, and cleans up old files every hour, all in
the background. See ../README.md.

    flask --app flask_app run                          # the web server
    flask --app flask_app conveyor worker -p 1 --beat  # the worker, with the hourly clean-up
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask
from sqlalchemy.exc import OperationalError

from flask_app import views
from flask_app.config import load_config
from flask_app.extensions import conveyor, db
from flask_app.storage import create_folders


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """The app factory: ``flask --app flask_app`` calls it in the web server and in
    every worker process alike."""
    app = Flask(__name__)
    data_dir = load_config(app, test_config)
    create_folders(data_dir)
    db.init_app(app)
    conveyor.init_app(app)  # reads CONVEYOR_* from app.config; the tasks are in tasks.py
    app.register_blueprint(views.bp)
    create_tables(app)
    return app


def create_tables(app: Flask) -> None:
    """Create the tables that don't exist yet. The web server and the worker start
    together (run.py), so both may try; the one that loses the race finds the tables
    there on its second try."""
    with app.app_context():
        try:
            db.create_all()
        except OperationalError:
            db.create_all()
