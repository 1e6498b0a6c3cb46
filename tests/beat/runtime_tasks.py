"""The app of the runtime-schedule process tests: one task that records which schedule
and tick it ran for, and a schedule in code beside the ones the tests add."""

from __future__ import annotations

from conveyor import App, TaskContext, every

app = App("runtime")


@app.periodic(every(seconds=1), name="code", catch_up="skip")
@app.task(bind=True)
def record(task: TaskContext) -> None:
    """Appends `schedule tick id` to ticks.log (short appends are atomic)."""
    with open("ticks.log", "a") as f:
        f.write(f"{task.headers['beat_schedule']} {task.headers['beat_tick']} {task.id}\n")
