"""The installed app: loads the project's App, configures it, finds its tasks."""

from __future__ import annotations

import importlib.util

from django.apps import AppConfig
from django.conf import settings
from django.utils.module_loading import autodiscover_modules, import_string

from conveyor.contrib.django import _runner, config
from conveyor.contrib.django.app import DjangoApp, load_project_app


class ConveyorConfig(AppConfig):
    name = "conveyor.contrib.django"
    label = "conveyor"
    verbose_name = "Conveyor"
    default_auto_field = "django.db.models.BigAutoField"

    app: DjangoApp

    def ready(self) -> None:
        """Settings errors surface at start-up (``manage.py check``, ``runserver``), not
        at the first ``delay()``; every installed app's ``tasks.py`` registers."""
        self.app = load_project_app(config.from_settings().app_path)
        self.app.settings  # noqa: B018 - reads and checks settings.CONVEYOR now
        install_runner(self.app)  # workers run django.tasks too (Django 6+)
        autodiscover_modules("tasks")


def install_runner(app: DjangoApp) -> None:
    """Register the ``django.tasks`` runner on the project's App and on every App a
    `ConveyorBackend` in ``settings.TASKS`` names (``OPTIONS["APP"]``), so their workers
    run Django tasks. Nothing on Django 5.2, which has no ``django.tasks``."""
    if importlib.util.find_spec("django.tasks") is None:
        return
    from conveyor.contrib.django.backend import ConveyorBackend, load_app

    _runner.register(app)
    for params in getattr(settings, "TASKS", {}).values():
        path = params.get("BACKEND", "")
        try:
            cls = import_string(path)
        except ImportError:
            continue  # Django reports a bad BACKEND itself, naming it
        app_path = (params.get("OPTIONS") or {}).get("APP")
        if isinstance(cls, type) and issubclass(cls, ConveyorBackend) and app_path:
            _runner.register(load_app(app_path))
