"""Django settings for the integration tests (pytest-django and worker processes).

The database is a SQLite file, not pytest-django's in-memory default, so that worker
processes started by the tests see what the tests commit. Its path travels in
$CONVEYOR_DJANGO_TEST_DB from the test process to the workers it starts; the broker is a
SQLite file beside the database unless $CONVEYOR_DJANGO_TEST_BROKER names another.
"""

from __future__ import annotations

import os
import tempfile

DB_PATH = os.environ.setdefault(
    "CONVEYOR_DJANGO_TEST_DB",
    os.path.join(tempfile.mkdtemp(prefix="conveyor-django-"), "db.sqlite3"))
# Under pytest-xdist each test process gets its own test database, pytest-django naming it
# DB_PATH + "_gw0" and so on; the workers a test starts inherit $PYTEST_XDIST_WORKER, so
# they open that one, and a broker file of their test process's own.
_XDIST = os.environ.get("PYTEST_XDIST_WORKER")
_DB_NAME = f"{DB_PATH}_{_XDIST}" if _XDIST else DB_PATH
BROKER_URL = os.environ.get("CONVEYOR_DJANGO_TEST_BROKER") or "sqlite:///" + os.path.join(
    os.path.dirname(DB_PATH), f"conveyor.{_XDIST}.db" if _XDIST else "conveyor.db")

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
        "NAME": _DB_NAME,
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
