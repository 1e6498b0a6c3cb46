"""The extension objects, made once at import and bound to each app in `create_app`.

They live in their own module so that models, tasks and views can import them without
importing the app factory (which imports those modules in turn).
"""

from __future__ import annotations

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

from conveyor.contrib.flask import Conveyor


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
conveyor = Conveyor()
