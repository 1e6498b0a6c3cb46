"""A job as the pages show it: the `Job` row the web app wrote, joined with what
Conveyor knows about its task (state, progress, outcome) by the same id.
"""

from __future__ import annotations

from typing import Any

from flask import url_for

from conveyor import AsyncResult, Progress, Snapshot, State, TaskError
from flask_app.extensions import conveyor, db
from flask_app.models import Job

STATE_LABELS = {
    State.PENDING: "Waiting for a worker",
    State.SCHEDULED: "Scheduled",
    State.STARTED: "Running",
    State.RETRY: "Failed, will retry",
    State.SUCCESS: "Succeeded",
    State.FAILURE: "Failed",
    State.REVOKED: "Cancelled",
}


def record_job(result: AsyncResult[Any], kind: str, description: str) -> Job:
    """Remember a task just enqueued. The task never reads its Job row, so enqueuing
    first is safe, and a failure to enqueue leaves no row for a task that never ran."""
    job = Job(id=result.id, kind=kind, description=description[:300])
    db.session.add(job)
    db.session.commit()
    return job


def recent_jobs(limit: int = 50) -> list[Job]:
    return list(db.session.scalars(db.select(Job).order_by(Job.created.desc()).limit(limit)))


def job_status(job: Job) -> dict[str, Any]:
    """What /jobs/<id>.json returns, and what the job page renders first."""
    result = conveyor.AsyncResult(job.id).snapshot()  # one read: every field agrees
    state = result.state
    status: dict[str, Any] = {
        "id": job.id, "kind": job.kind, "description": job.description,
        "state": state.value, "label": STATE_LABELS[state],
        "progress": progress_json(result.progress, state),
        "result": None,
        "summary": None,
        "error": error_text(result) if state in (State.FAILURE, State.REVOKED) else None,
        "download_url": None,
    }
    if state is State.SUCCESS:
        status["result"] = result.result
        status["summary"] = summary(job.kind, status["result"])
    if job.kind == "export" and state is State.SUCCESS:
        status["download_url"] = url_for("main.download_export", job_id=job.id)
    return status


def summary(kind: str, outcome: Any) -> str:
    """A finished task's value in words, for the job page."""
    if kind == "import":
        return f"Imported {_contacts(outcome['imported'])}."
    if kind == "export":
        return f"Exported {_contacts(outcome['rows'])}."
    return "Logged by the worker." if outcome == "console" else f"Written to {outcome}."


def progress_json(progress: Progress | None, state: State) -> dict[str, Any] | None:
    if progress is None:
        return None
    fraction = progress.fraction
    if fraction is None:  # no total to measure against (an export of no contacts)
        fraction = 1.0 if state is State.SUCCESS else 0.0
    return {"current": progress.current, "total": progress.total,
            "message": progress.message, "percent": int(fraction * 100)}  # 100 only when done


def error_text(result: Snapshot) -> str:
    outcome = result.result
    if isinstance(outcome, TaskError):
        return outcome.message or outcome.type
    return f"cancelled: {outcome}" if outcome else "cancelled"


def _contacts(count: int) -> str:
    return f"{count} contact" if count == 1 else f"{count} contacts"
