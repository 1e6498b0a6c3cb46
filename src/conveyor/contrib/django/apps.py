"""The installed app: loads the project's App, configures it, finds its tasks."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules

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
        _runner.install(self.app)  # workers run django.tasks too (Django 6+)
        autodiscover_modules("tasks")
