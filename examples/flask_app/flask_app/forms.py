"""Checking the e-mail form: every problem found at once, each with a message for the
field it belongs to, so the page can show them next to the inputs."""

from __future__ import annotations

from collections.abc import Mapping

from flask_app.mail import is_email_address

MAX_SUBJECT = 200


def check_email_form(form: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The form's values (trimmed) and its errors by field name; no errors means send."""
    values = {field: form.get(field, "").strip() for field in ("to", "subject", "body")}
    errors: dict[str, str] = {}
    to, subject = values["to"], values["subject"]
    if not to:
        errors["to"] = "Enter the address to send to."
    elif not is_email_address(to):
        errors["to"] = f"'{to}' is not an e-mail address (like name@example.com)."
    if not subject:
        errors["subject"] = "Enter a subject."
    elif len(subject) > MAX_SUBJECT or "\r" in subject or "\n" in subject:
        errors["subject"] = f"The subject must be one line of at most {MAX_SUBJECT} characters."
    return values, errors
