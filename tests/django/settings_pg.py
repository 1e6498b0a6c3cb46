"""The test settings on PostgreSQL with persistent connections and health checks, the
set-up in which a worker used to die of "server closed the connection"."""

from tests.django.settings import *  # noqa: F403

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "test",
        "HOST": "127.0.0.1",
        "PORT": 5432,
        "USER": "postgres",
        "CONN_MAX_AGE": None,
        "CONN_HEALTH_CHECKS": True,
    }
}
