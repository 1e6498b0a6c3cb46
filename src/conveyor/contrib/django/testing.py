"""Test helpers for projects using the ``django.tasks`` backend: run what is queued in the
test's own process, and start each test from empty queues.

    from django.tasks import default_task_backend
    from conveyor.contrib.django.testing import reset, run_worker

    def test_welcome_mail(db):
        reset(default_task_backend)
        result = send_welcome.enqueue(user_id=7)
        run_worker(default_task_backend)
        result.refresh()
        assert result.return_value == "sent"

`run_worker` runs tasks through the real code path (the message, the runner, Conveyor's
executor, the result store) on the calling thread, one at a time, so a task sees the
test's database transaction, as Django's test client lets a view see it.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from asgiref.sync import async_to_sync

from conveyor.app import App
from conveyor.broker import Delivery
from conveyor.contrib.django.backend import ConveyorBackend
from conveyor.contrib.django.calls import RUNNERS, reset_key
from conveyor.lifecycle.completion import Completion
from conveyor.worker.consumer import Consumer
from conveyor.worker.executor import Prepared

__all__ = ["reset", "run_worker"]

BATCH = 1000  # messages reserved per look at the queues


def run_worker(backend: Any = None) -> int:
    """Run every ready task of the backend's queues (``QUEUES``; every queue the broker
    knows when it is empty) in this process, and what they enqueue, until none is ready;
    return how many ran. Order: higher priority first (Django's own -100..100), then the
    earlier due (``run_after``, else when enqueued), then the earlier enqueued. Tasks due
    later, retries waiting for their backoff included, are left for a later call.

    Call it from synchronous code (in an async test: ``await sync_to_async(run_worker)()``).
    `backend` is a backend, its alias, or None for the default one."""
    backend = _conveyor_backend(backend)
    return _InProcessWorker(backend.app, _queues(backend)).run()


def reset(backend: Any = None) -> None:
    """Empty the backend's queues (ready, scheduled and dead tasks) and forget its results:
    from now on `get_result` raises TaskResultDoesNotExist for tasks enqueued before.
    Tasks running in a worker process at the time still finish."""
    backend = _conveyor_backend(backend)
    app = backend.app
    for queue in _queues(backend):
        app.broker.purge(queue)
        app.broker.purge_dead(queue)
    app.coordination.put(reset_key(backend.alias), repr(time.time()), 2 * app.settings.result_ttl)


def _conveyor_backend(backend: Any) -> ConveyorBackend:
    from django.tasks import task_backends

    if backend is None:
        backend = "default"
    if not isinstance(backend, str):
        backend = backend.alias  # also `default_task_backend`, a proxy
    found = task_backends[backend]
    if not isinstance(found, ConveyorBackend):
        raise TypeError(f"settings.TASKS[{backend!r}] is {type(found).__name__}, not a "
                        "ConveyorBackend")
    return found


def _queues(backend: ConveyorBackend) -> list[str]:
    return sorted(backend.queues) or sorted(backend.app.broker.stats())


Item = Prepared | Completion


class _InProcessWorker:
    """Conveyor's consumer and executor, driven by hand: reserve what is ready, run the
    first in order, write its result and ack, look again (a task may have enqueued one
    that goes first)."""

    def __init__(self, app: App, queues: list[str]) -> None:
        self.app = app
        self.queues = queues
        self.consumer = Consumer(app, queues, threads=1)
        self.pending: dict[str, tuple[tuple[Any, ...], Item]] = {}  # by broker entry
        self.seq = itertools.count()
        self.renewed = time.monotonic()

    def run(self) -> int:
        ran = 0
        try:
            while True:
                self.reserve()
                if not self.pending:
                    return ran
                entry = min(self.pending, key=lambda r: self.pending[r][0])
                self.execute(self.pending.pop(entry)[1])
                ran += 1
        finally:
            for _, item in self.pending.values():
                self.consumer.in_flight[item.delivery.key] = item.delivery
            self.consumer.hand_back()  # what was reserved but not run goes back, ready

    def reserve(self) -> None:
        broker = self.app.broker
        if self.pending and time.monotonic() - self.renewed > broker.lease_seconds / 3:
            broker.extend([item.delivery for _, item in self.pending.values()])
            self.renewed = time.monotonic()
        for delivery in broker.reserve(self.queues, BATCH, 0.0):
            old = self.pending.get(delivery.entry)
            item = self.consumer.executor.prepare(delivery)
            # A lease that ran out while tasks ran: the newer hand-out replaces the old one.
            key = old[0] if old else (*_order(item, delivery), next(self.seq))
            self.pending[delivery.entry] = (key, item)

    def execute(self, item: Item) -> None:
        consumer = self.consumer
        consumer.in_flight[item.delivery.key] = item.delivery
        if isinstance(item, Completion):
            completion = item
        elif item.task.is_async:
            completion = async_to_sync(consumer.executor.run_async)(item)
        else:
            completion = consumer.executor.run_sync(item)
        consumer.post_completion(completion)
        consumer.flush()


def _order(item: Item, delivery: Delivery) -> tuple[float, float, float, float]:
    """Priority (Conveyor's band, then Django's exact priority), due time, enqueue time."""
    if not isinstance(item, Prepared):
        return (-delivery.priority, 0.0, 0.0, 0.0)
    message = item.message
    exact = 0
    if message.task in RUNNERS and message.args and isinstance(message.args[0], dict):
        exact = int(message.args[0].get("priority", 0))
    return (-message.priority, -exact, message.eta or message.created, message.created)
