"""Periodic tasks: `cron()` and `every()` schedules (schedules.py), the entries the App
holds (entries.py), and the beat that publishes each tick once cluster-wide
(scheduler.py, imported only by the processes that run a beat)."""

from conveyor.beat.schedules import Cron, Every, Schedule, cron, every

__all__ = ["Cron", "Every", "Schedule", "cron", "every"]
