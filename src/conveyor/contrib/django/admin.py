"""The admin of ``results="django://"``: task results, filterable by state, task and date,
with their arguments, value, error and traceback, and two actions: retry failed tasks
(their dead letters go back on the queue) and revoke tasks that haven't started.

Always registered: a project that keeps results elsewhere sees an empty list, and the
page says so (and how to change it). Rows are written by workers, so nobody adds or edits
them here; deleting one forgets its result.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.utils import timezone
from django.utils.html import format_html

from conveyor.config import mask_url
from conveyor.contrib.django.database import database_alias
from conveyor.contrib.django.models import TaskResult
from conveyor.errors import ConveyorError
from conveyor.records import State

COLOURS = {"SUCCESS": "#2e7d32", "FAILURE": "#c62828", "REVOKED": "#6d4c41",
           "STARTED": "#1565c0", "RETRY": "#ef6c00", "SCHEDULED": "#6a1b9a",
           "PENDING": "#616161"}
WAITING = (State.PENDING.value, State.SCHEDULED.value, State.RETRY.value)
SHOWN_IDS = 10  # ids named in a message, at most


def results_alias() -> str:
    """The database the project's results live in (``django://ALIAS``), else default."""
    from conveyor.contrib.django.app import project_app

    try:
        url = project_app().settings.effective_results_url
    except ConveyorError:
        return "default"
    return database_alias(url) if url.startswith("django:") else "default"


def _ids(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:SHOWN_IDS])
    return shown + (f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")


def _pre(text: str | None) -> str:
    if text is None or text == "":
        return "-"
    return str(format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', text))


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


class TaskResultAdmin(admin.ModelAdmin):
    list_display = ("task_id", "task_name", "state_badge", "attempt", "queue", "created",
                    "updated")
    list_filter = ("state", "task_name", "created", "updated")
    search_fields = ("^task_id", "task_name")
    search_help_text = "A task id (or its beginning), or part of a task name."
    ordering = ("-created",)
    list_per_page = 50
    show_full_result_count = False  # a COUNT(*) of a big table on every page is slow
    actions = ("retry_failed", "revoke_waiting", "terminate_running")
    fieldsets = (
        (None, {"fields": ("task_id", "task_name", "state_badge", "queue", "attempt",
                           "progress")}),
        ("Call", {"fields": ("call_args", "call_kwargs")}),
        ("Outcome", {"fields": ("value", "error", "traceback_text")}),
        ("Times", {"fields": ("created", "updated", "retry_at", "expires_at")}),
    )
    readonly_fields = ("state_badge", "progress", "call_args", "call_kwargs", "value",
                       "error", "traceback_text")

    def get_queryset(self, request: Any) -> Any:
        """Rows of the results database that haven't expired."""
        return super().get_queryset(request).using(results_alias()).filter(
            expires_at__gt=timezone.now())

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False  # workers write the rows; the detail page is read-only

    def has_operate_permission(self, request: Any) -> bool:
        """Retrying and revoking need the "change task result" permission."""
        codename = get_permission_codename("change", self.opts)
        return bool(request.user.has_perm(f"{self.opts.app_label}.{codename}"))

    def changelist_view(self, request: Any, extra_context: Any = None) -> Any:
        """The list, with a warning when results are kept elsewhere: else an empty page
        looks like no task ever ran."""
        from conveyor.contrib.django.app import project_app

        try:
            url = project_app().settings.effective_results_url
        except ConveyorError:
            url = "django:"
        if not url.startswith("django:"):
            self.message_user(request, f"Results are kept in {mask_url(url)}, not in this "
                              "database, so this list stays empty. To see them here, set "
                              "CONVEYOR = {..., \"RESULTS_URL\": \"django://\"} in settings "
                              "(or $CONVEYOR_RESULTS_URL=django://).", messages.WARNING)
        return super().changelist_view(request, extra_context)

    # -- columns and fields ----------------------------------------------------------

    def state_badge(self, row: TaskResult) -> str:
        return str(format_html('<b style="color: {}">{}</b>',
                               COLOURS.get(row.state, "inherit"), row.state))

    state_badge.short_description = "state"  # type: ignore[attr-defined]
    state_badge.admin_order_field = "state"  # type: ignore[attr-defined]

    def progress(self, row: TaskResult) -> str:
        if row.progress_current is None:
            return "-"
        shown = f"{row.progress_current:g}"
        if row.progress_total:
            shown += f" / {row.progress_total:g} ({row.progress_current / row.progress_total:.0%})"
        return shown + (f" {row.progress_label}" if row.progress_label else "")

    def call_args(self, row: TaskResult) -> str:
        return _pre(None if row.args is None else _json(row.args))

    call_args.short_description = "args"  # type: ignore[attr-defined]

    def call_kwargs(self, row: TaskResult) -> str:
        return _pre(None if row.kwargs is None else _json(row.kwargs))

    call_kwargs.short_description = "kwargs"  # type: ignore[attr-defined]

    def value(self, row: TaskResult) -> str:
        if row.result is None:
            return "-"
        try:
            return _pre(_json(json.loads(row.result)))
        except ValueError:
            return _pre(row.result)

    value.short_description = "result"  # type: ignore[attr-defined]

    def error(self, row: TaskResult) -> str:
        return f"{row.error_type}: {row.error_message}" if row.error_type else "-"

    def traceback_text(self, row: TaskResult) -> str:
        return _pre(row.traceback)

    traceback_text.short_description = "traceback"  # type: ignore[attr-defined]

    # -- actions ---------------------------------------------------------------------

    def retry_failed(self, request: Any, queryset: Any) -> None:
        """Re-queue the dead letters of the selected FAILURE tasks (``App.retry_dead``:
        their rows show PENDING until a worker takes them)."""
        from conveyor.contrib.django.app import project_app

        failed = set(queryset.filter(state=State.FAILURE.value).values_list(
            "task_id", flat=True))
        if not failed:
            self.message_user(request, "None of the selected tasks failed.", messages.WARNING)
            return
        app = project_app()
        try:
            dead = {d.id for d in app.broker.dead_letters(limit=10**9)} & failed
            requeued = app.retry_dead(sorted(dead)) if dead else 0
        except ConveyorError as exc:
            self.message_user(request, f"Nothing was retried: {exc}", messages.ERROR)
            return
        if requeued:
            self.message_user(request, f"Re-queued {requeued} task(s).", messages.SUCCESS)
        missing = sorted(failed - dead)
        if missing:
            self.message_user(request, f"{len(missing)} task(s) had no dead letter left "
                              f"(already retried or purged): {_ids(missing)}.",
                              messages.WARNING)

    retry_failed.short_description = "Retry failed tasks"  # type: ignore[attr-defined]
    retry_failed.allowed_permissions = ("operate",)  # type: ignore[attr-defined]

    def revoke_waiting(self, request: Any, queryset: Any) -> None:
        """Revoke the selected tasks that haven't started (``App.revoke``): they never
        run and end REVOKED."""
        from conveyor.contrib.django.app import project_app

        waiting = list(queryset.filter(state__in=WAITING).values_list("task_id", flat=True))
        if not waiting:
            self.message_user(request, "None of the selected tasks is waiting to run.",
                              messages.WARNING)
            return
        try:
            revoked = project_app().revoke(waiting)
        except ConveyorError as exc:
            self.message_user(request, f"Nothing was revoked: {exc}", messages.ERROR)
            return
        if revoked:
            self.message_user(request, f"Revoked {len(revoked)} task(s).", messages.SUCCESS)
        late = sorted(set(waiting) - set(revoked))
        if late:
            self.message_user(request, f"{len(late)} task(s) had already started or left "
                              f"the queue: {_ids(late)}.", messages.WARNING)

    revoke_waiting.short_description = "Revoke pending tasks"  # type: ignore[attr-defined]
    revoke_waiting.allowed_permissions = ("operate",)  # type: ignore[attr-defined]

    def terminate_running(self, request: Any, queryset: Any) -> None:
        """Stop the selected running tasks (``App.revoke(..., terminate=True)``): within
        seconds they end REVOKED on whichever worker runs them, and never run again."""
        from conveyor.contrib.django.app import project_app

        running = list(queryset.filter(state=State.STARTED.value)
                       .values_list("task_id", flat=True))
        if not running:
            self.message_user(request, "None of the selected tasks is running.",
                              messages.WARNING)
            return
        try:
            asked = project_app().revoke(running, terminate=True)
        except ConveyorError as exc:
            self.message_user(request, f"Nothing was stopped: {exc}", messages.ERROR)
            return
        self.message_user(request, f"Asked {len(asked)} running task(s) to stop: they end "
                          "REVOKED within seconds.", messages.SUCCESS)

    terminate_running.short_description = "Stop running tasks"  # type: ignore[attr-defined]
    terminate_running.allowed_permissions = ("operate",)  # type: ignore[attr-defined]


admin.site.register(TaskResult, TaskResultAdmin)

from conveyor.contrib.django import schedules_admin  # noqa: E402,F401 - registers its page
