"""The app the beat's process tests run in real `conveyor beat` / `conveyor worker`
processes: a tick a second that records which tick it ran, and a nightly from config."""

from __future__ import annotations

import os

from conveyor import App, TaskContext, every

app = App("beats", beat_schedule={
    "nightly": {"task": "beat_tasks.nightly", "schedule": "0 3 * * *", "catch_up": "skip"},
})


@app.periodic(every(seconds=1), name="second", catch_up="skip")
@app.task(bind=True)
def second(task: TaskContext) -> str:
    """Appends its tick, its id and this process to ticks.log (short appends are atomic)."""
    with open("ticks.log", "a") as f:
        f.write(f"{task.headers['beat_tick']} {task.id} {os.getpid()}\n")
    return task.headers["beat_tick"]


@app.task
def nightly() -> None: ...
