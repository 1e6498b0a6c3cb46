"""One library's run of the RabbitMQ benchmark, in that library's own environment.

    <venv>/bin/python benchmarks/peers/amqp_driver.py LIBRARY --out result.json [--help]

`benchmarks/rabbitmq_peers.py` runs this once per library per round, in a RabbitMQ vhost
made for that run alone ($BENCH_AMQP_URL; its name in $BENCH_AMQP_VHOST), with results in
a Redis DB ($BENCH_REDIS_URL). The steps and the measurements are driver.py's (the Redis
benchmark's driver, whose adapters, worker, run and main this extends:
redis_adapters.py, worker_group.py, runner.py, driver.py): single enqueue
calls, then the warm-up task and the bulk enqueue; the worker started with the library's
own CLI; processing timed from the warm-up task's start until the queue is drained;
latency of tasks sent one every 10 ms to the idle worker; the worker tree's RSS and PSS.
What differs on RabbitMQ:
- "flushed" is the library's queue purged and the Redis DB flushed; after each enqueue
  phase the driver waits (untimed) until RabbitMQ holds every message it sent, since
  Celery and Dramatiq publish without confirms by default;
- "pending", polled every 5 ms, is the number of results not yet stored in Redis
  (DBSIZE, then the result keys counted once it is high enough). Every library here
  stores a task's result before it acks the message, and RabbitMQ can't be asked
  cheaply: a client learns only how many messages are ready in a queue (a passive
  queue.declare, ~0.5 ms of the prober's CPU here), not how many are delivered and
  not yet acknowledged (rabbitmqctl says, but each call starts an Erlang VM: a second
  of CPU). After the drain, untimed, rabbitmqctl says what the queue still holds, ready
  or unacknowledged: 0 in a good run;
- CPU per task: the worker's process group, RabbitMQ (beam.smp) and redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import driver
import runner
from adapter import Adapter
from procfs import command_name, cpu_seconds
from redis_adapters import CeleryAdapter, ConveyorAdapter, DramatiqAdapter
from runner import time_enqueue, wait_for
from worker_group import Worker

AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
VHOST = os.environ.get("BENCH_AMQP_VHOST", "/")


# -- the libraries: redis_adapters.py's adapters, on RabbitMQ --------------------------


class OnRabbitMQ(Adapter):
    """Mixed in before a Redis adapter: the same calls, the `<library>_amqp_tasks`
    module, and the RabbitMQ queue that the library's `default` queue is."""

    queue = ""

    @property
    def module(self) -> str:
        return f"{self.name}_amqp_tasks"

    def load(self) -> None:
        self.tasks = importlib.import_module(self.module)

    def worker_command(self, threads: int) -> list[str]:
        return [self.module if part == f"{self.name}_tasks" else part
                for part in super().worker_command(threads)]


class ConveyorOnRabbitMQ(OnRabbitMQ, ConveyorAdapter):
    queue = "bench.default"
    clients = ("aiormq", "redis", "hiredis")  # the distributions that talk to RabbitMQ and Redis
    semantics = ("acks after the task (default); every publish confirmed (default); "
                 "results in Redis (`results=`)")

    def load(self) -> None:
        super().load()
        self.tasks.app.broker.stats()  # fails here, with the reason, without RabbitMQ support


class CeleryOnRabbitMQ(OnRabbitMQ, CeleryAdapter):
    queue = "celery"
    clients = ("kombu", "amqp", "redis", "hiredis")
    semantics = ("acks after the task (task_acks_late=True); no publisher confirms "
                 "(default); results in the Redis backend")


class DramatiqOnRabbitMQ(OnRabbitMQ, DramatiqAdapter):
    queue = "default"
    clients = ("pika", "redis", "hiredis")
    semantics = ("acks after the actor (default); no publisher confirms (default); "
                 "results: Results middleware, RedisBackend, store_results=True")
    worker_setup = ("dramatiq -p 1 -t {threads}: a parent and 1 worker process, "
                    "{threads} worker threads, prefetch 2 per thread (default)")


ADAPTERS: dict[str, type[OnRabbitMQ]] = {
    a.name: a for a in (ConveyorOnRabbitMQ, CeleryOnRabbitMQ, DramatiqOnRabbitMQ)
}


# -- RabbitMQ, seen from the outside ---------------------------------------------------


class PikaProbe:
    """Queue depths and purges on a connection of the driver's own (pika)."""

    def __init__(self, url: str) -> None:
        import pika

        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()

    def ready(self, queue: str) -> int:
        return int(self.channel.queue_declare(queue, passive=True).method.message_count)

    def purge(self, queue: str) -> None:
        self.channel.queue_purge(queue)

    def close(self) -> None:
        self.connection.close()


class AiormqProbe:
    """The same with aiormq (Conveyor's venv has no pika), on a loop of its own."""

    def __init__(self, url: str) -> None:
        import aiormq

        self.loop = asyncio.new_event_loop()
        self.connection = self.loop.run_until_complete(aiormq.connect(url))
        self.channel = self.loop.run_until_complete(self.connection.channel())

    def ready(self, queue: str) -> int:
        ok = self.loop.run_until_complete(self.channel.queue_declare(queue, passive=True))
        return int(ok.message_count or 0)

    def purge(self, queue: str) -> None:
        self.loop.run_until_complete(self.channel.queue_purge(queue))

    def close(self) -> None:
        self.loop.run_until_complete(self.connection.close())
        self.loop.close()


Probe = PikaProbe | AiormqProbe


def open_probe(url: str) -> Probe:
    try:
        import pika  # noqa: F401
    except ImportError:
        return AiormqProbe(url)
    return PikaProbe(url)


def queue_depth(queue: str) -> tuple[int, int] | None:
    """(ready, unacknowledged) of `queue` in our vhost, from rabbitmqctl; None if it
    can't say. About a second: it starts an Erlang VM."""
    try:
        listing = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", VHOST, "name",
                                  "messages_ready", "messages_unacknowledged"],
                                 capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in listing.splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and fields[0] == queue and fields[1].isdigit():
            return int(fields[1]), int(fields[2])
    return None


def process_named(name: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and command_name(int(entry.name)) == name:
            return int(entry.name)
    return None


# -- the run ---------------------------------------------------------------------------


class Run(runner.Run):
    """runner.py's run, on RabbitMQ (see above)."""

    adapter: OnRabbitMQ
    log_name = "{library}-amqp-worker.log"

    def __init__(self, adapter: OnRabbitMQ, args: argparse.Namespace,
                 out: dict[str, Any]) -> None:
        super().__init__(adapter, args, out)
        self.rabbitmq_pid = process_named("beam.smp")
        self.redis_pid = int(self.r.info("server")["process_id"])

    def flush(self, probe: Probe) -> None:
        probe.purge(self.adapter.queue)
        self.r.flushdb()

    def landed(self, probe: Probe, n: int) -> None:
        """Wait until RabbitMQ holds the `n` messages sent (untimed)."""
        queue = self.adapter.queue
        wait_for(lambda: True if probe.ready(queue) >= n else None, timeout=60)

    def enqueue(self) -> Any:
        """Single calls, then (flushed) the warm-up task and the bulk. Returns the warm-up."""
        adapter, args, out = self.adapter, self.args, self.out
        adapter.enqueue_one()  # connect, declare the queue: not timed
        probe = open_probe(AMQP_URL)
        try:
            self.landed(probe, 1)
            self.flush(probe)
            out["enqueue_single"] = time_enqueue(adapter, args.single)
            self.landed(probe, args.single)
            self.flush(probe)
            warm_up = adapter.send_warm_up()
            started = time.perf_counter()
            adapter.enqueue_bulk(args.tasks)
            out["enqueue_bulk"] = args.tasks / (time.perf_counter() - started)
            self.landed(probe, args.tasks + 1)
        finally:
            probe.close()
        return warm_up

    def pending(self, expected: int) -> int:
        """Tasks whose result isn't stored yet: DBSIZE while it is short of `expected`
        (every result is a key; other keys only add), then the results counted."""
        keys = int(self.r.dbsize())
        if keys < expected:
            return expected - keys
        return expected - self.adapter.stored(self.r)

    def server_cpu(self) -> dict[str, float]:
        return {"rabbitmq_cpu_us": cpu_seconds(self.rabbitmq_pid) if self.rabbitmq_pid else 0.0,
                "redis_cpu_us": cpu_seconds(self.redis_pid)}

    def processing(self, worker: Worker, warm_up: Any) -> None:
        super().processing(worker, warm_up)
        depth = queue_depth(self.adapter.queue)  # ~1 s, while the worker idles
        if depth is not None:
            self.out["left_ready"], self.out["left_unacked"] = depth


def main(argv: list[str] | None = None) -> int:
    return driver.main(argv, ADAPTERS, Run, __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
