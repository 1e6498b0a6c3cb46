"""Results in Redis: one string per task (`ns:result:<id>`, the JSON record, with EXPIRE)
and a pub/sub message on `ns:done:<id>` when a task reaches a final state, so `wait()`
sleeps on the subscription instead of polling. A worker's batch of results is one
script call (`redis_lua/store.lua`); on a cluster, where keys span slots, a pipeline.

The coordination primitives have their own prefixes, so they never meet a task id:

- `ns:claim:<key>`: string, the holder of a `claim`, expiring with the claim (PX);
  taken and renewed by `redis_lua/claim.lua`, freed by `redis_lua/release.lua`.
- `ns:set:<key>`: set, the members of a `join` (`redis_lua/join.lua`); every join
  renews the whole set's expiry.
- `ns:value:<key>`: string, a `put` value, with PX expiry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from importlib import resources
from typing import Any, TypeVar

import msgspec

from conveyor.brokers.redis_client import call, confirm_replicated, connect, parse_url
from conveyor.result import ResultRecord

T = TypeVar("T")
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ResultRecord)


class RedisResultStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.target = parse_url(url)
        self.namespace = self.target.namespace
        self.client = connect(self.target)
        self._store, self._claim, self._release, self._join = (
            self.client.register_script(_script(name))
            for name in ("store", "claim", "release", "join"))

    def _key(self, task_id: str) -> str:
        return f"{self.namespace}:result:{task_id}"

    def _channel(self, task_id: str) -> str:
        return f"{self.namespace}:done:{task_id}"

    def _call(self, action: Callable[[], T]) -> T:
        return call(action, self.url, "Redis result store")

    def store(self, records: Sequence[tuple[ResultRecord, float]]) -> None:
        if not records:
            return

        if not self.target.cluster:
            keys = [self._key(r.id) for r, _ in records]
            args: list[Any] = []
            for record, ttl in records:
                args += [_encoder.encode(record), _ms(ttl),
                         "1" if record.state.is_final else "0"]
            args.append(self.namespace)

            def send() -> None:
                self._store(keys=keys, args=args)
                confirm_replicated(self.client, self.target, "storing results")
        else:  # keys of many slots: a pipeline of SETs, then each PUBLISH on its own

            def send() -> None:
                pipe = self.client.pipeline(transaction=False)
                for record, ttl in records:
                    pipe.set(self._key(record.id), _encoder.encode(record),
                             px=_ms(ttl))
                pipe.execute()
                for record, _ in records:
                    if record.state.is_final:
                        self.client.publish(self._channel(record.id), b"1")
                confirm_replicated(self.client, self.target, "storing results")

        self._call(send)

    def get(self, task_id: str) -> ResultRecord | None:
        raw = self._call(lambda: self.client.get(self._key(task_id)))
        return _decoder.decode(raw) if raw else None

    def wait(self, task_id: str, timeout: float | None) -> ResultRecord | None:
        deadline = time.monotonic() + (timeout if timeout is not None else 10**9)
        pubsub = self._call(lambda: self.client.pubsub(ignore_subscribe_messages=True))
        try:
            self._call(lambda: pubsub.subscribe(self._channel(task_id)))
            while True:
                record = self.get(task_id)  # after subscribing: no notification is missed
                remaining = deadline - time.monotonic()
                if (record is not None and record.state.is_final) or remaining <= 0:
                    return record
                pause = min(remaining, 5.0)
                self._call(partial(pubsub.get_message, timeout=pause))
        finally:
            pubsub.close()

    def forget(self, task_ids: Sequence[str]) -> None:
        if task_ids:
            self._call(lambda: self.client.delete(*[self._key(i) for i in task_ids]))

    def get_many(self, task_ids: Sequence[str]) -> list[ResultRecord | None]:
        raws = self._mget([self._key(i) for i in task_ids])
        return [_decoder.decode(raw) if raw else None for raw in raws]

    def _mget(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        mget = self.client.mget_nonatomic if self.target.cluster else self.client.mget
        return list(self._call(partial(mget, keys)))

    def _write(self, action: Callable[[], T], what: str) -> T:
        """Run a write, then wait for `replicas=` to hold it, as `store` does."""

        def write() -> T:
            result = action()
            confirm_replicated(self.client, self.target, what)
            return result

        return self._call(write)

    def claim(self, key: str, owner: str, ttl: float) -> str:
        holder = self._write(
            partial(self._claim, keys=[f"{self.namespace}:claim:{key}"], args=[owner, _ms(ttl)]),
            "claiming a key")
        return holder.decode() if isinstance(holder, bytes) else str(holder)

    def release(self, key: str, owner: str) -> bool:
        released = self._write(
            partial(self._release, keys=[f"{self.namespace}:claim:{key}"], args=[owner]),
            "releasing a claim")
        return bool(released)

    def join(self, entries: Sequence[tuple[str, str]], ttl: float) -> list[int]:
        if not entries:
            return []
        keys = [f"{self.namespace}:set:{key}" for key, _ in entries]
        members = [member for _, member in entries]
        if not self.target.cluster:
            sizes = self._write(partial(self._join, keys=keys, args=[*members, _ms(ttl)]),
                                "joining sets")
            return [int(size) for size in sizes]

        def pipelined() -> list[Any]:
            # The keys span slots, so one script call per entry, all in one pipeline.
            # redis-py blocks EVALSHA on a cluster pipeline (it can't load a missing
            # script there); EVAL carries the script itself, so it needs no cache.
            pipe = self.client.pipeline(transaction=False)
            for key, member in zip(keys, members, strict=True):
                pipe.execute_command("EVAL", self._join.script, 1, key, member, _ms(ttl))
            return list(pipe.execute())

        return [sizes[0] for sizes in self._write(pipelined, "joining sets")]

    def put(self, key: str, value: str, ttl: float) -> None:
        self._write(
            partial(self.client.set, f"{self.namespace}:value:{key}", value, px=_ms(ttl)),
            "storing a value")

    def fetch(self, keys: Sequence[str]) -> list[str | None]:
        raws = self._mget([f"{self.namespace}:value:{key}" for key in keys])
        return [raw.decode() if raw is not None else None for raw in raws]

    def close(self) -> None:
        self.client.close()


def _script(name: str) -> str:
    return resources.files("conveyor.results.redis_lua").joinpath(f"{name}.lua").read_text()


def _ms(seconds: float) -> int:
    """A TTL in whole milliseconds, at least 1 (Redis rejects 0)."""
    return max(1, int(seconds * 1000))
