"""What the driver asks of a library: the adapter base class. Each library's adapter
(redis_adapters.py, async_driver.py, amqp_driver.py) fills it in."""

from __future__ import annotations

import importlib
from typing import Any

import redis
from concurrency import Concurrency, Setting

# Each adapter does what a user of that library would: its own enqueue calls, its own
# result API, its own worker CLI. `pending` reads the library's own Redis keys.


class Adapter:
    name = ""
    dist = ""  # the distribution whose version is reported
    bulk_api = "n/a"
    worker_setup = ""
    semantics = ""  # when it acknowledges, where results go
    clients: tuple[str, ...] = ("redis", "hiredis")  # the client distributions reported
    term_group = True  # the SIGTERM that stops the worker goes to its whole process group
    tasks: Any = None

    def load(self) -> None:
        self.tasks = importlib.import_module(f"{self.name}_tasks")

    def worker_command(self, threads: int) -> list[str]:
        raise NotImplementedError

    def setting(self, concurrency: Concurrency) -> Setting:
        """How this library's worker runs at `concurrency`. Here only 1 x threads, with
        `worker_command`; the Redis adapters know the rest."""
        if concurrency.best or concurrency.processes != 1:
            raise NotImplementedError(f"{self.name} has no setting for {concurrency.name}")
        threads = concurrency.threads
        return [self.worker_command(threads)], self.worker_setup.format(threads=threads)

    def enqueue_one(self) -> Any:
        raise NotImplementedError

    def enqueue_bulk(self, n: int) -> bool:
        """Enqueue `n` no-op tasks with the bulk API; False when the library has none."""
        return False

    def enqueue_workload(self, workload: str, n: int) -> bool:
        """Enqueue `n` tasks of `workload` (each given its index), with the bulk API where
        there is one (False where there is none: then one call each). "noop" is the no-op
        without arguments, as in the processing benchmark."""
        if workload == "noop":
            if self.enqueue_bulk(n):
                return True
            for _ in range(n):
                self.enqueue_one()
            return False
        task = getattr(self.tasks, workload, None)
        if task is None:
            raise RuntimeError(f"{self.name} has no {workload} task")
        return self.enqueue_many(task, n)

    def enqueue_many(self, task: Any, n: int) -> bool:
        """`task(i)` for i in range(n): the bulk API, or False after one call each."""
        for i in range(n):
            task(i)
        return False

    def send_started_at(self) -> Any:
        return self.tasks.started_at.delay()

    def send_warm_up(self) -> Any:
        """The first task the worker runs: enqueued before the backlog (FIFO)."""
        return self.send_started_at()

    def peek(self, handle: Any) -> float | None:
        """The started_at task's value if it has finished, else None (no blocking)."""
        raise NotImplementedError

    def pending(self, r: redis.Redis, expected: int) -> int:
        """Tasks not finished yet (of `expected` enqueued since the flush)."""
        raise NotImplementedError

    def is_result(self, key: bytes) -> bool:
        """Whether `key` is a stored task result."""
        raise NotImplementedError

    def stored(self, r: redis.Redis) -> int:
        """How many results are stored (counted once, after processing, untimed)."""
        return sum(1 for key in r.scan_iter(count=1000) if self.is_result(key))

    def close(self) -> None:
        pass
