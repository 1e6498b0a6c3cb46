"""Why a task may not have finished, for the `TimeoutError` of `AsyncResult.get()`.

The commonest first-hour mistake is a task that silently goes nowhere: the producer
writes to another store than the worker reads (a relative ``sqlite:///conveyor.db`` opened
from another directory), or sends to a queue no worker consumes. A bare "did not finish"
hides both; one read of the live workers tells them apart.
"""

from __future__ import annotations

from conveyor.backends import describe
from conveyor.errors import ConveyorError
from conveyor.host import Runtime


def unfinished(app: Runtime, queue: str | None) -> str:
    """A clause for the TimeoutError: which store, which queue (when known), and which live
    workers consume what, or that none does. One read of the live workers; "" if even
    that fails (the timeout is the error, not this)."""
    try:
        workers = app.broker.workers()
    except (ConveyorError, OSError):
        return ""
    store = describe(app.settings.broker_url)
    where = f"queue {queue!r} on {store}" if queue else store
    if not workers:
        return (f": no worker is alive on {store}; start one there (conveyor worker -A ... "
                f"-Q {queue or 'default'}), from a directory where the App opens this store")
    taken = sorted({q for worker in workers for q in worker.queues})
    alive = f"{len(workers)} live worker process(es) take {', '.join(taken)}"
    if queue is None:
        return f" ({store}: {alive})"
    if queue not in taken:
        return (f": it went to {where}, which no live worker consumes ({alive}); start "
                f"one with -Q {queue}")
    return f" (it went to {where}; {alive}: it waits its turn or is still running)"
