"""The tasks `examples/demo.py` runs on a real `conveyor worker -A demo_tasks`.

They stand in for what a web shop hands to background workers: thumbnails to render,
reports to build, a catalogue export with a progress bar. The work itself is simulated
with `time.sleep` (so the demo needs nothing but Conveyor), and failures are injected
deterministically from the job's id, so every attempt of a job makes the same choices and
every run of the demo tells the same story:

- about 1 job in 8 hits a transient error (ConnectionError / TimeoutError) once or twice
  and succeeds on a retry (retries=3, first retry after ~0.2 s, doubling);
- a few thumbnails are corrupt images: ValueError, which is not retried, so they fail
  at once;
- one thumbnail's storage never comes back: it fails after its 4 attempts.
"""

from __future__ import annotations

import random
import time
from typing import Any

from conveyor import App, TaskContext

# No broker URL here: the default, an embedded SQLite file (conveyor.db) in the
# working directory, which demo.py makes a temporary one.
app = App("demo")

TRANSIENT = (ConnectionError, TimeoutError)
UNREACHABLE_IMAGE = 137  # the one thumbnail whose storage is down for good
CORRUPT_IMAGES = frozenset({23, 88, 191})


def plan(kind: str, job_id: int) -> random.Random:
    """The same random choices for a job on every attempt, in every process."""
    return random.Random(f"{kind}-{job_id}")


def transient_failures(rng: random.Random) -> int:
    """How many attempts of a job fail transiently before one succeeds (mostly 0)."""
    roll = rng.random()
    if roll < 0.03:
        return 2
    return 1 if roll < 0.12 else 0


@app.task(bind=True, retries=3, retry_on=TRANSIENT, backoff=0.2)
def render_thumbnail(task: TaskContext, image_id: int, size: int = 256) -> dict[str, Any]:
    """Render one thumbnail (simulated: 50-250 ms of 'work')."""
    rng = plan("thumbnail", image_id)
    time.sleep(rng.uniform(0.05, 0.25))
    if image_id in CORRUPT_IMAGES:
        raise ValueError(f"images/{image_id}.jpg is not a valid JPEG (truncated at byte 4096)")
    if image_id == UNREACHABLE_IMAGE:
        raise ConnectionError(f"object store refused the upload of thumbs/{image_id}.webp")
    if task.attempt <= transient_failures(rng):
        raise ConnectionError(f"object store timed out storing thumbs/{image_id}.webp")
    return {"path": f"thumbs/{image_id}_{size}.webp", "attempt": task.attempt}


@app.task(bind=True, retries=3, retry_on=TRANSIENT, backoff=0.2)
def build_report(task: TaskContext, report_id: int) -> dict[str, Any]:
    """Build one report (simulated: 0.4-1.2 s in ten chunks, reporting progress)."""
    rng = plan("report", report_id)
    chunks = 10
    pause = rng.uniform(0.4, 1.2) / chunks
    fail_at = rng.randrange(2, chunks) if task.attempt <= transient_failures(rng) else None
    for chunk in range(1, chunks + 1):
        time.sleep(pause)
        if chunk == fail_at:
            raise TimeoutError(f"warehouse query for report {report_id} timed out")
        task.progress(chunk, chunks, "chunks")
    return {"report": f"reports/{report_id}.pdf", "attempt": task.attempt}


@app.task(bind=True)
def export_catalogue(task: TaskContext, rows: int = 20_000, seconds: float = 4.0) -> dict[str, Any]:
    """Export the product catalogue (simulated), reporting progress as it goes."""
    step = max(1, rows // 40)
    done = 0
    while done < rows:
        time.sleep(seconds * step / rows)
        done = min(rows, done + step)
        task.progress(done, rows, "rows")
    return {"file": "exports/catalogue.csv", "rows": rows, "attempt": task.attempt}
