"""Dramatiq's side of the RabbitMQ benchmark: the broker and the two actors its worker runs.

    dramatiq dramatiq_amqp_tasks -p 1 -t 8     (with this folder on PYTHONPATH)

RabbitmqBroker (pika; the vhost of $BENCH_AMQP_URL, queue `default`) with Dramatiq's
default middleware, plus the Results middleware on a RedisBackend ($BENCH_REDIS_URL) with
`store_results=True`: dramatiq_tasks.py's actors and middleware (importing it also builds
its RedisBroker, left unused: it would connect only when used). Dramatiq acknowledges
after the actor returns. Its defaults otherwise: no publisher confirms
(`confirm_delivery=False`), a prefetch of 2 per thread.
"""

from __future__ import annotations

import os

from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq_tasks import declare

AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

broker = RabbitmqBroker(url=AMQP_URL)
noop, started_at = declare(broker)
