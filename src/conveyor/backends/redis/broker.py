"""Redis broker (redis-py with hiredis): thin Python over one Lua script per operation.

The key schema is in `lua/README.md`. Every operation on a queue is one script
call, and batches (publish, ack, extend) are one call per queue, pipelined across queues:
one round trip (on a cluster, one per queue). Idle workers block in BLPOP on the queues'
signal lists instead of polling, and wake at once when something is published.

URLs: ``redis://[:password@]host:port/db``, ``rediss://`` (TLS),
``redis+sentinel://host:port[,host:port]/master_name/db`` and
``redis+cluster://host:port[,host:port]/``, each with optional query options
``namespace`` (key prefix, default ``conveyor``) and ``publish_timeout`` (seconds a
producer retries a publish while Redis is unreachable before raising
BrokerUnavailable, default 10).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, TypeVar

import msgspec
import redis

from conveyor.backends.redis.client import (
    call,
    confirm_replicated,
    connect,
    script,
)
from conveyor.backends.redis.url import RedisTarget, parse_url
from conveyor.backends.waiting import reserve_loop, retry_while_unavailable
from conveyor.broker import DeadLetter, Delivery, QueueStats, Revoked, WorkerInfo
from conveyor.message import Envelope

T = TypeVar("T")
_worker_decoder = msgspec.json.Decoder(WorkerInfo)
CLUSTER_POLL = 0.1  # Redis Cluster can't BLPOP keys of several slots: poll each in turn


def _as_text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def task_id_of(ref: bytes | str) -> str:
    """The task id in a ref `seq|priority|id`; a malformed ref (reserve.lua dead-letters
    it) stands for itself."""
    parts = _as_text(ref).split("|", 2)
    return parts[2] if len(parts) == 3 else _as_text(ref)


class RedisBroker:
    def __init__(self, url: str, lease_seconds: float = 30.0) -> None:
        self.url = url
        self.lease_seconds = lease_seconds
        self.target: RedisTarget = parse_url(url)
        self.namespace = self.target.namespace
        self.client = connect(self.target)
        self._scripts = {
            name: self.client.register_script(script(name))
            for name in ("publish", "reserve", "ack", "extend", "retry", "dead_letter",
                         "purge", "purge_dead", "revoke")
        }
        self._known_queues: set[str] = set()
        self._publish_keys_cache: dict[str, list[bytes]] = {}
        self._cluster_turn = 0

    # -- keys ------------------------------------------------------------------------

    def _key(self, queue: str, name: str) -> str:
        return f"{{{self.namespace}:{queue}}}:{name}"

    def _keys(self, queue: str, *names: str) -> list[str]:
        return [self._key(queue, name) for name in names]

    def _publish_keys(self, queue: str) -> list[bytes]:
        """The publish script's keys for `queue`, encoded once: a single delay() is one
        script call, and building and encoding five key names was a tenth of its cost."""
        keys = self._publish_keys_cache.get(queue)
        if keys is None:
            keys = [k.encode() for k in self._keys(queue, "seq", "ready", "scheduled", "body",
                                                   "signal")]
            if len(self._publish_keys_cache) < 1024:  # queue names are few; never unbounded
                self._publish_keys_cache[queue] = keys
        return keys

    @property
    def _queues_key(self) -> str:
        return f"{self.namespace}:queues"

    def _call(self, action: Callable[[], T]) -> T:
        return call(action, self.url, "Redis")

    # -- producing -------------------------------------------------------------------

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        by_queue: dict[str, list[Envelope]] = defaultdict(list)
        for envelope in envelopes:
            by_queue[envelope.queue].append(envelope)
        new_queues = set(by_queue) - self._known_queues

        calls = []
        for queue, items in by_queue.items():
            args: list[Any] = []
            for e in items:  # bytes: redis-py sends them as they are, with no encoding step
                args += [e.id.encode(), b"%d" % e.priority,
                         b"" if e.eta is None else repr(e.eta).encode(), e.body]
            calls.append(("publish", self._publish_keys(queue), args))

        def send() -> None:
            self._run_scripts(calls)
            if new_queues:
                self.client.sadd(self._queues_key, *new_queues)
            confirm_replicated(self.client, self.target, "publish")

        self._retry_until(send, self.target.publish_timeout)
        self._known_queues |= new_queues

    def _retry_until(self, action: Callable[[], None], timeout: float) -> None:
        """Retry `action` while Redis is unreachable, up to `timeout` seconds."""
        retry_while_unavailable(lambda: self._call(action), timeout)

    # -- consuming -------------------------------------------------------------------

    def reserve(self, queues: Sequence[str], n: int, wait: float) -> list[Delivery]:
        if self.target.cluster:
            return reserve_loop(lambda: self._call(lambda: self._reserve_now(queues, n)),
                                lambda pause: self._call(partial(self._block, queues, pause)),
                                wait)
        # An idle worker sends its BLPOP and the reserve script in one pipeline: Redis runs
        # the script the moment the BLPOP returns, so a wake-up costs one round trip, not
        # two (enqueue-to-start latency). What the pipeline reserved is the next attempt's.
        woken: list[tuple[list[Delivery], float | None]] = []

        def attempt() -> tuple[list[Delivery], float | None]:
            if woken:
                return woken.pop()
            return self._call(lambda: self._reserve_now(queues, n))

        def sleep(pause: float) -> None:
            woken.append(self._call(partial(self._block_then_reserve, queues, n, pause)))

        return reserve_loop(attempt, sleep, wait)

    def _reserve_keys(self, group: Sequence[str]) -> list[str]:
        keys: list[str] = []
        for queue in group:
            keys += self._keys(queue, "ready", "scheduled", "leased", "body", "deliveries",
                               "dead", "reason")
        return keys

    def _block_then_reserve(self, queues: Sequence[str], n: int, pause: float
                            ) -> tuple[list[Delivery], float | None]:
        """BLPOP on the queues' signal lists, then the reserve script, in one pipeline (not
        on a cluster, whose keys span slots). The script goes by its SHA; if the server
        lost it (a restart), the reserve is done again the ordinary way, which loads it."""
        group = list(queues)
        keys = self._reserve_keys(group)
        pipe = self.client.pipeline(transaction=False)
        pipe.blpop([self._key(q, "signal") for q in queues], timeout=pause)
        pipe.evalsha(self._scripts["reserve"].sha, len(keys), *keys, n, self.lease_seconds)
        _, reply = pipe.execute(raise_on_error=False)
        if isinstance(reply, redis.exceptions.NoScriptError):
            return self._reserve_now(queues, n)
        if isinstance(reply, Exception):
            raise reply
        deliveries: list[Delivery] = []
        return deliveries, self._take_reply(group, reply, deliveries, None)

    def _reserve_now(self, queues: Sequence[str], n: int) -> tuple[list[Delivery], float | None]:
        groups = [list(queues)] if not self.target.cluster else [[q] for q in queues]
        deliveries: list[Delivery] = []
        next_due: float | None = None
        for group in groups:
            want = n - len(deliveries)
            if want <= 0:
                break
            reply = self._scripts["reserve"](keys=self._reserve_keys(group),
                                             args=[want, self.lease_seconds])
            next_due = self._take_reply(group, reply, deliveries, next_due)
        return deliveries, next_due

    def _take_reply(self, group: Sequence[str], reply: Any, deliveries: list[Delivery],
                    next_due: float | None) -> float | None:
        """Add what one reserve script call reserved to `deliveries`; return the earliest
        time something falls due, if the script said (it reserved nothing)."""
        if reply and int(reply[0]) == -1:
            due = _as_text(reply[1])
            if due and (next_due is None or float(due) < next_due):
                next_due = float(due)
            return next_due
        for i in range(0, len(reply), 4):
            queue, raw, fence = group[int(reply[i])], reply[i + 1], _as_text(reply[i + 3])
            try:
                ref = raw.decode() if isinstance(raw, bytes) else raw
            except UnicodeDecodeError:  # written by something else: it can't be acked
                self._scripts["dead_letter"](
                    keys=self._keys(queue, "leased", "deliveries", "dead", "reason"),
                    args=[raw, fence, "malformed queue entry: its reference is not UTF-8"])
                continue
            _, priority, task_id = ref.split("|", 2)  # reserve.lua checked the form
            deliveries.append(Delivery(id=task_id, queue=queue, priority=int(priority),
                                       body=reply[i + 2], receipt=ref, entry=ref,
                                       deliveries=int(fence.split(":")[0]), fence=fence))
        return next_due

    def _block(self, queues: Sequence[str], timeout: float) -> None:
        """On a cluster: sleep until something is published to one of `queues` (in turn,
        each its own slot), or `timeout` passes."""
        queue = queues[self._cluster_turn % len(queues)]
        self._cluster_turn += 1
        self.client.blpop([self._key(queue, "signal")], timeout=min(timeout, CLUSTER_POLL))

    def _per_queue(self, script: str, deliveries: Iterable[Delivery], names: tuple[str, ...],
                   head: Sequence[Any] = ()) -> None:
        by_queue: dict[str, list[Delivery]] = defaultdict(list)
        for d in deliveries:
            by_queue[d.queue].append(d)
        if not by_queue:
            return

        calls = []
        for queue, items in by_queue.items():
            args: list[Any] = list(head)
            for d in items:
                args += [d.receipt, d.fence]
            calls.append((script, self._keys(queue, *names), args))
        self._call(partial(self._run_scripts, calls))

    def _run_scripts(self, calls: Sequence[tuple[str, Sequence[str | bytes], Sequence[Any]]]
                     ) -> None:
        """Run script calls in one pipelined round trip; one call each on a cluster, where
        redis-py can't pipeline scripts (each touches a single slot anyway)."""
        if len(calls) == 1 or self.target.cluster:
            for name, keys, args in calls:
                self._scripts[name](keys=keys, args=args)
            return
        pipe = self.client.pipeline(transaction=False)
        for name, keys, args in calls:
            self._scripts[name](keys=keys, args=args, client=pipe)
        pipe.execute()

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        self._per_queue("extend", deliveries, ("leased", "deliveries"), [self.lease_seconds])

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        self._per_queue("ack", deliveries, ("leased", "body", "deliveries"))

    def retry(self, delivery: Delivery, body: bytes, at: float | None) -> None:
        keys = self._keys(delivery.queue, "ready", "scheduled", "leased", "body", "deliveries",
                          "signal")
        args = [delivery.receipt, delivery.fence, body, "" if at is None else repr(at)]
        self._call(lambda: self._scripts["retry"](keys=keys, args=args))

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        keys = self._keys(delivery.queue, "leased", "deliveries", "dead", "reason")
        args = [delivery.receipt, delivery.fence, reason]
        self._call(lambda: self._scripts["dead_letter"](keys=keys, args=args))

    # -- managing --------------------------------------------------------------------

    def _all_queues(self) -> list[str]:
        members = self._call(lambda: self.client.smembers(self._queues_key))
        return sorted({"default", *(_as_text(m) for m in members)})

    def purge(self, queue: str) -> int:
        keys = self._keys(queue, "ready", "scheduled", "body", "deliveries")
        return int(self._call(lambda: self._scripts["purge"](keys=keys)))

    def revoke(self, ids: Sequence[str]) -> list[Revoked]:
        """One script call over every queue (one per queue on a cluster, where each queue
        has its own slot), after reading the queue names."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        queues = self._all_queues()
        groups = [queues] if not self.target.cluster else [[q] for q in queues]
        removed: list[Revoked] = []
        for group in groups:
            keys: list[str] = []
            for queue in group:
                keys += self._keys(queue, "ready", "scheduled", "body", "deliveries")
            reply = self._call(partial(self._scripts["revoke"], keys=keys, args=wanted))
            removed += [Revoked(id=task_id_of(reply[i + 1]),
                                queue=group[int(reply[i])], body=reply[i + 2])
                        for i in range(0, len(reply), 3)]
        return removed

    def stats(self) -> dict[str, QueueStats]:
        queues = self._all_queues()
        now = time.time()

        def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for q in queues:
                pipe.zcard(self._key(q, "ready"))
                pipe.zcount(self._key(q, "scheduled"), "-inf", now)
                pipe.zcount(self._key(q, "scheduled"), f"({now}", "+inf")
                pipe.zcount(self._key(q, "leased"), "-inf", now)
                pipe.zcount(self._key(q, "leased"), f"({now}", "+inf")
                pipe.zcard(self._key(q, "dead"))
            return pipe.execute()  # type: ignore[no-any-return]

        counts = self._call(read)
        stats = {}
        for i, q in enumerate(queues):
            ready, due, scheduled, expired, running, dead = counts[i * 6:i * 6 + 6]
            stats[q] = QueueStats(ready=ready + due + expired, scheduled=scheduled,
                                  running=running, dead=dead)
        return stats

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        for q in [queue] if queue is not None else self._all_queues():
            letters += self._call(partial(self._dead_of, q, limit))
        letters.sort(key=lambda d: d.failed_at, reverse=True)
        return letters[:limit]

    def _dead_of(self, queue: str, limit: int) -> list[DeadLetter]:
        refs = self.client.zrevrange(self._key(queue, "dead"), 0, limit - 1, withscores=True)
        if not refs:
            return []
        names = [ref for ref, _ in refs]
        reasons = self.client.hmget(self._key(queue, "reason"), names)
        bodies = self.client.hmget(self._key(queue, "body"), names)
        return [
            DeadLetter(id=task_id_of(ref), queue=queue,
                       reason=_as_text(reason or b""), failed_at=float(score), body=body or b"")
            for (ref, score), reason, body in zip(refs, reasons, bodies, strict=True)
        ]

    def purge_dead(self, queue: str | None = None, ids: Sequence[str] | None = None) -> int:
        if ids is not None and not ids:
            return 0
        args = list(ids) if ids is not None else ["*"]
        total = 0
        for q in [queue] if queue is not None else self._all_queues():
            script = partial(self._scripts["purge_dead"],
                             keys=self._keys(q, "dead", "reason", "body"), args=args)
            total += int(self._call(script))
        return total

    def heartbeat(self, worker: WorkerInfo, ttl: float) -> None:
        """Record `worker`, and drop the entries of workers whose heartbeat expired (a
        SIGKILLed process never says goodbye)."""
        workers, info = f"{self.namespace}:workers", f"{self.namespace}:worker-info"

        def send() -> None:
            now = time.time()
            pipe = self.client.pipeline(transaction=False)
            pipe.zadd(workers, {worker.id: now + ttl})
            pipe.hset(info, worker.id, msgspec.json.encode(worker))
            pipe.zrangebyscore(workers, "-inf", now)
            gone = pipe.execute()[-1]
            if gone:
                pipe.hdel(info, *gone)
                pipe.zrem(workers, *gone)
                pipe.execute()

        self._call(send)

    def workers(self) -> list[WorkerInfo]:
        def read() -> list[WorkerInfo]:
            ids = self.client.zrangebyscore(f"{self.namespace}:workers", time.time(), "+inf")
            if not ids:
                return []
            infos = self.client.hmget(f"{self.namespace}:worker-info", ids)
            return sorted((_worker_decoder.decode(i) for i in infos if i), key=lambda w: w.id)

        return self._call(read)

    def forget_worker(self, worker_id: str) -> None:
        def send() -> None:
            pipe = self.client.pipeline(transaction=False)
            pipe.zrem(f"{self.namespace}:workers", worker_id)
            pipe.hdel(f"{self.namespace}:worker-info", worker_id)
            pipe.execute()

        self._call(send)

    def close(self) -> None:
        self.client.close()
