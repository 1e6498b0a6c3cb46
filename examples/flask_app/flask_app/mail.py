"""A tiny mailer with two backends, chosen by ``MAIL_BACKEND``:

- ``"file"`` (the default) writes each message as an ``.eml`` file into
  DATA_DIR/outbox/, which any mail client opens; no SMTP server needed for the demo.
- ``"console"`` logs the message instead.

A real app would add an SMTP backend here; the task that calls `send` wouldn't change.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from email.message import EmailMessage
from email.utils import format_datetime, localtime, make_msgid
from pathlib import Path

from flask import current_app

from flask_app.storage import OUTBOX, folder, write_atomically

logger = logging.getLogger(__name__)
BACKENDS = ("file", "console")
# Deliberately simple: one "@", no spaces, a dot in the domain. Real validation is
# sending a confirmation link.
ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def is_email_address(text: str) -> bool:
    return ADDRESS.fullmatch(text) is not None


def build_message(to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_SENDER"]
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(localtime())
    message["Message-ID"] = make_msgid(domain="conveyor.example")
    message.set_content(body)
    return message


def send(message: EmailMessage) -> str:
    """Deliver `message` with the configured backend; return where it went, for the
    job page: the .eml's path under DATA_DIR, or "console".

    Raises ValueError for an unknown MAIL_BACKEND.
    """
    backend = current_app.config["MAIL_BACKEND"]
    if backend == "file":
        return f"{OUTBOX}/{write_to_outbox(message).name}"
    if backend == "console":
        logger.info("e-mail (MAIL_BACKEND=console):\n%s", message.as_string())
        return "console"
    raise ValueError(f"MAIL_BACKEND must be one of {', '.join(BACKENDS)}, got {backend!r}")


def write_to_outbox(message: EmailMessage) -> Path:
    path = folder(OUTBOX) / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
    write_atomically(path, message.as_bytes())
    return path
