"""Tasks for benchmarks/profile/run.py: a no-op and one Redis round trip (an INCR on a
connection of the task's own, one per thread), on Redis DB 14."""

from __future__ import annotations

import os
import threading

import redis

from conveyor import App

URL = os.environ.get("PROFILE_REDIS", "redis://127.0.0.1:6379/14")
app = App("profile", broker=f"{URL}?namespace=profile")
_local = threading.local()


def _client() -> redis.Redis:
    client: redis.Redis | None = getattr(_local, "client", None)
    if client is None:
        client = _local.client = redis.Redis.from_url(URL)
    return client


@app.task
def roundtrip() -> None:
    _client().incr("profile:counter")


@app.task
def noop() -> None:
    return None
