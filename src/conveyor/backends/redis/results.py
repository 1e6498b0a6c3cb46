"""Results in Redis: one string per task (`ns:result:<id>`, the JSON record, with EXPIRE)
and a pub/sub message on `ns:done:<id>` when a task reaches a final state, so `wait()`
sleeps on the subscription instead of polling. A worker's batch of results is one
script call (`lua/store.lua`); on a cluster, where keys span slots, a pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import msgspec

from conveyor.backends.redis.client import (
    call,
    confirm_replicated,
    connect,
    mget,
    milliseconds,
    script,
)
from conveyor.backends.redis.url import parse_url
from conveyor.backends.waiting import wait_until_final
from conveyor.records import ResultRecord

T = TypeVar("T")
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ResultRecord)


class RedisResultStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.target = parse_url(url)
        self.namespace = self.target.namespace
        self.client = connect(self.target)
        self._store = self.client.register_script(script("store"))

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
                args += [_encoder.encode(record), milliseconds(ttl),
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
                             px=milliseconds(ttl))
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
        pubsub = self._call(lambda: self.client.pubsub(ignore_subscribe_messages=True))
        try:
            # Subscribed before the first read: no notification is missed.
            self._call(lambda: pubsub.subscribe(self._channel(task_id)))
            return wait_until_final(
                lambda: self.get(task_id),
                lambda pause: self._call(partial(pubsub.get_message, timeout=pause)),
                timeout, max_pause=5.0)
        finally:
            pubsub.close()

    def forget(self, task_ids: Sequence[str]) -> None:
        if task_ids:
            self._call(lambda: self.client.delete(*[self._key(i) for i in task_ids]))

    def get_many(self, task_ids: Sequence[str]) -> list[ResultRecord | None]:
        raws = mget(self.client, self.target, [self._key(i) for i in task_ids])
        return [_decoder.decode(raw) if raw else None for raw in raws]

    def close(self) -> None:
        self.client.close()
