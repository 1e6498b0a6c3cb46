"""The background work: e-mail, CSV import and export, and the hourly clean-up.

Tasks get ids and file names, never ORM objects: they run in another process, inside
the worker's own app context, with their own database session.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

from flask import current_app

from conveyor import TaskContext, every
from flask_app import mail
from flask_app.extensions import conveyor, db
from flask_app.models import Contact
from flask_app.storage import EXPORTS, UPLOADS, delete_older_than, folder, write_atomically
from flask_app.uploads import upload_path


class InvalidRow(ValueError):
    """A row of an imported file that can't become a contact."""


@conveyor.task(retries=3, retry_on=OSError)  # a full disk or a mail server hiccup
def send_email(to: str, subject: str, body: str) -> str:
    """Send one message; return where it went (see `mail.send`)."""
    return mail.send(mail.build_message(to, subject, body))


@conveyor.task(bind=True)
def import_contacts(task: TaskContext, upload_name: str) -> dict[str, int]:
    """Add every row of an uploaded CSV as a Contact, in one transaction: a bad row
    fails the task, naming the row, and nothing of that file is stored."""
    rows = read_rows(upload_path(upload_name))
    delay = float(current_app.config["IMPORT_ROW_DELAY"])
    task.progress(0, len(rows), "rows")
    for done, (row_number, name, email) in enumerate(rows, start=1):
        db.session.add(Contact(name=check_name(row_number, name),
                               email=check_email(row_number, email), job_id=task.id))
        time.sleep(delay)  # stands in for real per-row work; makes progress visible
        task.progress(done, len(rows), "rows")
    db.session.commit()  # nothing was flushed before: a failure above leaves no row
    return {"imported": len(rows)}


def read_rows(path: Path) -> list[tuple[int, str, str]]:
    """(row number, name, e-mail) for each non-blank line after the header. Row numbers
    are the file's line numbers, header included, as a spreadsheet shows them."""
    rows = []
    with path.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        next(reader, None)
        for cells in reader:
            if any(cell.strip() for cell in cells):
                name, email = (cells + ["", ""])[:2]  # a short row has empty cells
                rows.append((reader.line_num, name.strip(), email.strip()))
    return rows


def check_name(row_number: int, name: str) -> str:
    if not name:
        raise InvalidRow(f"row {row_number}: the name is empty")
    return name


def check_email(row_number: int, email: str) -> str:
    if not mail.is_email_address(email):
        raise InvalidRow(f"row {row_number}: {email!r} is not an e-mail address")
    return email


@conveyor.task(bind=True)
def export_contacts(task: TaskContext) -> dict[str, Any]:
    """Write every contact to DATA_DIR/exports/<task id>.csv, reporting progress."""
    contacts = db.session.scalars(db.select(Contact).order_by(Contact.id)).all()
    delay = float(current_app.config["EXPORT_ROW_DELAY"])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["name", "email"])
    task.progress(0, len(contacts), "rows")
    for done, contact in enumerate(contacts, start=1):
        writer.writerow([contact.name, contact.email])
        time.sleep(delay)
        task.progress(done, len(contacts), "rows")
    path = folder(EXPORTS) / f"{task.id}.csv"
    write_atomically(path, buffer.getvalue().encode())
    return {"rows": len(contacts), "file": path.name}


@conveyor.periodic(every(hours=1))
def clean_up_old_files() -> int:
    """Delete uploads and exports older than CLEANUP_AFTER seconds; return how many."""
    max_age = float(current_app.config["CLEANUP_AFTER"])
    return sum(delete_older_than(folder(name), max_age) for name in (UPLOADS, EXPORTS))
