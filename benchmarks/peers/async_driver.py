"""One async library's run of the async workload, in benchmarks/.venv-async.

    <venv-async>/bin/python benchmarks/peers/async_driver.py LIBRARY --out result.json
        --workload async_sleep --single 0 --latency-tasks 0

driver.py's run (a flushed DB, a warm-up task and the backlog enqueued, the worker
started with the library's own CLI, timed from the warm-up's start until the library's
own "not finished" count is 0) for arq, SAQ and Taskiq, the issue's peers for `async def`
tasks. Their client APIs are coroutines: each adapter runs them on an event loop of its
own, so the sync driver around them stays as it is. Each runs at its defaults, whatever
--config says: these libraries are used that way, and the issue asks for their defaults.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

import driver
import redis
from adapter import Adapter
from bench_env import BIN
from concurrency import Concurrency, Setting


class AsyncAdapter(Adapter):
    """An async client, driven from the sync driver on a private event loop."""

    loop: asyncio.AbstractEventLoop

    def load(self) -> None:
        super().load()
        self.loop = asyncio.new_event_loop()

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coroutine)

    def enqueue_one(self) -> Any:
        return self.send_started_at()

    def enqueue_workload(self, workload: str, n: int) -> bool:
        """`n` async_sleep tasks, one enqueue call each (awaited one after another)."""
        if workload != "async_sleep":
            raise RuntimeError(f"{self.name} runs only the async_sleep workload")

        async def enqueue_all() -> None:
            for i in range(n):
                await self.enqueue_async_sleep(i)

        self.run(enqueue_all())
        return False

    async def enqueue_async_sleep(self, i: int) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        self.loop.close()


class ArqAdapter(AsyncAdapter):
    name = dist = "arq"
    semantics = ("a job stays in the queue until done (re-run if the worker dies); "
                 "results kept 1 h (default)")
    pool: Any = None

    def load(self) -> None:
        super().load()
        from arq import create_pool

        self.pool = self.run(create_pool(self.tasks.WorkerSettings.redis_settings))

    def setting(self, concurrency: Concurrency) -> Setting:
        return ([[str(BIN / "arq"), "arq_tasks.WorkerSettings"]],
                "arq arq_tasks.WorkerSettings: 1 process, max_jobs 10 (default)")

    async def enqueue_async_sleep(self, i: int) -> Any:
        return await self.pool.enqueue_job("async_sleep", i)

    def send_started_at(self) -> Any:
        return self.run(self.pool.enqueue_job("started_at"))

    def peek(self, handle: Any) -> float | None:
        info = self.run(handle.result_info())
        return None if info is None else float(info.result)

    def pending(self, r: redis.Redis, expected: int) -> int:
        return int(r.zcard("arq:queue"))  # a job leaves it when it is done

    def is_result(self, key: bytes) -> bool:
        return key.startswith(b"arq:result:")

    def close(self) -> None:
        self.run(self.pool.aclose())
        super().close()


class SaqAdapter(AsyncAdapter):
    name = dist = "saq"
    semantics = "a job stays in the queue's incomplete set until done; results kept (default)"

    def load(self) -> None:
        super().load()
        self.run(self.tasks.queue.connect())

    def setting(self, concurrency: Concurrency) -> Setting:
        return ([[str(BIN / "saq"), "saq_tasks.settings"]],
                "saq saq_tasks.settings: 1 process, concurrency 10 (default)")

    async def enqueue_async_sleep(self, i: int) -> Any:
        return await self.tasks.queue.enqueue("async_sleep", i=i)

    def send_started_at(self) -> Any:
        return self.run(self.tasks.queue.enqueue("started_at"))

    def peek(self, handle: Any) -> float | None:
        from saq.job import Status

        self.run(handle.refresh())
        return float(handle.result) if handle.status == Status.COMPLETE else None

    def pending(self, r: redis.Redis, expected: int) -> int:
        return int(self.run(self.tasks.queue.count("incomplete")))

    def is_result(self, key: bytes) -> bool:
        return key.startswith(b"saq:job:")

    def close(self) -> None:
        self.run(self.tasks.queue.disconnect())
        super().close()


class TaskiqAdapter(AsyncAdapter):
    name = dist = "taskiq"
    clients = ("taskiq-redis", "redis", "hiredis")
    semantics = ("RedisStreamBroker: acked after the task; results in "
                 "RedisAsyncResultBackend")

    def load(self) -> None:
        super().load()
        self.run(self.tasks.broker.startup())

    def setting(self, concurrency: Concurrency) -> Setting:
        return ([[str(BIN / "taskiq"), "worker", "taskiq_tasks:broker"]],
                "taskiq worker taskiq_tasks:broker: 2 worker processes, up to 100 tasks "
                "at once each (defaults)")

    async def enqueue_async_sleep(self, i: int) -> Any:
        return await self.tasks.async_sleep.kiq(i)

    def send_started_at(self) -> Any:
        return self.run(self.tasks.started_at.kiq())

    def peek(self, handle: Any) -> float | None:
        if not self.run(handle.is_ready()):
            return None
        return float(self.run(handle.get_result()).return_value)

    def pending(self, r: redis.Redis, expected: int) -> int:
        """Tasks whose result isn't stored yet: DBSIZE while it is short of `expected`
        (every result is a key; the stream is one more), then the results counted."""
        keys = int(r.dbsize())
        return expected - keys if keys < expected else expected - self.stored(r)

    def is_result(self, key: bytes) -> bool:
        return key.startswith(self.tasks.RESULT_PREFIX.encode() + b":")

    def close(self) -> None:
        self.run(self.tasks.broker.shutdown())
        super().close()


ADAPTERS: dict[str, type[Adapter]] = {a.name: a for a in (ArqAdapter, SaqAdapter, TaskiqAdapter)}


def main(argv: list[str] | None = None) -> int:
    return driver.main(argv, ADAPTERS, description=__doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
