"""The Flask example (examples/flask_app) does what its README promises, with a real
worker process: e-mail in the background, CSV import with progress, export, clean-up.
"""

from __future__ import annotations

import email
import html
import io
import os
import time
from collections.abc import Callable, Iterator
from email.policy import default as email_policy
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.conftest import amqp_url_for, drop_namespace, redis_namespace_url
from tests.flask.conftest import FlaskProcess
from tests.flask.example_helpers import Example, contacts_csv, job_id, wait_for_job


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            start_flask: Callable[..., FlaskProcess]) -> Iterator[Example]:
    """The example on its default, embedded broker (SQLite files in DATA_DIR)."""
    made = Example(tmp_path, monkeypatch, start_flask)
    yield made
    made.close()


def page_text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def nothing_enqueued(app: Flask) -> bool:
    from flask_app.extensions import db
    from flask_app.models import Job

    with app.app_context():
        jobs = db.session.scalar(db.select(db.func.count(Job.id)))
    stats = app.extensions["conveyor"].broker.stats()["default"]
    return jobs == 0 and stats.ready == 0


def stored_contacts(app: Flask, job: str | None = None) -> list[tuple[str, str]]:
    from flask_app.extensions import db
    from flask_app.models import Contact

    query = db.select(Contact.name, Contact.email).order_by(Contact.id)
    if job is not None:
        query = query.where(Contact.job_id == job)
    with app.app_context():
        return [(name, address) for name, address in db.session.execute(query)]


def upload(client: Any, data: bytes, filename: str = "contacts.csv") -> Any:
    return client.post("/imports", data={"file": (io.BytesIO(data), filename)})


# -- e-mail ----------------------------------------------------------------------------


def test_the_email_form_writes_the_message_to_the_outbox(example: Example) -> None:
    app = example.create_app()
    client = app.test_client()
    example.start_worker()

    response = client.post("/emails", data={"to": "ann@example.com", "subject": "Welcome, Ann",
                                            "body": "Glad to have you."})
    job = job_id(response)
    final = wait_for_job(client, job, example)[-1]

    assert final["state"] == "SUCCESS", final
    [eml] = (example.data_dir / "outbox").glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email_policy)
    assert (message["To"], message["Subject"]) == ("ann@example.com", "Welcome, Ann")
    assert message.get_content().strip() == "Glad to have you."
    assert f"Written to outbox/{eml.name}" in page_text(client.get(f"/jobs/{job}"))


@pytest.mark.parametrize(("address", "message"), [
    ("", "Enter the address to send to."),
    ("bob", "'bob' is not an e-mail address"),
    ("bob@localhost", "'bob@localhost' is not an e-mail address"),
], ids=["empty", "no @", "no dot in the domain"])
def test_the_email_form_rejects_a_bad_address(example: Example, address: str,
                                              message: str) -> None:
    app = example.create_app()

    response = app.test_client().post("/emails", data={"to": address, "subject": "Hi"})

    assert response.status_code == 400
    assert message in page_text(response)
    assert 'value="Hi"' in response.get_data(as_text=True)  # what was typed is kept
    assert nothing_enqueued(app)


# -- CSV import ------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "redis", "amqp"])
def any_broker_example(request: pytest.FixtureRequest, tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch,
                       start_flask: Callable[..., FlaskProcess]) -> Iterator[Example]:
    """The example on SQLite, then on Redis, then on RabbitMQ: one setting,
    FLASK_CONVEYOR_BROKER_URL."""
    url = {"redis": redis_namespace_url, "amqp": lambda: amqp_url_for(request)}.get(
        request.param, lambda: None)()
    made = Example(tmp_path, monkeypatch, start_flask, row_delay=0.03, broker_url=url)
    yield made
    made.close()
    if request.param == "redis":
        drop_namespace(url)


def test_an_import_shows_progress_and_stores_the_contacts(any_broker_example: Example) -> None:
    example = any_broker_example
    app = example.create_app()
    client = app.test_client()
    example.start_worker()

    job = job_id(upload(client, contacts_csv(40)))
    seen = wait_for_job(client, job, example)

    percents = [answer["progress"]["percent"] for answer in seen if answer["progress"]]
    assert any(0 < percent < 100 for percent in percents), percents
    assert seen[-1]["state"] == "SUCCESS", seen[-1]
    assert seen[-1]["progress"] == {"current": 40, "total": 40, "message": "rows",
                                    "percent": 100}
    assert seen[-1]["result"] == {"imported": 40}
    contacts = stored_contacts(app, job)
    assert len(contacts) == 40
    assert contacts[0] == ("Person 2", "person2@example.com")
    jobs_page = page_text(client.get("/jobs"))
    assert f'href="/jobs/{job}"' in jobs_page
    assert "SUCCESS" in jobs_page
    assert "Imported 40 contacts." in page_text(client.get(f"/jobs/{job}"))


def test_an_import_with_a_bad_row_fails_naming_it_and_stores_nothing(example: Example) -> None:
    app = example.create_app()
    client = app.test_client()
    example.start_worker()

    job = job_id(upload(client, contacts_csv(5, bad_row=4)))
    final = wait_for_job(client, job, example)[-1]

    assert final["state"] == "FAILURE", final
    assert final["error"] == "row 4: 'bob' is not an e-mail address"
    assert final["result"] is None
    page = page_text(client.get(f"/jobs/{job}"))
    assert "Failed" in page
    assert "row 4: 'bob' is not an e-mail address" in page
    assert stored_contacts(app) == []  # rows 2 and 3 were fine, but the file is one unit


@pytest.mark.parametrize(("files", "message"), [
    ({}, "Choose a CSV file to import."),
    ({"file": (io.BytesIO(b""), "contacts.csv")}, "'contacts.csv' is empty."),
    ({"file": (io.BytesIO(b"name,email\nAnn,ann@example.com\n"), "contacts.xlsx")},
     "'contacts.xlsx' is not a .csv file."),
    ({"file": (io.BytesIO(b"name,mail\nAnn,ann@example.com\n"), "contacts.csv")},
     "must start with the header line 'name,email'; it starts with 'name,mail'"),
    ({"file": (io.BytesIO(b"name,email\n"), "contacts.csv")}, "has a header but no contacts"),
], ids=["no file", "empty", "not csv", "wrong header", "no rows"])
def test_a_bad_upload_is_rejected_with_a_message(example: Example, files: dict[str, Any],
                                                 message: str) -> None:
    app = example.create_app()

    response = app.test_client().post("/imports", data=files)

    assert response.status_code == 400
    assert message in page_text(response)
    assert nothing_enqueued(app)
    assert list((example.data_dir / "uploads").iterdir()) == []


def test_an_upload_over_the_size_limit_is_rejected(example: Example) -> None:
    app = example.create_app(MAX_CONTENT_LENGTH=4096)

    response = upload(app.test_client(), contacts_csv(200))

    assert response.status_code == 413
    assert "The file is too big: the limit is 4 KiB." in page_text(response)
    assert nothing_enqueued(app)


# -- export ----------------------------------------------------------------------------


def test_an_export_downloads_the_imported_contacts(example: Example) -> None:
    app = example.create_app()
    client = app.test_client()
    example.start_worker()
    assert wait_for_job(client, job_id(upload(client, contacts_csv(3))), example)[-1][
        "state"] == "SUCCESS"

    job = job_id(client.post("/exports"))
    final = wait_for_job(client, job, example)[-1]

    assert final["state"] == "SUCCESS", final
    assert final["download_url"] == f"/exports/{job}/download"
    assert 'href="/exports/' in page_text(client.get(f"/jobs/{job}"))
    with client.get(final["download_url"]) as download:
        assert download.status_code == 200
        assert download.mimetype == "text/csv"
        assert "attachment" in download.headers["Content-Disposition"]
        assert download.get_data(as_text=True).splitlines() == [
            "name,email", "Person 2,person2@example.com", "Person 3,person3@example.com",
            "Person 4,person4@example.com"]


def test_a_download_is_409_until_the_export_is_done_and_404_if_unknown(
        example: Example) -> None:
    app = example.create_app()
    client = app.test_client()
    job = job_id(client.post("/exports"))  # no worker: it stays queued

    not_ready = client.get(f"/exports/{job}/download")
    unknown = client.get("/exports/no-such-export/download")

    assert not_ready.status_code == 409
    assert "This export is not ready: waiting for a worker." in page_text(not_ready)
    assert unknown.status_code == 404
    assert "There is no export 'no-such-export'." in page_text(unknown)
    assert client.get("/jobs/no-such-job.json").status_code == 404


# -- periodic clean-up -----------------------------------------------------------------


def test_the_hourly_clean_up_deletes_old_files_and_keeps_new_ones(example: Example) -> None:
    app = example.create_app(CLEANUP_AFTER=3600)
    day_ago = time.time() - 24 * 3600
    files = {}
    for folder in ("uploads", "exports", "outbox"):
        for age in ("old", "new"):
            path = files[folder, age] = example.data_dir / folder / f"{age}.csv"
            path.write_text("name,email\n")
            if age == "old":
                os.utime(path, (day_ago, day_ago))
    from flask_app import tasks

    with app.app_context():
        deleted = tasks.clean_up_old_files()

    assert deleted == 2
    assert {key for key, path in files.items() if not path.exists()} == {
        ("uploads", "old"), ("exports", "old")}  # the outbox is mail, not a temporary file
    [entry] = [entry for entry in app.extensions["conveyor"].periodic_tasks.values()
               if entry.task == tasks.clean_up_old_files.name]
    assert entry.schedule.seconds == 3600
