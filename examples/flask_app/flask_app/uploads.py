"""Checking an uploaded contacts file before anything is enqueued.

The view rejects what it can see at once (no file, not a CSV, empty, a wrong header)
with HTTP 400 and a message next to the form; the rows themselves are checked by the
import task, which is where a bad e-mail on row 3000 of a big file is found.
"""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path

from werkzeug.datastructures import FileStorage

from flask_app.storage import UPLOADS, folder, write_atomically

HEADER = ["name", "email"]


class UploadError(ValueError):
    """An upload the import can't use; the message is shown to the user."""


def read_contacts_upload(upload: FileStorage | None) -> tuple[str, bytes]:
    """The uploaded file's name and bytes, if it looks like a contacts CSV.

    Raises UploadError saying what is wrong with it.
    """
    if upload is None or not upload.filename:
        raise UploadError("Choose a CSV file to import.")
    if not upload.filename.lower().endswith(".csv"):
        raise UploadError(f"{upload.filename!r} is not a .csv file.")
    data = upload.stream.read()
    if not data.strip():
        raise UploadError(f"{upload.filename!r} is empty.")
    check_header(data, upload.filename)
    return upload.filename, data


def check_header(data: bytes, filename: str) -> None:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UploadError(f"{filename!r} is not UTF-8 text; save it as CSV UTF-8.") from None
    rows = csv.reader(io.StringIO(text))
    header = [column.strip().lower() for column in next(rows, [])]
    if header != HEADER:
        raise UploadError(f"{filename!r} must start with the header line "
                          f"'{','.join(HEADER)}'; it starts with '{','.join(header)}'.")
    if not any(any(cell.strip() for cell in row) for row in rows):
        raise UploadError(f"{filename!r} has a header but no contacts.")


def save_upload(data: bytes) -> str:
    """Keep the file in DATA_DIR/uploads/ under a fresh name (never the user's, which
    could be anything); return that name, which is what the task is given."""
    name = f"{uuid.uuid4().hex}.csv"
    write_atomically(folder(UPLOADS) / name, data)
    return name


def upload_path(name: str) -> Path:
    return folder(UPLOADS) / Path(name).name  # a bare name, never a path elsewhere
