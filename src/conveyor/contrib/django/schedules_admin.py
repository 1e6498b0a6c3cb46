"""The admin page of periodic schedules: what django-celery-beat gives Celery users.

It lists every schedule of the project's App (in code and added at run time) with its
next run, and adds, edits, pauses, resumes and removes the runtime ones, through
``app.schedules``: they live in the App's coordination store, where every beat reads
them, not in a table. `RuntimeSchedule` is an unmanaged model that only gives the page
its place in the admin index and its permissions (view, add, change: edit, pause and
resume; delete: remove).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from conveyor.contrib.django.models import RuntimeSchedule
from conveyor.errors import ConveyorError
from conveyor.lifecycle.scheduling import ScheduleInfo
from conveyor.schedules import Cron, Every, cron, parse_every, show_time

if TYPE_CHECKING:
    from conveyor.lifecycle.scheduling import Schedules


def _schedules() -> Schedules:
    """The project's App's, read when a page is asked (the App is made in ready())."""
    from conveyor.contrib.django.app import project_app

    return project_app().schedules


class ScheduleForm(forms.Form):
    """A runtime schedule as an operator types it: a cron expression or an interval."""

    name = forms.CharField(max_length=200)
    task = forms.CharField(max_length=255, help_text="The name of a registered task.")
    cron = forms.CharField(required=False, help_text='A cron expression: "0 3 * * *".')
    tz = forms.CharField(initial="UTC", help_text="The time zone of the cron expression.")
    every = forms.CharField(required=False, help_text="Or an interval: 30s, 5m, 1h30m, 2d.")
    args = forms.CharField(required=False, initial="[]", help_text="A JSON list.")
    kwargs = forms.CharField(required=False, initial="{}", help_text="A JSON object.")
    queue = forms.CharField(required=False, help_text="Empty: the task's own.")
    priority = forms.IntegerField(required=False, min_value=0, max_value=9)
    catch_up = forms.ChoiceField(choices=[("once", "once"), ("skip", "skip")], initial="once",
                                 help_text="Ticks missed while no beat ran: run the latest "
                                           "(once), or none (skip).")

    def clean_args(self) -> list[Any]:
        return cast(list[Any], self._json("args", list))

    def clean_kwargs(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._json("kwargs", dict))

    def _json(self, field: str, kind: type) -> Any:
        text = (self.cleaned_data.get(field) or "").strip() or ("[]" if kind is list else "{}")
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not JSON: {exc}") from None
        if not isinstance(value, kind):
            raise forms.ValidationError(f"Must be a JSON {'list' if kind is list else 'object'}.")
        return value

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        given = [f for f in ("cron", "every") if (data.get(f) or "").strip()]
        if len(given) != 1:
            raise forms.ValidationError("Give a cron expression or an interval (one of them).")
        try:
            data["schedule"] = (cron(data["cron"].strip(), (data.get("tz") or "UTC").strip())
                                if given == ["cron"] else parse_every(data["every"]))
        except ConveyorError as exc:
            self.add_error(given[0], str(exc))
        return data

    @classmethod
    def initial_of(cls, info: ScheduleInfo) -> dict[str, Any]:
        when: dict[str, Any] = {}
        if isinstance(info.schedule, Cron):
            when = {"cron": info.schedule.expression, "tz": info.schedule.tz}
        elif isinstance(info.schedule, Every):
            when = {"every": str(info.schedule.seconds)}
        return {"name": info.name, "task": info.task, "args": json.dumps(list(info.args)),
                "kwargs": json.dumps(dict(info.kwargs)), "queue": info.queue or "",
                "priority": info.priority, "catch_up": info.catch_up, **when}


class ScheduleAdmin(admin.ModelAdmin):
    """Every view is its own: the rows come from ``app.schedules``, not the database."""

    def get_urls(self) -> list[Any]:
        info = self.opts.app_label, self.opts.model_name
        own = [path("<path:object_id>/do/<str:op>/", self.admin_site.admin_view(self.op_view),
                    name="{}_{}_op".format(*info))]
        return own + cast(list[Any], super().get_urls())

    def _url(self, view: str, *args: str) -> str:
        return str(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{view}", args=args))

    def _render(self, request: Any, template: str, **context: Any) -> TemplateResponse:
        return TemplateResponse(request, f"conveyor/admin/{template}", {
            **self.admin_site.each_context(request), "opts": self.opts, **context})

    # -- the list ----------------------------------------------------------------------

    def changelist_view(self, request: Any, extra_context: Any = None) -> Any:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        try:
            infos = _schedules().list()
        except ConveyorError as exc:
            self.message_user(request, f"Can't read the schedules: {exc}", messages.ERROR)
            infos = []
        now = time.time()
        rows = [{
            "info": info, "quoted": quote(info.name), "when": str(info.schedule),
            "call": ", ".join([*map(json.dumps, info.args),
                               *[f"{k}={json.dumps(v)}" for k, v in info.kwargs.items()]]),
            "next": "-" if info.paused else show_time(info.next_run(now), info.schedule.zone,
                                                      now),
        } for info in infos]
        return self._render(request, "schedules.html", title="Periodic schedules", rows=rows,
                            can_add=self.has_add_permission(request),
                            can_change=self.has_change_permission(request),
                            can_delete=self.has_delete_permission(request),
                            add_url=self._url("add"))

    # -- adding and editing ------------------------------------------------------------

    def add_view(self, request: Any, form_url: str = "", extra_context: Any = None) -> Any:
        if not self.has_add_permission(request):
            raise PermissionDenied
        return self._form_view(request, None)

    def change_view(self, request: Any, object_id: str, form_url: str = "",
                    extra_context: Any = None) -> Any:
        if not self.has_change_permission(request):
            raise PermissionDenied
        name = unquote(object_id)
        try:
            info = _schedules().get(name)
        except ConveyorError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(self._url("changelist"))
        if info.source == "code":
            self.message_user(request, f"{name!r} is declared in code: change it there.",
                              messages.WARNING)
            return HttpResponseRedirect(self._url("changelist"))
        return self._form_view(request, info)

    def _form_view(self, request: Any, editing: ScheduleInfo | None) -> Any:
        initial = ScheduleForm.initial_of(editing) if editing else {}
        form = ScheduleForm(request.POST if request.method == "POST" else None,
                            initial=initial)
        if editing is not None:
            form.fields["name"].disabled = True
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                _schedules().add(
                    data["name"], data["task"].strip(), data["schedule"], data["args"],
                    data["kwargs"], queue=data["queue"].strip() or None,
                    priority=data["priority"], catch_up=data["catch_up"],
                    replace=editing is not None)
            except ConveyorError as exc:
                form.add_error(None, str(exc))
            else:
                verb = "changed" if editing else "added"
                self.message_user(request, f"Schedule {data['name']!r} {verb}: beats pick it "
                                  "up within seconds.", messages.SUCCESS)
                return HttpResponseRedirect(self._url("changelist"))
        title = f"Change schedule {editing.name!r}" if editing else "Add a periodic schedule"
        return self._render(request, "schedule_form.html", title=title, form=form,
                            changelist_url=self._url("changelist"))

    # -- pause, resume, remove -----------------------------------------------------------

    def op_view(self, request: Any, object_id: str, op: str) -> Any:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        allowed = {"pause": self.has_change_permission, "resume": self.has_change_permission,
                   "remove": self.has_delete_permission}
        if op not in allowed or not allowed[op](request):
            raise PermissionDenied
        name = unquote(object_id)
        schedules = _schedules()
        try:
            if op == "remove":
                schedules.remove(name)
                said = f"Schedule {name!r} removed."
            elif getattr(schedules, op)(name):
                said = f"Schedule {name!r} {op}d."
            else:
                state = "already paused" if op == "pause" else "not paused"
                said = f"Schedule {name!r} was {state}."
        except ConveyorError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, said, messages.SUCCESS)
        return HttpResponseRedirect(self._url("changelist"))


admin.site.register(RuntimeSchedule, ScheduleAdmin)
