"""The Redis benchmark's libraries: Conveyor, Celery, Dramatiq, RQ and Huey, each as a
user of that library would run it: its own enqueue calls, result API, worker CLI, and
"not finished" count (`pending`), read from the library's own Redis keys. The best
setting of each library, with the reason, is in its `setting()`."""

from __future__ import annotations

import sys
from typing import Any

import redis
from adapter import Adapter
from bench_env import BIN, URL
from concurrency import Concurrency, Setting


class ConveyorAdapter(Adapter):
    name = dist = "conveyor"
    bulk_api = "noop.map(...)"
    semantics = "acks after the task (default); results in Redis (default)"
    worker_setup = ("python -m conveyor worker -p 1 -t {threads}: a supervisor and 1 worker "
                    "process, {threads} threads")

    def load(self) -> None:
        super().load()
        self.tasks.app.broker.stats()  # fails here, with the reason, if Redis isn't supported

    def worker_command(self, threads: int, processes: int = 1) -> list[str]:
        return [sys.executable, "-m", "conveyor", "worker", "-A", "conveyor_tasks",
                "-p", str(processes), "-t", str(threads)]

    def setting(self, concurrency: Concurrency) -> Setting:
        """`-p` processes of `-t` threads; at its best, -p 2 -t 8 (a process per core)."""
        if not concurrency.best and concurrency.processes == 1:
            return super().setting(concurrency)  # as in the processing benchmark
        c = Concurrency("2x8", 2, 8) if concurrency.best else concurrency
        return ([self.worker_command(c.threads, c.processes)],
                f"python -m conveyor worker -p {c.processes} -t {c.threads}: a supervisor "
                f"and {c.processes} worker processes, {c.threads} threads each")

    def enqueue_one(self) -> Any:
        return self.tasks.noop.delay()

    def enqueue_many(self, task: Any, n: int) -> bool:
        task.map((i,) for i in range(n))
        return True

    def enqueue_bulk(self, n: int) -> bool:
        self.tasks.noop.map(() for _ in range(n))
        return True

    def send_warm_up(self) -> Any:
        return self.tasks.started_at.apply_async(priority=9)  # 9 runs first

    def peek(self, handle: Any) -> float | None:
        return float(handle.result) if handle.ready() else None

    def pending(self, r: redis.Redis, expected: int) -> int:
        stats = self.tasks.app.broker.stats()["default"]
        return int(stats.ready + stats.scheduled + stats.running)

    def is_result(self, key: bytes) -> bool:
        return b":result:" in key

    def close(self) -> None:
        self.tasks.app.close()


class CeleryAdapter(Adapter):
    name = dist = "celery"
    bulk_api = "group(noop.s() ...).apply_async()"
    semantics = "acks after the task (task_acks_late=True); results in the Redis backend"
    worker_setup = ("celery worker -P threads -c {threads}: 1 process, {threads} threads; "
                    "acks_late, prefetch multiplier 4 (default)")

    def worker_command(self, threads: int, pool: str = "threads", node: str = "") -> list[str]:
        return [str(BIN / "celery"), "-A", "celery_tasks", "worker", "-P", pool,
                "-c", str(threads), "--without-gossip", "--without-mingle",
                "--without-heartbeat", "-l", "WARNING", *(["-n", node] if node else [])]

    def setting(self, concurrency: Concurrency) -> Setting:
        """Celery's thread pool lives in one process, so P x T is P workers of T threads
        (each its own node name). Its best here: prefork, 2 processes (one per core)."""
        if not concurrency.best and concurrency.processes == 1:
            return super().setting(concurrency)  # as in the processing benchmark
        if concurrency.best:
            return ([self.worker_command(2, pool="prefork")],
                    "celery worker -P prefork -c 2: a parent and 2 pool processes; acks_late, "
                    "prefetch multiplier 4 (default)")
        p, t = concurrency.processes, concurrency.threads
        commands = [self.worker_command(t, node=f"bench{k}@%h" if p > 1 else "")
                    for k in range(p)]
        return commands, (f"{p} x celery worker -P threads -c {t} -n benchK@%h: {p} "
                          f"processes, {t} threads each; acks_late, prefetch multiplier 4 "
                          "(default)")

    def enqueue_one(self) -> Any:
        return self.tasks.noop.delay()

    def enqueue_bulk(self, n: int) -> bool:
        from celery import group

        group(self.tasks.noop.s() for _ in range(n)).apply_async()
        return True

    def enqueue_many(self, task: Any, n: int) -> bool:
        from celery import group

        group(task.s(i) for i in range(n)).apply_async()
        return True

    def peek(self, handle: Any) -> float | None:
        return float(handle.result) if handle.ready() else None

    def pending(self, r: redis.Redis, expected: int) -> int:
        # kombu's Redis transport: the queue list, and the hash of reserved, unacked messages
        return int(r.llen("celery")) + int(r.hlen("unacked"))

    def is_result(self, key: bytes) -> bool:
        return key.startswith(b"celery-task-meta-")


class DramatiqAdapter(Adapter):
    name = dist = "dramatiq"
    bulk_api = "group(noop.message() ...).run()"
    semantics = ("acks after the actor (default); results: Results middleware, "
                 "RedisBackend, store_results=True")
    worker_setup = ("dramatiq -p 1 -t {threads}: a parent and 1 worker process, "
                    "{threads} worker threads")

    def worker_command(self, threads: int, processes: int = 1) -> list[str]:
        return [str(BIN / "dramatiq"), "dramatiq_tasks", "-p", str(processes),
                "-t", str(threads)]

    def setting(self, concurrency: Concurrency) -> Setting:
        """`-p` processes of `-t` threads; at its best, -p 2 -t 8 (a process per core)."""
        if not concurrency.best and concurrency.processes == 1:
            return super().setting(concurrency)  # as in the processing benchmark
        c = Concurrency("2x8", 2, 8) if concurrency.best else concurrency
        return ([self.worker_command(c.threads, c.processes)],
                f"dramatiq -p {c.processes} -t {c.threads}: a parent and {c.processes} "
                f"worker processes, {c.threads} worker threads each")

    def enqueue_one(self) -> Any:
        return self.tasks.noop.send()

    def enqueue_bulk(self, n: int) -> bool:
        from dramatiq import group

        group(self.tasks.noop.message() for _ in range(n)).run()
        return True

    def enqueue_many(self, task: Any, n: int) -> bool:
        from dramatiq import group

        group(task.message(i) for i in range(n)).run()
        return True

    def send_started_at(self) -> Any:
        return self.tasks.started_at.send()

    def peek(self, handle: Any) -> float | None:
        from dramatiq.results import ResultMissing

        try:
            return float(handle.get_result())
        except ResultMissing:
            return None

    def pending(self, r: redis.Redis, expected: int) -> int:
        # a message stays in the queue's .msgs hash until it is acked
        return int(r.hlen("dramatiq:default.msgs"))

    def is_result(self, key: bytes) -> bool:
        # result keys are MD5 hex digests; bench:counter is the roundtrip workload's
        return not key.startswith((b"dramatiq:", b"bench:"))


class RQAdapter(Adapter):
    name = "rq"
    dist = "rq"
    bulk_api = "queue.enqueue_many([...])"
    semantics = ("the job moves to the finished registry when done; "
                 "results kept 500 s (default)")
    worker_setup = ("rq worker-pool -n {threads} -w rq.worker.SimpleWorker: a pool parent "
                    "and {threads} worker processes, no fork per job")
    queue: Any = None

    def load(self) -> None:
        super().load()
        from rq import Queue

        self.queue = Queue("default", connection=redis.Redis.from_url(URL))

    # the pool's size at its best: 8 did 1,800-2,200 no-op tasks/s here, 1 about 1,000
    best_pool = 8
    # The pool stops its workers itself (SIGINT each): a SIGTERM to the whole group as
    # well left a pool of 8 running until the SIGKILL 15 s later (a pool of 2 did not).
    term_group = False

    def worker_command(self, threads: int) -> list[str]:
        return [str(BIN / "rq"), "worker-pool", "-u", URL, "-n", str(threads),
                "-w", "rq.worker.SimpleWorker", "-q", "default"]

    def setting(self, concurrency: Concurrency) -> Setting:
        """RQ has no threads: P x T is a pool of P x T single-job SimpleWorker processes,
        the same number of task slots."""
        if not concurrency.best and concurrency.processes == 1:
            return super().setting(concurrency)  # as in the processing benchmark
        n = self.best_pool if concurrency.best else concurrency.processes * concurrency.threads
        return [self.worker_command(n)], self.worker_setup.format(threads=n)

    def enqueue_one(self) -> Any:
        return self.queue.enqueue(self.tasks.noop)

    def enqueue_bulk(self, n: int) -> bool:
        from rq import Queue

        self.queue.enqueue_many([Queue.prepare_data(self.tasks.noop) for _ in range(n)])
        return True

    def enqueue_many(self, task: Any, n: int) -> bool:
        from rq import Queue

        self.queue.enqueue_many([Queue.prepare_data(task, args=(i,)) for i in range(n)])
        return True

    def send_started_at(self) -> Any:
        return self.queue.enqueue(self.tasks.started_at)

    def peek(self, handle: Any) -> float | None:
        result = handle.latest_result()
        return None if result is None else float(result.return_value)

    def pending(self, r: redis.Redis, expected: int) -> int:
        from rq.registry import FinishedJobRegistry

        return expected - int(r.zcard(FinishedJobRegistry(queue=self.queue).key))

    def is_result(self, key: bytes) -> bool:
        return key.startswith(b"rq:results:")


class HueyAdapter(Adapter):
    name = dist = "huey"
    semantics = ("no acknowledgement: a task is popped, and lost if the consumer dies; "
                 "results in a hash, store_none=True")
    worker_setup = "huey_consumer -k thread -w {threads}: 1 process, {threads} worker threads"

    def worker_command(self, threads: int, kind: str = "thread") -> list[str]:
        return [str(BIN / "huey_consumer"), "huey_tasks.huey", "-k", kind,
                "-w", str(threads), "-q"]

    def setting(self, concurrency: Concurrency) -> Setting:
        """A consumer's workers are threads or processes, not both, so P x T is P
        consumers of T threads. Its best here: one consumer of 2 worker processes."""
        if not concurrency.best and concurrency.processes == 1:
            return super().setting(concurrency)  # as in the processing benchmark
        if concurrency.best:
            return ([self.worker_command(2, kind="process")],
                    "huey_consumer -k process -w 2: 1 consumer, 2 worker processes")
        p, t = concurrency.processes, concurrency.threads
        return ([self.worker_command(t) for _ in range(p)],
                f"{p} x huey_consumer -k thread -w {t}: {p} processes, "
                f"{t} worker threads each")

    def enqueue_one(self) -> Any:
        return self.tasks.noop()

    def send_started_at(self) -> Any:
        return self.tasks.started_at()

    def peek(self, handle: Any) -> float | None:
        value = handle.get(preserve=True)  # keep it: `pending` counts stored results
        return None if value is None else float(value)

    def pending(self, r: redis.Redis, expected: int) -> int:
        return expected - int(r.hlen(self.tasks.huey.storage.result_key))

    def stored(self, r: redis.Redis) -> int:
        return int(r.hlen(self.tasks.huey.storage.result_key))


ADAPTERS: dict[str, type[Adapter]] = {
    a.name: a for a in (ConveyorAdapter, CeleryAdapter, DramatiqAdapter, RQAdapter, HueyAdapter)
}
