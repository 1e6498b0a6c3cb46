"""The Redis server fixtures work: checked with redis-py, as the broker will use them."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests import redis_servers
from tests.conftest import require_service
from tests.redis_servers import (
    RedisClusterSetup,
    RedisSentinelSetup,
    RedisServer,
    delete_namespace,
    parse_info,
    unique_namespace,
    wait_for,
)

pytest_plugins = ["tests.redis_servers"]

redis = pytest.importorskip("redis")
redis_cluster_module = pytest.importorskip("redis.cluster")
redis_sentinel_module = pytest.importorskip("redis.sentinel")


def no_retry() -> redis.retry.Retry:
    """redis-py retries a failed command with backoff by default: not where a test wants
    the failure."""
    return redis.retry.Retry(redis.backoff.NoBackoff(), 0)


def client_for(url: str) -> redis.Redis:
    """A redis-py client for a plain `redis://HOST:PORT/DB?namespace=...` URL."""
    parts = urlsplit(url)
    assert parts.scheme == "redis" and parts.hostname and parts.port
    return redis.Redis(host=parts.hostname, port=parts.port, db=int(parts.path.strip("/")),
                       socket_timeout=5, retry=no_retry())


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


# --- The shared server --------------------------------------------------------------------


def test_redis_url_is_the_shared_server_with_a_fresh_namespace(redis_url: str) -> None:
    parts = urlsplit(redis_url)
    assert (parts.scheme, parts.hostname, parts.port, parts.path) == (
        "redis", "127.0.0.1", 6379, "/0")
    (namespace,) = parse_qs(parts.query)["namespace"]
    assert namespace.startswith("t-") and len(namespace) == 34
    client = client_for(redis_url)
    try:
        client.set(f"{{{namespace}:queue}}:ready", b"x")
        assert client.get(f"{{{namespace}:queue}}:ready") == b"x"
    finally:
        client.close()


def test_a_namespace_is_deleted_and_nothing_else() -> None:
    require_service("127.0.0.1", 6379, "Redis")
    namespace, other = unique_namespace(), unique_namespace()
    client = redis.Redis(port=6379, socket_timeout=5)
    try:
        keys = [f"{{{namespace}:queue}}:ready", f"{namespace}:result:1", f"x:{namespace}"]
        for key in [*keys, f"{other}:keep"]:
            client.set(key, b"1")
        assert delete_namespace(6379, namespace) == len(keys)
        assert client.exists(*keys) == 0
        assert client.get(f"{other}:keep") == b"1"
    finally:
        client.delete(f"{other}:keep")
        client.close()


# --- A server of the test's own -----------------------------------------------------------


def test_own_redis_keeps_its_data_through_sigkill_and_start(own_redis: RedisServer) -> None:
    client = client_for(own_redis.url("ns"))
    try:
        client.set("{ns:queue}:ready", b"survives")
        first_pid = own_redis.pid
        assert first_pid is not None
        own_redis.kill()
        assert not own_redis.running and gone(first_pid) and refused(own_redis.port)
        with pytest.raises(redis.ConnectionError):
            client.get("{ns:queue}:ready")
        own_redis.start()
        assert own_redis.pid not in (None, first_pid)
        assert client.get("{ns:queue}:ready") == b"survives"  # reconnects: same port
    finally:
        client.close()


def test_own_redis_stop_restart_and_url(own_redis: RedisServer) -> None:
    assert own_redis.url("t-1") == f"redis://127.0.0.1:{own_redis.port}/0?namespace=t-1"
    assert own_redis.info("persistence")["aof_enabled"] == "1"
    client = client_for(own_redis.url("t-1", db=2))
    try:
        client.set("k", b"v")
        own_redis.restart()
        assert client.get("k") == b"v"
        own_redis.stop()
        assert not own_redis.running and refused(own_redis.port)
        own_redis.start()
        assert client.get("k") == b"v"
    finally:
        client.close()


def test_make_redis_gives_separate_servers(make_redis: Callable[..., RedisServer]) -> None:
    first, second = make_redis(), make_redis(aof=False)
    assert first.port != second.port and first.directory != second.directory
    assert second.info("persistence")["aof_enabled"] == "0"


def test_a_taken_port_is_retried_elsewhere(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        real = redis_servers.free_port
        ports = iter([busy])
        monkeypatch.setattr(redis_servers, "free_port",
                            lambda exclude=None: next(ports, None) or real(exclude))
        server = RedisServer(tmp_path / "r")
        try:
            server.start()
            assert server.port not in (0, busy)
            assert server.command("PING") == "PONG"
        finally:
            server.kill()
    assert server.proc is not None and gone(server.proc.pid)


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "r", ["--no-such-option", "1"])
    with pytest.raises(RuntimeError, match="no-such-option"):
        server.start()
    assert not server.running


# --- Cluster ------------------------------------------------------------------------------


@pytest.fixture
def cluster_client(redis_cluster: RedisClusterSetup) -> Iterator[redis.cluster.RedisCluster]:
    nodes = [redis_cluster_module.ClusterNode(host, port)
             for host, port in redis_cluster.addresses]
    client = redis_cluster_module.RedisCluster(startup_nodes=nodes, socket_timeout=5)
    try:
        yield client
    finally:
        client.close()


def test_cluster_url(redis_cluster: RedisClusterSetup) -> None:
    ports = [node.port for node in redis_cluster.nodes]
    assert len(set(ports)) == 3
    assert redis_cluster.url("t-1") == (
        "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports) + "/?namespace=t-1")
    for node in redis_cluster.nodes:
        info = parse_info(node.command("CLUSTER", "INFO"))  # type: ignore[arg-type]
        assert info["cluster_state"] == "ok" and info["cluster_size"] == "3"


def test_cluster_takes_keys_in_every_slot_range(
        cluster_client: redis.cluster.RedisCluster, redis_namespace: str) -> None:
    keys = [f"{redis_namespace}:{i}" for i in range(30)]
    owners = {cluster_client.get_node_from_key(key).port for key in keys}
    assert len(owners) == 3  # thirty keys land on all three masters
    for key in keys:
        cluster_client.set(key, key.encode())
    assert [cluster_client.get(key) for key in keys] == [key.encode() for key in keys]


def test_cluster_hash_tag_keeps_a_queue_in_one_slot(
        cluster_client: redis.cluster.RedisCluster, redis_namespace: str) -> None:
    tag = f"{{{redis_namespace}:queue:default}}"
    ready, delayed = f"{tag}:ready", f"{tag}:delayed"
    assert cluster_client.keyslot(ready) == cluster_client.keyslot(delayed)
    pipe = cluster_client.pipeline(transaction=True)
    pipe.rpush(ready, b"a", b"b")
    pipe.zadd(delayed, {b"c": 1.0})
    pipe.execute()
    moved = cluster_client.eval(
        "local m = redis.call('ZRANGE', KEYS[2], 0, -1) "
        "for _, v in ipairs(m) do redis.call('RPUSH', KEYS[1], v) end "
        "redis.call('DEL', KEYS[2]) return #m", 2, ready, delayed)
    assert moved == 1
    assert cluster_client.lrange(ready, 0, -1) == [b"a", b"b", b"c"]


# --- Sentinel -----------------------------------------------------------------------------


@pytest.fixture
def sentinel_client(
        redis_sentinel: RedisSentinelSetup) -> Iterator[redis.sentinel.Sentinel]:
    client = redis_sentinel_module.Sentinel(redis_sentinel.sentinel_addresses,
                                            socket_timeout=5)
    try:
        yield client
    finally:
        for connection in client.sentinels:
            connection.close()


def test_sentinel_url(redis_sentinel: RedisSentinelSetup) -> None:
    hosts = ",".join(f"127.0.0.1:{s.port}" for s in redis_sentinel.sentinels)
    assert len(redis_sentinel.sentinels) == 3
    assert redis_sentinel.url("t-1") == (
        f"redis+sentinel://{hosts}/conveyor-test/0?namespace=t-1")
    assert redis_sentinel.url("t-1", db=3).endswith("/conveyor-test/3?namespace=t-1")


def test_sentinel_discovery_and_failover(redis_sentinel: RedisSentinelSetup,
                                         sentinel_client: redis.sentinel.Sentinel,
                                         redis_namespace: str) -> None:
    name = redis_sentinel.master_name
    before = sentinel_client.discover_master(name)
    assert before == redis_sentinel.master_address() == redis_sentinel.master().address
    assert len(sentinel_client.discover_slaves(name)) == 1
    master = sentinel_client.master_for(name, socket_timeout=5, retry=no_retry())
    try:
        master.set(f"{redis_namespace}:before", b"1")
        assert master.wait(1, 5000) == 1  # on the replica too, before the failover

        started = time.monotonic()
        after = redis_sentinel.failover()
        took = time.monotonic() - started

        assert after != before and sentinel_client.discover_master(name) == after
        assert redis_sentinel.replicas()[0].address == before  # the old master follows
        # The client's connection to the old master fails once (READONLY), then it asks the
        # sentinels again and writes to the new master.
        with pytest.raises(redis.ConnectionError, match="previous master is now a slave"):
            master.set(f"{redis_namespace}:after", b"2")
        master.set(f"{redis_namespace}:after", b"2")
        assert master.get(f"{redis_namespace}:before") == b"1"
        assert master.connection_pool.get_master_address() == after
        assert took < 15, took
    finally:
        master.close()


def test_sentinel_failover_again_and_back(redis_sentinel: RedisSentinelSetup,
                                          sentinel_client: redis.sentinel.Sentinel) -> None:
    first = redis_sentinel.master_address()
    second = redis_sentinel.failover()
    assert redis_sentinel.failover() == first != second
    master = sentinel_client.master_for(redis_sentinel.master_name, socket_timeout=5)
    try:
        assert master.ping()
        assert master.info("replication")["role"] == "master"
    finally:
        master.close()


# --- TLS ----------------------------------------------------------------------------------


def test_tls_server_speaks_only_tls(redis_tls: RedisServer, redis_namespace: str) -> None:
    assert redis_tls.tls is not None
    url = redis_tls.url(redis_namespace)
    assert url.startswith(f"rediss://127.0.0.1:{redis_tls.port}/0?namespace={redis_namespace}")
    client = redis.Redis(port=redis_tls.port, ssl=True, socket_timeout=5,
                         ssl_ca_certs=str(redis_tls.tls.ca_cert))
    plain = redis.Redis(port=redis_tls.port, socket_timeout=2, retry=no_retry())
    try:
        assert client.set(f"{redis_namespace}:k", b"v") and client.get(f"{redis_namespace}:k")
        with pytest.raises(redis.ConnectionError):
            plain.ping()
    finally:
        client.close()
        plain.close()
    # redis-py reads the same URL, less our namespace.
    from_url = redis.Redis.from_url(url.replace(f"namespace={redis_namespace}&", ""))
    try:
        assert from_url.get(f"{redis_namespace}:k") == b"v"
    finally:
        from_url.close()


# --- Nothing left behind ------------------------------------------------------------------


def test_servers_die_with_their_group(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "r", ["--appendonly", "yes"])
    server.start()
    pid = server.pid
    assert pid is not None
    server.command("BGREWRITEAOF")  # a forked child in the group, if it is quick enough
    server.kill()
    assert gone(pid) and not redis_servers._LIVE.intersection({server})
    wait_for(lambda: refused(server.port), 5, "the port to close")
