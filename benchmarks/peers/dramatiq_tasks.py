"""Dramatiq's side of the Redis benchmark: the broker and the two actors its worker runs.

    dramatiq dramatiq_tasks -p 1 -t 8     (with this folder on PYTHONPATH)

RedisBroker with Dramatiq's default middleware, plus the Results middleware on a
RedisBackend with `store_results=True`. Dramatiq acknowledges after the actor returns.
"""

from __future__ import annotations

import os
import time

import dramatiq
import workloads
from dramatiq import Actor, Broker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


def declare(broker: Broker) -> tuple[Actor, Actor]:
    """The Results middleware (on Redis, at $BENCH_REDIS_URL) and the two actors, on
    `broker`, made the global broker. dramatiq_amqp_tasks.py's are these, on RabbitMQ."""
    broker.add_middleware(Results(backend=RedisBackend(url=URL), store_results=True))
    dramatiq.set_broker(broker)

    @dramatiq.actor(actor_name="bench.noop", queue_name="default", store_results=True,
                    broker=broker)
    def noop() -> None:
        """The processing benchmark's task: nothing but the library's own work."""

    @dramatiq.actor(actor_name="bench.started_at", queue_name="default", store_results=True,
                    broker=broker)
    def started_at() -> float:
        """When the task started (the latency benchmark and the warm-up task)."""
        return time.time()

    return noop, started_at


def declare_workloads(broker: Broker) -> list[Actor]:
    """The workload benchmark's actors (redis_workloads.py): workloads.py's roundtrip,
    sleep, cpu and mix, results stored like the no-op's."""
    return [dramatiq.actor(getattr(workloads, name), actor_name=f"bench.{name}",
                           queue_name="default", store_results=True, broker=broker)
            for name in ("roundtrip", "sleep", "cpu", "mix")]


broker = RedisBroker(url=URL)
noop, started_at = declare(broker)
roundtrip, sleep, cpu, mix = declare_workloads(broker)
