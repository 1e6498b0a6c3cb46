"""The beat: publishes each tick of each periodic task once, cluster-wide (scheduler.py).
Schedules themselves (`cron`, `every`) are in `conveyor.schedules`, periodic entries in
`conveyor.periodic`: a worker that only imports them never loads this package."""

from conveyor.beat.scheduler import DEFAULT_LEASE, Beat

__all__ = ["DEFAULT_LEASE", "Beat"]
