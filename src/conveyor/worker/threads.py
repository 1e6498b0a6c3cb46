"""Worker threads that do their job or take their process down with them.

A thread that died quietly would leave a worker that looks alive (its heartbeat renews
the leases of tasks nothing will finish) and runs nothing. So every thread of a worker
process runs through `start`: if its target ever raises, the error is logged with its
traceback and `on_death` is called; the worker then exits (supervised: its supervisor
replaces it, and the leases of what it held run out, so other workers take it) or, run
in-process, stops and raises.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger("conveyor.worker")

EXIT_THREAD_DIED = 71  # a worker process stopped because one of its threads died


def start(name: str, target: Callable[[], object],
          on_death: Callable[[str], None]) -> threading.Thread:
    """Start a daemon thread running `target`; `on_death(name)` if it raises."""

    def run() -> None:
        try:
            target()
        except BaseException:
            logger.critical("worker thread %s died: stopping this worker process", name,
                            exc_info=True)
            on_death(name)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
