"""The example's own data: the contacts it imports and exports, and the jobs it started.

A `Job` row is what the web app remembers about a task it enqueued (what it was for,
when); the task's state, progress and outcome are read from Conveyor by the same id.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from flask_app.extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


# db.Model is made at run time, so type checkers can't see it: the ignores below.
class Job(db.Model):  # type: ignore[name-defined,misc]
    """A task started from the web app. `id` is the task id."""

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "email", "import" or "export"
    description: Mapped[str] = mapped_column(String(300))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                              index=True)


class Contact(db.Model):  # type: ignore[name-defined,misc]
    """A person imported from a CSV file."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    # The import that created it, so one file's contacts can be told apart.
    job_id: Mapped[str | None] = mapped_column(ForeignKey("job.id"), index=True)
