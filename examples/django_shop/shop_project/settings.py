"""Settings of the example shop.

Everything the shop stores lives under one folder, DATA_DIR (``var/`` beside manage.py
unless $DATA_DIR says otherwise): the shop's database, the queue, exports and the outbox.
The environment variables read here are listed in README.md.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("DATA_DIR") or BASE_DIR / "var").resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)  # SQLite creates files, not folders

SECRET_KEY = os.environ.get("SECRET_KEY", "django-insecure-only-for-the-conveyor-example")
DEBUG = os.environ.get("DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "conveyor.contrib.django",  # manage.py conveyor ..., finds every app's tasks.py
    "orders",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "shop_project.urls"
WSGI_APPLICATION = "shop_project.wsgi.application"
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
        "NAME": DATA_DIR / "shop.sqlite3",
        # The web server and the worker write to this file at the same time: wait for
        # the other's write lock rather than fail with "database is locked".
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
STATIC_URL = "static/"

# -- Conveyor ---------------------------------------------------------------------------
# One environment variable moves the queue: CONVEYOR_BROKER_URL=redis://127.0.0.1:6379/0
# (or amqp://guest:guest@127.0.0.1:5672/%2F: RabbitMQ keeps no results, so they go to a
# SQLite file in DATA_DIR unless CONVEYOR_RESULTS_URL says otherwise)
CONVEYOR = {
    "APP": "shop_project.conveyor:app",
    "BROKER_URL": os.environ.get("CONVEYOR_BROKER_URL") or f"sqlite:///{DATA_DIR / 'conveyor.db'}",
}
if CONVEYOR["BROKER_URL"].startswith("amqp") and not os.environ.get("CONVEYOR_RESULTS_URL"):
    CONVEYOR["RESULTS_URL"] = f"sqlite:///{DATA_DIR / 'results.db'}"
# Functions decorated with Django's own @django.tasks.task run on Conveyor workers too.
TASKS = {"default": {"BACKEND": "conveyor.contrib.django.backend.ConveyorBackend"}}

# -- E-mail: files in DATA_DIR/outbox (open them in any text editor), or the console ------
EMAIL_BACKENDS = {
    "file": "django.core.mail.backends.filebased.EmailBackend",
    "console": "django.core.mail.backends.console.EmailBackend",
}
EMAIL_BACKEND = EMAIL_BACKENDS[os.environ.get("MAIL_BACKEND", "file")]
EMAIL_FILE_PATH = DATA_DIR / "outbox"
DEFAULT_FROM_EMAIL = "Conveyor Shop <shop@example.com>"

# -- The shop ---------------------------------------------------------------------------
EXPORT_DIR = DATA_DIR / "exports"
# Seconds of pretend work per exported row, so that the progress bar has time to move.
EXPORT_ROW_DELAY = float(os.environ.get("EXPORT_ROW_DELAY", "0.05"))
# The nightly clean-up deletes exports older than this.
EXPORTS_KEEP_DAYS = int(os.environ.get("EXPORTS_KEEP_DAYS", "7"))
