"""Celery's side of the RabbitMQ benchmark: the app and the two tasks its worker runs.

    celery -A celery_amqp_tasks worker -P threads -c 8 --without-gossip --without-mingle
           --without-heartbeat -l WARNING       (with this folder on PYTHONPATH)

celery_tasks.py's app and tasks, with RabbitMQ as the broker instead (the vhost of
$BENCH_AMQP_URL, through kombu's py-amqp transport, queue `celery`): the Redis result
backend ($BENCH_REDIS_URL). `task_acks_late`: acknowledged after the task ends (Celery's
default acks before it runs). Results stored (Celery's default). Everything else is
Celery's default: a prefetch multiplier of 4, no publisher confirms.
"""

from __future__ import annotations

import os

from celery_tasks import app, noop, started_at

__all__ = ["app", "noop", "started_at"]

AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

app.conf.broker_url = AMQP_URL  # before anything connects: the app is configured lazily
