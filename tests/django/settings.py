"""Django settings for the integration tests (pytest-django and worker processes).

The database is a SQLite file, not pytest-django's in-memory default, so that worker
processes started by the tests see what the tests commit. Its path travels in
$CONVEYOR_DJANGO_TEST_DB from the test process to the workers it starts; the broker
likewise in $CONVEYOR_DJANGO_TEST_BROKER (a SQLite file beside the database by default).
"""

from __future__ import annotations

import os
import tempfile

DB_PATH = os.environ.setdefault(
    "CONVEYOR_DJANGO_TEST_DB",
    os.path.join(tempfile.mkdtemp(prefix="conveyor-django-"), "db.sqlite3"))
BROKER_URL = os.environ.setdefault(
    "CONVEYOR_DJANGO_TEST_BROKER",
    "sqlite:///" + os.path.join(os.path.dirname(DB_PATH), "conveyor.db"))

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.django.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "conveyor.contrib.django",
    "tests.django.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DB_PATH,
        "TEST": {"NAME": DB_PATH},
    }
}
CONVEYOR = {
    "APP": "tests.django.proj_conveyor:app",
    "BROKER_URL": BROKER_URL,
}
TASKS = {
    "default": {
        "BACKEND": "conveyor.contrib.django.backend.ConveyorBackend",
        "QUEUES": ["default", "emails"],
    }
}
