"""Tables of ``results="django://"`` (see results.py for how they are written).

``TaskResult`` is one row per task id, in columns an admin can filter and a person can
read. The other three hold the coordination primitives workflows, unique tasks and beat
use (`claim`, `join`, `put`); they are plumbing, not registered in the admin. Every row
has an expiry: expired rows count as absent at once and are deleted in passing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import msgspec
from django.conf import settings
from django.db import models
from django.utils import timezone

from conveyor.contrib.django.calls import RUNNERS
from conveyor.message import Message
from conveyor.records import ErrorInfo, ResultRecord, State

STATES = [(state.value, state.value.title()) for state in State]
PENDING_TTL = 7 * 86400.0  # how long a queued task's row stays if no worker writes it
_encode = msgspec.json.Encoder().encode


def as_datetime(ts: float) -> datetime:
    """A Unix time as a DateTimeField holds it (naive local time without USE_TZ)."""
    moment = datetime.fromtimestamp(ts, UTC)
    if settings.USE_TZ:
        return moment
    naive: datetime = timezone.make_naive(moment, timezone.get_default_timezone())
    return naive


def as_timestamp(moment: datetime) -> float:
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    return moment.timestamp()


def task_path(message: Message) -> str:
    """The task a person would name: a ``django.tasks`` task's own path (its message names
    the runner, ``conveyor.django.run``, which runs every one of them), else the task."""
    if message.task in RUNNERS and message.args and isinstance(message.args[0], dict):
        path = message.args[0].get("task")
        if isinstance(path, str) and path:
            return path
    return message.task


class TaskResult(models.Model):
    """What is known about one task. A worker writes the whole outcome at each state
    change; a producer may write a PENDING row first (with the call's arguments) that
    the worker's writes then complete, never the other way round."""

    task_id = models.CharField("task id", max_length=255, primary_key=True)
    task_name = models.CharField("task", max_length=255)
    state = models.CharField(max_length=16, choices=STATES, default=State.PENDING.value)
    queue = models.CharField(max_length=255, blank=True, default="")
    args = models.JSONField(null=True, blank=True, help_text="Known if queued from here.")
    kwargs = models.JSONField(null=True, blank=True)
    result = models.TextField(null=True, blank=True, help_text="The value, as JSON.")
    error_type = models.CharField(max_length=255, blank=True, default="",
                                  help_text="Empty when there is no error.")
    error_message = models.TextField(blank=True, default="")
    traceback = models.TextField(null=True, blank=True)
    progress_current = models.FloatField(null=True, blank=True)
    progress_total = models.FloatField(null=True, blank=True)
    progress_label = models.TextField(null=True, blank=True)
    progress_meta = models.JSONField(null=True, blank=True,
                                     help_text="What the task attached to its progress.")
    attempt = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)
    # The record's own time stamp (Unix seconds), kept exactly as the worker wrote it:
    # `updated` is the same instant rounded to what a DateTimeField holds.
    updated_ts = models.FloatField(default=0.0)
    expires_at = models.DateTimeField()
    retry_at = models.DateTimeField("due at", null=True, blank=True)

    class Meta:
        verbose_name = "task result"
        indexes = [
            models.Index(fields=["-created"], name="conveyor_tr_created"),
            models.Index(fields=["-updated"], name="conveyor_tr_updated"),
            models.Index(fields=["state", "-created"], name="conveyor_tr_state"),
            models.Index(fields=["task_name", "-created"], name="conveyor_tr_task"),
            models.Index(fields=["expires_at"], name="conveyor_tr_expires"),
        ]

    def __str__(self) -> str:
        return f"{self.task_name or '?'} {self.task_id} ({self.state})"

    @classmethod
    def from_record(cls, record: ResultRecord, expires: float, now: float) -> TaskResult:
        error, progress = record.error, record.progress
        return cls(
            task_id=record.id, task_name=record.task[:255], state=record.state.value,
            result=None if record.result is None else _encode(record.result).decode(),
            error_type=error.type if error else "", error_message=error.message if error else "",
            traceback=error.traceback if error else None,
            progress_current=progress[0] if progress else None,
            progress_total=progress[1] if progress else None,
            progress_label=progress[2] if progress else None,
            progress_meta=record.progress_meta,
            attempt=record.attempt, created=as_datetime(now),
            updated=as_datetime(record.updated or now), updated_ts=record.updated,
            expires_at=as_datetime(expires),
            retry_at=None if record.retry_at is None else as_datetime(record.retry_at))

    @classmethod
    def pending(cls, message: Message, now: float | None = None) -> TaskResult:
        """The row of a task just queued: its call, and its eta as "due at"."""
        created = message.created or now or time.time()
        return cls(
            task_id=message.id, task_name=task_path(message)[:255], state=State.PENDING.value,
            queue=message.queue[:255], attempt=0,
            args=msgspec.json.decode(_encode(message.args)),  # plain JSON (dates as text)
            kwargs=msgspec.json.decode(_encode(message.kwargs)),
            created=as_datetime(created), updated=as_datetime(created), updated_ts=created,
            expires_at=as_datetime(max(created, message.eta or 0.0) + PENDING_TTL),
            retry_at=None if message.eta is None else as_datetime(message.eta))

    def to_record(self) -> ResultRecord:
        error = None
        if self.error_type:
            error = ErrorInfo(self.error_type, self.error_message, self.traceback)
        progress = None
        if self.progress_current is not None:
            progress = (_count(self.progress_current) or 0, _count(self.progress_total),
                        self.progress_label)
        return ResultRecord(
            id=self.task_id, state=State(self.state), task=self.task_name,
            result=None if self.result is None else msgspec.json.decode(self.result),
            error=error, progress=progress, progress_meta=self.progress_meta,
            attempt=self.attempt, updated=self.updated_ts,
            retry_at=None if self.retry_at is None else as_timestamp(self.retry_at))


class Claim(models.Model):
    """`claim(key, owner, ttl)`: who holds `key`, until when."""

    key = models.CharField(max_length=255, primary_key=True)
    owner = models.CharField(max_length=255)
    expires_at = models.DateTimeField(db_index=True)


class JoinedSet(models.Model):
    """The head of a `join` set: its size, and one expiry for the whole set, renewed by
    every join. Joins lock this row, so concurrent joins of one key take turns."""

    key = models.CharField(max_length=255, primary_key=True)
    size = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)


class SetMember(models.Model):
    """One member of a `join` set, at most once per set; it lives as long as its head."""

    key = models.CharField(max_length=255)
    member = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "member"], name="conveyor_setmember_unique"),
        ]


class Value(models.Model):
    """`put(key, value, ttl)`: a small value, until its expiry."""

    key = models.CharField(max_length=255, primary_key=True)
    value = models.TextField()
    expires_at = models.DateTimeField(db_index=True)


def _count(value: float | None) -> int | float | None:
    """A FloatField keeps no int: a whole number reads back as one (3 of 40 rows)."""
    return int(value) if value is not None and float(value).is_integer() else value


class RuntimeSchedule(models.Model):
    """What puts runtime schedules (``app.schedules``) in the admin: no table, since they
    live in the App's coordination store, where every beat reads them. It exists for its
    admin page and its permissions: "view" lists them, "add" adds, "change" edits,
    pauses and resumes, "delete" removes (schedules_admin.py)."""

    name = models.CharField(max_length=200, primary_key=True)

    class Meta:
        managed = False
        verbose_name = "periodic schedule"
        default_permissions = ("add", "change", "delete", "view")
