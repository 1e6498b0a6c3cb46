"""Ending and re-running tasks from outside a worker: `revoke` (tasks that haven't
started never run; with `terminate`, running ones are stopped too: lifecycle/stopping.py)
and `retry_dead` (dead letters run again as fresh tasks).

`App.revoke` and `App.retry_dead` are these, handed the App.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from conveyor.host import Runtime
from conveyor.lifecycle import stopping
from conveyor.lifecycle.followups import Followups
from conveyor.message import Envelope, Message, UnreadableMessage, now, seal, unseal
from conveyor.records import ErrorInfo, ResultRecord, State

REVOKED = "revoked before it started"


def revoke(app: Runtime, task_ids: str | Sequence[str], terminate: bool = False) -> list[str]:
    """See `App.revoke`."""
    ids = [task_ids] if isinstance(task_ids, str) else task_ids
    if not isinstance(ids, Sequence) or not all(isinstance(i, str) for i in ids):
        raise TypeError(f"revoke() takes a task id or a list of task ids (strings), "
                        f"got {task_ids!r}")
    if not all(ids):
        raise ValueError(f"revoke() got an empty task id in {task_ids!r}")
    ids = list(dict.fromkeys(ids))
    removed = {r.id: r for r in reversed(app.broker.revoke(ids))} if ids else {}
    running = _terminate(app, [i for i in ids if i not in removed]) if terminate else set()
    if not removed:
        return [task_id for task_id in ids if task_id in running]
    ttl, when = app.settings.result_ttl, now()
    records: list[tuple[ResultRecord, float]] = []
    ended: list[tuple[Message, ErrorInfo]] = []
    envelopes: list[Envelope] = []  # to put back if the results can't be written
    for r in removed.values():
        try:
            message: Message | None = unseal(r.body, app.settings.signing_keys)
        except UnreadableMessage:  # unreadable or forged: it would never have run anyway
            message = None
        records.append((ResultRecord(id=r.id, state=State.REVOKED, result=REVOKED,
                                     task=message.task if message else "",
                                     attempt=message.attempt if message else 0,
                                     updated=when), ttl))
        if message is not None:
            ended.append((message, ErrorInfo("TaskRevoked", REVOKED)))
        envelopes.append(Envelope(r.id, r.queue, message.priority if message else 0,
                                  message.eta if message else None, r.body))
    try:
        app.results.store(records)
    except BaseException:
        app.broker.publish(envelopes)
        raise
    if any(m.then or m.chord or m.link_error or m.unique for m, _ in ended):
        Followups(app).revoked(ended)
    for message, _ in ended:
        app.middleware.notify("on_revoked", message, REVOKED)
    return [task_id for task_id in ids if task_id in removed or task_id in running]


def _terminate(app: Runtime, ids: list[str]) -> set[str]:
    """Ask workers to stop these tasks (those not waiting any more); return the ones whose
    record says they run. Finished ones are left alone; those with no record yet (reserved
    ahead by a worker, or unknown) get the request too, and so never start."""
    if not ids:
        return set()
    records = app.results.get_many(ids)
    asked = [i for i, record in zip(ids, records, strict=True)
             if record is None or not record.state.is_final]
    stopping.request_termination(app.coordination, asked)
    return {i for i, record in zip(ids, records, strict=True)
            if record is not None and not record.state.is_final}


def retry_dead(app: Runtime, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
    """See `App.retry_dead`."""
    letters = [d for d in app.broker.dead_letters(queue, limit=10**9)
               if ids is None or d.id in ids]
    envelopes = []
    messages = []
    settings = app.settings
    for letter in letters:
        try:
            old = unseal(letter.body, settings.signing_keys)
        except UnreadableMessage:
            envelopes.append(Envelope(letter.id, letter.queue, 0, None, letter.body))
            continue
        # Attempt 1, due now, never expiring; what follows it (a chain's next steps,
        # its chord, error handlers) is kept, so a chain re-run from here continues.
        fresh = msgspec.structs.replace(old, attempt=1, eta=None, expires=None, created=now())
        body = seal(fresh, settings.max_message_size, settings.signing_keys)
        envelopes.append(Envelope(fresh.id, fresh.queue, fresh.priority, None, body))
        messages.append(fresh)
    if envelopes:
        # The old FAILURE goes first: left in place, get() would return it at once,
        # and forgetting it after publishing could delete the new run's result.
        app.results.forget([letter.id for letter in letters])
        app.send(messages, envelopes)
        app.broker.purge_dead(ids=[letter.id for letter in letters])
    return len(envelopes)
