"""``conveyor beat``: run the periodic scheduler until SIGINT/SIGTERM.

Safe to run more than one: they share a lock with a lease in the App's result store, and
only its holder publishes. A stopped beat frees the lock, so another takes over at once.
"""

from __future__ import annotations

import signal
from types import FrameType

import click

from conveyor.app import App
from conveyor.beat.scheduler import DEFAULT_LEASE, Beat
from conveyor.cli.options import with_app
from conveyor.config import mask_url
from conveyor.worker.supervisor import configure_logging


@click.command()
@with_app
@click.option("--lease", type=click.FloatRange(min=0.1), default=DEFAULT_LEASE,
              show_default=True,
              help="Seconds the lock is held without renewal: how long a dead beat's "
                   "successor waits before taking over.")
@click.option("-l", "--loglevel", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
def beat(app: App, lease: float, loglevel: str) -> None:
    """Publish periodic tasks (@app.periodic, beat_schedule=) once per tick, cluster-wide."""
    configure_logging(loglevel, "beat")
    scheduler = Beat(app, lease=lease)

    def stop(signum: int, frame: FrameType | None) -> None:
        scheduler.stop()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    click.echo(f"conveyor beat {scheduler.id} for {app.name}: "
               f"{mask_url(app.settings.effective_results_url)}, "
               f"{len(scheduler.entries)} periodic task(s), lease {lease:g} s", err=True)
    scheduler.run()
