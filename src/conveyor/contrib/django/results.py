"""Results in the Django database (``results="django://"``), read and written with the ORM.

Layout (models.py): conveyor_taskresult, one row per task in columns the admin filters
on, with the call's queue and arguments when this project queued it (`record_pending`).

- `store` is one upsert of what a worker knows, so the queue, arguments and created
  time a producer wrote survive; `record_pending` inserts, leaving existing rows alone
  (inside a transaction, at its commit).
- `wait()` polls, every 50 ms for the first second then every 100 ms: no notifications.
Connections, threads and expiry: database.py.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from django.db import transaction

from conveyor.backends.waiting import wait_until_final
from conveyor.contrib.django.calls import RUNNERS
from conveyor.contrib.django.database import CHUNK, OrmStore, fits, in_event_loop, logger
from conveyor.errors import BrokerUnavailable
from conveyor.message import Message
from conveyor.records import ResultRecord

POLL_FIRST, POLL_LATER, POLL_FIRST_FOR = 0.05, 0.1, 1.0
# What a worker's record says about a task; a PENDING row's queue, args, kwargs and
# created time are not in it, so an upsert leaves them as they are.
RECORD_FIELDS = ["task_name", "state", "result", "error_type", "error_message", "traceback",
                 "progress_current", "progress_total", "progress_label", "attempt",
                 "updated", "updated_ts", "expires_at", "retry_at"]
RUN_FIELDS = [field for field in RECORD_FIELDS if field != "task_name"]


class DjangoResultStore(OrmStore):
    """The ResultStore protocol on the Django ORM. See the module docstring for how."""

    what = "result store"

    def __init__(self, url: str = "django://") -> None:
        super().__init__(url)
        self.rows = self.models.TaskResult.objects.db_manager(self.alias)

    def _purge(self) -> None:
        self.rows.filter(expires_at__lte=self._dt(time.time())).delete()

    def store(self, records: Sequence[tuple[ResultRecord, float]]) -> None:
        if not records:
            return
        now = time.time()
        latest = {r.id: (r, ttl) for r, ttl in records if fits(r.id)}  # the last one wins
        rows = [self.rows.model.from_record(r, now + ttl, now) for r, ttl in latest.values()
                if r.task not in RUNNERS]
        # A django.tasks task's record names the runner; its row keeps the task's own
        # path, written when it was queued (TaskResult.pending).
        runs = [self.rows.model.from_record(r, now + ttl, now) for r, ttl in latest.values()
                if r.task in RUNNERS]
        for batch, fields in ((rows, RECORD_FIELDS), (runs, RUN_FIELDS)):
            if batch:
                self._upsert(batch, fields)

    def _upsert(self, rows: list[Any], fields: list[str]) -> None:
        self._run(lambda: self.rows.bulk_create(
            rows, update_conflicts=True, unique_fields=["task_id"] if self.unique_on else None,
            update_fields=fields))

    def get(self, task_id: str) -> ResultRecord | None:
        """The record, or None. A row `record_pending` wrote comes back as PENDING."""
        row = self._run(lambda: self.rows.filter(
            task_id=task_id, expires_at__gt=self._dt(time.time())).first())
        return None if row is None else row.to_record()

    def get_many(self, task_ids: Sequence[str]) -> list[ResultRecord | None]:
        def select() -> dict[str, Any]:
            now = self._dt(time.time())
            return {row.task_id: row for start in range(0, len(task_ids), CHUNK)
                    for row in self.rows.filter(task_id__in=task_ids[start:start + CHUNK],
                                                expires_at__gt=now)}

        found = self._run(select) if task_ids else {}
        return [found[i].to_record() if i in found else None for i in task_ids]

    def wait(self, task_id: str, timeout: float | None) -> ResultRecord | None:
        """Poll until the record is final or `timeout` passes (see the module docstring)."""
        start = time.monotonic()

        def sleep(most: float) -> None:
            early = time.monotonic() - start < POLL_FIRST_FOR
            time.sleep(min(POLL_FIRST if early else POLL_LATER, most))

        return wait_until_final(lambda: self.get(task_id), sleep, timeout)

    def forget(self, task_ids: Sequence[str]) -> None:
        def delete() -> None:
            for start in range(0, len(task_ids), CHUNK):
                self.rows.filter(task_id__in=task_ids[start:start + CHUNK]).delete()

        if task_ids:
            self._run(delete)

    def record_pending(self, messages: Sequence[Message]) -> None:
        """A PENDING row per just-published message (its call; an eta as "due at") so the
        admin lists queued tasks; a row already there (a worker was quicker) is kept. In a
        transaction, written at its commit. Failures are logged: the tasks are queued."""
        rows = [self.rows.model.pending(m, time.time()) for m in messages if fits(m.id)]
        if not rows:
            return

        def insert() -> None:
            try:
                self._run(lambda: self.rows.bulk_create(rows, ignore_conflicts=True))
            except BrokerUnavailable as exc:
                logger.warning("can't record %d queued task(s) in the database: %s",
                               len(rows), exc)

        if self._in_transaction() and not in_event_loop():
            transaction.on_commit(insert, using=self.alias)
        else:
            insert()
