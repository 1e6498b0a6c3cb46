"""Coordination in Redis. Each primitive has its own key prefix, so none meets a task id:

- `ns:claim:<key>`: string, the holder of a `claim`, expiring with the claim (PX);
  taken and renewed by `lua/claim.lua`, freed by `lua/release.lua`.
- `ns:set:<key>`: set, the members of a `join` (`lua/join.lua`); every join renews the
  whole set's expiry.
- `ns:value:<key>`: string, a `put` value, with PX expiry.
- `ns:pace:<key>`: string, the next free slot of a `pace` schedule (`lua/pace.lua`),
  expiring at it. One key per call, so one Cluster slot.

With ``replicas=N`` in the URL every write waits until N replicas hold it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from conveyor.backends.redis.client import (
    call,
    confirm_replicated,
    connect,
    mget,
    milliseconds,
    script,
)
from conveyor.backends.redis.url import parse_url

T = TypeVar("T")


class RedisCoordination:
    def __init__(self, url: str) -> None:
        self.url = url
        self.target = parse_url(url)
        self.namespace = self.target.namespace
        self.client = connect(self.target)
        self._claim, self._release, self._join, self._pace = (
            self.client.register_script(script(name))
            for name in ("claim", "release", "join", "pace"))

    def _write(self, action: Callable[[], T], what: str) -> T:
        """Run a write, then wait for `replicas=` to hold it, as `store` does."""

        def write() -> T:
            result = action()
            confirm_replicated(self.client, self.target, what)
            return result

        return call(write, self.url, "Redis coordination")

    def claim(self, key: str, owner: str, ttl: float) -> str:
        holder = self._write(partial(self._claim, keys=[f"{self.namespace}:claim:{key}"],
                                     args=[owner, milliseconds(ttl)]), "claiming a key")
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
            sizes = self._write(partial(self._join, keys=keys,
                                        args=[*members, milliseconds(ttl)]), "joining sets")
            return [int(size) for size in sizes]

        def pipelined() -> list[Any]:
            # The keys span slots, so one script call per entry, all in one pipeline.
            # redis-py blocks EVALSHA on a cluster pipeline (it can't load a missing
            # script there); EVAL carries the script itself, so it needs no cache.
            pipe = self.client.pipeline(transaction=False)
            for key, member in zip(keys, members, strict=True):
                pipe.execute_command("EVAL", self._join.script, 1, key, member,
                                     milliseconds(ttl))
            return list(pipe.execute())

        return [sizes[0] for sizes in self._write(pipelined, "joining sets")]

    def put(self, key: str, value: str, ttl: float) -> None:
        self._write(partial(self.client.set, f"{self.namespace}:value:{key}", value,
                            px=milliseconds(ttl)), "storing a value")

    def fetch(self, keys: Sequence[str]) -> list[str | None]:
        raws = mget(self.client, self.target, [f"{self.namespace}:value:{key}" for key in keys])
        return [raw.decode() if raw is not None else None for raw in raws]

    def pace(self, key: str, interval: float) -> float:
        waited = self._write(partial(self._pace, keys=[f"{self.namespace}:pace:{key}"],
                                     args=[max(1, round(interval * 1e6))]),
                             "taking a rate-limit slot")
        return int(waited) / 1e6

    def close(self) -> None:
        self.client.close()
