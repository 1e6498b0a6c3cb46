"""The pages: three forms that start background work, and the pages that follow it.

Every form enqueues a task, records a `Job` and redirects to the job's page, which
polls ``/jobs/<id>.json`` (static/app.js) until the task is done.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify, redirect, render_template, request, send_file, url_for
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Response

from conveyor import State
from flask_app import tasks
from flask_app.extensions import conveyor, db
from flask_app.forms import check_email_form
from flask_app.jobs import STATE_LABELS, job_status, recent_jobs, record_job
from flask_app.models import Contact, Job
from flask_app.storage import EXPORTS, folder
from flask_app.uploads import UploadError, read_contacts_upload, save_upload

bp = Blueprint("main", __name__)


def index_page(status: int = 200, **context: Any) -> tuple[str, int]:
    """The home page with its three forms; a rejected form re-renders it with `context`
    (the values typed and the errors), so nothing typed is lost."""
    contacts = db.session.scalar(db.select(db.func.count(Contact.id)))
    context.setdefault("email", {})
    context.setdefault("errors", {})
    return render_template("index.html", contacts=contacts, **context), status


@bp.get("/")
def index() -> tuple[str, int]:
    return index_page()


@bp.post("/emails")
def send_email() -> Response | tuple[str, int]:
    values, errors = check_email_form(request.form)
    if errors:
        return index_page(400, email=values, errors=errors)
    result = tasks.send_email.delay(values["to"], values["subject"], values["body"])
    job = record_job(result, "email", f"E-mail to {values['to']}: {values['subject']}")
    return redirect(url_for("main.job_page", job_id=job.id), 303)


@bp.post("/imports")
def import_contacts() -> Response | tuple[str, int]:
    try:
        # Reading request.files parses the body, which enforces MAX_CONTENT_LENGTH.
        filename, data = read_contacts_upload(request.files.get("file"))
    except RequestEntityTooLarge:
        limit = request.max_content_length or 0
        return index_page(413, errors={"file": f"The file is too big: the limit is "
                                               f"{limit // 1024} KiB."})
    except UploadError as exc:
        return index_page(400, errors={"file": str(exc)})
    result = tasks.import_contacts.delay(save_upload(data))
    job = record_job(result, "import", f"Import of {filename}")
    return redirect(url_for("main.job_page", job_id=job.id), 303)


@bp.post("/exports")
def export_contacts() -> Response:
    job = record_job(tasks.export_contacts.delay(), "export", "Export of all contacts")
    return redirect(url_for("main.job_page", job_id=job.id), 303)


@bp.get("/jobs")
def jobs() -> str:
    """The last 50 jobs with their tasks' current states (one result-store read each)."""
    listed = [(job, conveyor.AsyncResult(job.id).state) for job in recent_jobs()]
    return render_template("jobs.html", jobs=listed, labels=STATE_LABELS)


@bp.get("/jobs/<job_id>")
def job_page(job_id: str) -> str:
    job = db.get_or_404(Job, job_id, description=f"There is no job {job_id!r}.")
    return render_template("job.html", job=job, status=job_status(job))


@bp.get("/jobs/<job_id>.json")
def job_json(job_id: str) -> tuple[Response, int]:
    job = db.session.get(Job, job_id)
    if job is None:
        return jsonify(error=f"there is no job {job_id!r}"), 404
    return jsonify(job_status(job)), 200


@bp.get("/exports/<job_id>/download")
def download_export(job_id: str) -> Response:
    job = db.session.get(Job, job_id)
    if job is None or job.kind != "export":
        abort(404, description=f"There is no export {job_id!r}.")
    state = conveyor.AsyncResult(job.id).state
    if state is not State.SUCCESS:
        abort(409, description=f"This export is not ready: {STATE_LABELS[state].lower()}. "
                               "Its job page shows a download link once it is.")
    path = folder(EXPORTS) / f"{job.id}.csv"
    if not path.is_file():
        abort(410, description="The hourly clean-up deleted this export; export again.")
    return send_file(path, mimetype="text/csv", as_attachment=True,
                     download_name=f"contacts-{job.created:%Y%m%d-%H%M%S}.csv")


@bp.app_errorhandler(HTTPException)
def error_page(error: HTTPException) -> tuple[str, int]:
    """Errors as a page of the site, with the message that says what went wrong."""
    return render_template("error.html", error=error), error.code or 500
