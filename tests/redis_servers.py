"""Redis servers for tests: the shared one, and ones the tests start and own on loopback.

Load as a plugin for the fixtures: `pytest_plugins = ["tests.redis_servers"]` in
tests/conftest.py (for every test) or in the test modules that use them. Its classes and
helpers may be imported anywhere, in any order: the marker PYTEST_DONT_REWRITE (its asserts
are only sanity checks) keeps pytest from warning that it was imported before it was named
as a plugin. The fixtures:

- `redis_namespace`: a fresh "t-<hex>" namespace per test.
- `redis_url`: the machine's Redis on 127.0.0.1:6379, DB 0, a fresh namespace whose keys
  are deleted afterwards (fails under CI=true when unreachable, skips elsewhere).
- `own_redis` (function): a `RedisServer` on its own port with append-only persistence,
  to `stop()`, `kill()`, `start()` and `restart()`; the data survives through the AOF.
- `make_redis` (function): a factory of more of those, `make_redis(*args, aof=True)`.
- `redis_cluster` (session): a `RedisClusterSetup`, three masters, no replicas.
- `redis_sentinel` (session): a `RedisSentinelSetup`, one master, one replica and three
  sentinels monitoring "conveyor-test", with `failover()`.
- `redis_tls` (session): a `RedisServer` that only speaks TLS, for `rediss://`.

Every server is a `redis-server --daemonize no` child in its own process group, in its own
directory, logging to `redis.log` there; teardown kills the group. Where `setpriv` is
installed the servers also die with the test process if that is killed outright.

This module needs no Redis client library: it speaks just enough RESP itself.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import pytest

HOST = "127.0.0.1"
SHARED_PORT = 6379
SENTINEL_MASTER_NAME = "conveyor-test"
REDIS_SERVER = shutil.which("redis-server") or "redis-server"
REDIS_CLI = shutil.which("redis-cli") or "redis-cli"
SETPRIV = shutil.which("setpriv")
# Ports the tests pick from: below Linux's ephemeral range (32768-60999), so an outgoing
# connection can't take one between the check and the server binding it.
PORT_RANGE = (20000, 32000)

RespValue = str | bytes | int | list[Any] | None


# --- A minimal RESP2 client, enough to drive and check the servers --------------------------


class RespError(Exception):
    """An error reply ("-ERR ...") from a server."""


def _encode(args: Sequence[str | bytes | int]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _read_reply(stream: BinaryIO) -> RespValue:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed mid-reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RespError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else stream.read(size + 2)[:-2]
    if kind == b"*":
        size = int(rest)
        return None if size < 0 else [_read_reply(stream) for _ in range(size)]
    raise RespError(f"unexpected reply {line!r}")


class RespConnection:
    """One connection to a server: `call(*args)` sends a command and returns its reply.

    Bulk strings come back as bytes, status replies as str, error replies raise RespError.
    """

    def __init__(self, port: int, *, host: str = HOST, timeout: float = 5.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            if ssl_context is not None:
                sock = ssl_context.wrap_socket(sock, server_hostname=host)
            self._stream = sock.makefile("rb")
        except BaseException:
            sock.close()
            raise
        self._sock = sock

    def call(self, *args: str | bytes | int) -> RespValue:
        self._sock.sendall(_encode(args))
        return _read_reply(self._stream)

    def close(self) -> None:
        self._stream.close()
        self._sock.close()

    def __enter__(self) -> RespConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def redis_command(port: int, *args: str | bytes | int, host: str = HOST, timeout: float = 5.0,
                  ssl_context: ssl.SSLContext | None = None) -> RespValue:
    """Run one command on a fresh connection and return the reply."""
    with RespConnection(port, host=host, timeout=timeout, ssl_context=ssl_context) as conn:
        return conn.call(*args)


def parse_info(text: bytes | str) -> dict[str, str]:
    """`INFO` (or `CLUSTER INFO`) text as a dict of its "key:value" lines."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith("#"):
            fields[key.strip()] = value.strip()
    return fields


def _pairs(reply: RespValue) -> dict[str, str]:
    """A flat [k1, v1, k2, v2, ...] reply (SENTINEL MASTER, SENTINEL REPLICAS) as a dict."""
    assert isinstance(reply, list), reply
    items = [x.decode() if isinstance(x, bytes) else str(x) for x in reply]
    return dict(zip(items[::2], items[1::2], strict=True))


def wait_for(predicate: Callable[[], object], timeout: float, what: str,
             interval: float = 0.02) -> None:
    """Poll `predicate` until it is truthy; errors from it count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            if predicate():
                return
        except (OSError, RespError, AssertionError) as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}"
                               + (f" (last error: {last!r})" if last else ""))
        time.sleep(interval)


def unique_namespace() -> str:
    return f"t-{uuid.uuid4().hex}"


def _with_namespace(base: str, namespace: str) -> str:
    return f"{base}?namespace={quote(namespace, safe='')}"


# --- Ports --------------------------------------------------------------------------------


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(exclude: set[int] | None = None) -> int:
    """A port nothing listens on now (binding it to check). The server may still lose a race
    for it, so starting a server retries with other ports on "Address already in use"."""
    taken = exclude or set()
    for _ in range(1000):
        port = random.randint(*PORT_RANGE)
        if port not in taken and port not in _RESERVED and port_is_free(port):
            _RESERVED.add(port)
            return port
    raise RuntimeError("no free port found")


# Ports handed out by this process, so two servers of one run never get the same one.
_RESERVED: set[int] = set()


class PortInUse(RuntimeError):
    """The server exited because one of its ports was taken."""


# --- One server ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSFiles:
    ca_cert: Path
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_cert))


class RedisServer:
    """A `redis-server` (or sentinel) child process on loopback, owned by the test.

    The ports are picked on the first `start()` and kept afterwards, as is `directory`, so a
    server started again keeps its address and its data (with append-only persistence).
    """

    host = HOST

    def __init__(self, directory: Path, args: Sequence[str] = (), *, name: str = "redis",
                 config: str | None = None, sentinel: bool = False, cluster: bool = False,
                 tls: TLSFiles | None = None) -> None:
        self.directory = directory
        self.name = name
        self.args = list(args)
        self.sentinel = sentinel
        self.cluster = cluster
        self.tls = tls
        self._config = config
        self.port = 0
        self.bus_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.log_file = directory / "redis.log"
        self._stdout_file = directory / "stdout.log"
        self._log_start: dict[Path, int] = {}

    # Addresses

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def url(self, namespace: str, db: int = 0) -> str:
        """`redis://127.0.0.1:PORT/DB?namespace=NS` (`rediss://...&ssl_ca_certs=CA` for TLS)."""
        if self.tls is None:
            return _with_namespace(f"redis://{self.host}:{self.port}/{db}", namespace)
        ca = quote(str(self.tls.ca_cert), safe="/")
        return _with_namespace(f"rediss://{self.host}:{self.port}/{db}", namespace) + (
            f"&ssl_ca_certs={ca}")

    # Control

    @property
    def config_file(self) -> Path:
        return self.directory / "redis.conf"

    def set_config(self, config: str | None) -> None:
        """The config file's text for the next start (args on the command line follow it)."""
        self._config = config
        self.config_file.unlink(missing_ok=True)

    def command_line(self) -> list[str]:
        argv = [REDIS_SERVER]
        if self._config is not None:
            if not self.config_file.exists():  # a sentinel rewrites it: keep that on restart
                self.config_file.write_text(self._config)
            argv.append(str(self.config_file))
        if self.sentinel:
            argv.append("--sentinel")
        argv += ["--bind", self.host, "--daemonize", "no", "--dir", str(self.directory),
                 "--logfile", str(self.log_file)]
        if self.tls is None:
            argv += ["--port", str(self.port)]
        else:
            argv += ["--port", "0", "--tls-port", str(self.port),
                     "--tls-cert-file", str(self.tls.cert), "--tls-key-file", str(self.tls.key),
                     "--tls-ca-cert-file", str(self.tls.ca_cert), "--tls-auth-clients", "no"]
        if not self.sentinel:
            argv += ["--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0",
                     "--enable-debug-command", "local"]
        if self.cluster:
            argv += ["--cluster-enabled", "yes", "--cluster-port", str(self.bus_port),
                     "--cluster-config-file", str(self.directory / "nodes.conf")]
        return argv + self.args

    def spawn(self) -> None:
        """Start the process without waiting for it (see `wait_ready`)."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        if not self.port:
            self.port = free_port()
            if self.cluster:
                self.bus_port = free_port()
        argv = self.command_line()
        if SETPRIV is not None:  # die with the test process even if it is SIGKILLed
            argv = [SETPRIV, "--pdeathsig", "KILL", *argv]
        self._log_start = {f: f.stat().st_size if f.exists() else 0
                           for f in (self._stdout_file, self.log_file)}
        with self._stdout_file.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        _LIVE.add(self)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until the server answers PING (not -LOADING); raise if it exited."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                self._reap()
                output = self.output(since_start=True)
                if "Address already in use" in output:
                    raise PortInUse(f"{self.name}: port {self.port} taken")
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{output}")
            try:
                if self.command("PING", timeout=0.5) == "PONG":
                    return
            except ssl.SSLCertVerificationError:
                self.kill()
                raise
            except (OSError, RespError):
                pass
            if time.monotonic() >= deadline:
                self.kill()
                raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{self.output()}")
            time.sleep(0.01)

    def start(self, timeout: float = 10.0) -> None:
        """Start and wait until it answers. The first start retries on other ports if one
        was taken; later starts reuse the same port (and directory, so the same data)."""
        first = not self.port
        for attempt in range(5):
            self.spawn()
            try:
                self.wait_ready(timeout)
                return
            except PortInUse:
                if not first or attempt == 4:
                    raise
                self.port = self.bus_port = 0

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (a clean shutdown: the AOF is flushed) and wait; SIGKILL after `timeout`."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._killpg()
        self._reap()

    def kill(self) -> None:
        """SIGKILL the whole process group (the server and any fork of it) and reap it."""
        if self.proc is None:
            return
        self._killpg()
        self._reap()

    def restart(self, timeout: float = 10.0) -> None:
        self.stop()
        self.start(timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.running and self.proc is not None else None

    # Talking to it

    def ssl_context(self) -> ssl.SSLContext | None:
        return None if self.tls is None else self.tls.client_context()

    def connect(self, timeout: float = 5.0) -> RespConnection:
        return RespConnection(self.port, timeout=timeout, ssl_context=self.ssl_context())

    def command(self, *args: str | bytes | int, timeout: float = 5.0) -> RespValue:
        return redis_command(self.port, *args, timeout=timeout, ssl_context=self.ssl_context())

    def info(self, section: str = "all") -> dict[str, str]:
        reply = self.command("INFO", section)
        assert isinstance(reply, bytes), reply
        return parse_info(reply)

    def output(self, lines: int = 40, since_start: bool = False) -> str:
        """The last `lines` of what the server printed before opening its log, then of its
        log; of this run only with `since_start`."""
        parts = []
        for path in (self._stdout_file, self.log_file):
            if path.exists():
                with path.open("rb") as f:
                    f.seek(self._log_start.get(path, 0) if since_start else 0)
                    parts.append(f.read().decode(errors="replace"))
        return "\n".join("".join(parts).splitlines()[-lines:])

    # Internals

    def _killpg(self) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _reap(self) -> None:
        assert self.proc is not None
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self._killpg()
            self.proc.wait(10)
        self._killpg()  # anything it forked (a rewrite, a diskless sync) goes with it
        _LIVE.discard(self)

    def __repr__(self) -> str:
        return f"<RedisServer {self.name} {self.host}:{self.port} pid={self.pid}>"


# Every server started and not yet reaped, for a last sweep.
_LIVE: set[RedisServer] = set()


def kill_all(servers: Sequence[RedisServer]) -> None:
    for server in servers:
        try:
            server.kill()
        except Exception:  # teardown kills the rest whatever one did
            pass


def start_all(servers: Sequence[RedisServer], timeout: float = 10.0) -> None:
    """Start several servers in parallel; kills them all if any fails to start."""
    try:
        for server in servers:
            server.spawn()
        for server in servers:
            try:
                server.wait_ready(timeout)
            except PortInUse:
                server.port = server.bus_port = 0
                server.start(timeout)
    except BaseException:
        kill_all(servers)
        raise


# --- Redis Cluster ------------------------------------------------------------------------


JOIN_TIMEOUT_MS = 500


class RedisClusterSetup:
    """A Redis Cluster of `masters` masters (no replicas) on loopback."""

    def __init__(self, directory: Path, masters: int = 3, node_timeout_ms: int = 5000) -> None:
        self.directory = directory
        self.node_timeout_ms = node_timeout_ms
        # A short node timeout while joining: nodes ping each other every half of it, so they
        # learn of each other in well under a second; `start()` then sets the real one.
        self.nodes = [
            RedisServer(directory / f"node{i}", ["--cluster-node-timeout", str(JOIN_TIMEOUT_MS)],
                        name=f"cluster-node{i}", cluster=True)
            for i in range(masters)
        ]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [node.address for node in self.nodes]

    def url(self, namespace: str) -> str:
        """`redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/?namespace=NS`"""
        hosts = ",".join(f"{host}:{port}" for host, port in self.addresses)
        return _with_namespace(f"redis+cluster://{hosts}/", namespace)

    def start(self, timeout: float = 30.0) -> None:
        start_all(self.nodes)
        try:
            created = subprocess.run(
                [REDIS_CLI, "--cluster", "create",
                 *(f"{host}:{port}" for host, port in self.addresses),
                 "--cluster-replicas", "0", "--cluster-yes"],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
            )
            if created.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}"
                                   f"{created.stderr}")
            self.wait_ok(timeout)
            for node in self.nodes:
                node.command("CONFIG", "SET", "cluster-node-timeout", self.node_timeout_ms)
        except BaseException:
            self.stop()
            raise

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every node says cluster_state:ok and knows all the others."""
        def ok() -> bool:
            for node in self.nodes:
                reply = node.command("CLUSTER", "INFO")
                assert isinstance(reply, bytes)
                info = parse_info(reply)
                if info.get("cluster_state") != "ok" or \
                        info.get("cluster_known_nodes") != str(len(self.nodes)) or \
                        info.get("cluster_slots_ok") != "16384":
                    return False
            return True

        wait_for(ok, timeout, "cluster_state:ok on every node")

    def flush(self) -> None:
        """Empty every node (FLUSHALL)."""
        for node in self.nodes:
            node.command("FLUSHALL")

    def stop(self) -> None:
        kill_all(self.nodes)


# --- Redis Sentinel -----------------------------------------------------------------------


SENTINEL_CONFIG = """\
sentinel monitor {name} {host} {port} {quorum}
sentinel down-after-milliseconds {name} {down_after_ms}
sentinel failover-timeout {name} {failover_timeout_ms}
sentinel parallel-syncs {name} 1
"""


class RedisSentinelSetup:
    """One master, `replicas` replicas and `sentinels` sentinels watching `master_name`."""

    def __init__(self, directory: Path, *, master_name: str = SENTINEL_MASTER_NAME,
                 replicas: int = 1, sentinels: int = 3, down_after_ms: int = 2000,
                 failover_timeout_ms: int = 10000) -> None:
        self.directory = directory
        self.master_name = master_name
        self.quorum = sentinels // 2 + 1
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.servers = [RedisServer(directory / f"redis{i}", name=f"sentinel-redis{i}")
                        for i in range(replicas + 1)]
        self.sentinels = [RedisServer(directory / f"sentinel{i}", name=f"sentinel{i}",
                                      sentinel=True) for i in range(sentinels)]

    # Addresses

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [s.address for s in self.sentinels]

    def url(self, namespace: str, db: int = 0) -> str:
        """`redis+sentinel://127.0.0.1:S1,...,127.0.0.1:S3/conveyor-test/DB?namespace=NS`"""
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinel_addresses)
        return _with_namespace(f"redis+sentinel://{hosts}/{self.master_name}/{db}", namespace)

    def master_address(self, sentinel: RedisServer | None = None) -> tuple[str, int]:
        """The master's address as a sentinel (by default the first) reports it."""
        reply = (sentinel or self.sentinels[0]).command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
        assert isinstance(reply, list) and len(reply) == 2, reply
        host, port = (x.decode() if isinstance(x, bytes) else str(x) for x in reply)
        return host, int(port)

    def master(self) -> RedisServer:
        """The data server the sentinels currently name as master."""
        return self._server_at(self.master_address())

    def replicas(self) -> list[RedisServer]:
        master = self.master()
        return [s for s in self.servers if s is not master]

    # Life

    def start(self, timeout: float = 30.0) -> None:
        master, *replicas = self.servers
        try:
            start_all([master])
            for replica in replicas:
                replica.args = ["--replicaof", master.host, str(master.port)]
            start_all(replicas)
            self._start_sentinels(master, replicas)
            self.wait_healthy(master, timeout)
        except BaseException:
            self.stop()
            raise

    def _start_sentinels(self, master: RedisServer, replicas: list[RedisServer]) -> None:
        """Start the sentinels already knowing each other and the replicas (as their own
        rewritten config would say), rather than learning it from messages sent every 2 s
        (hello) and 10 s (INFO)."""
        for attempt in range(5):
            ids = [uuid.uuid4().hex + uuid.uuid4().hex[:8] for _ in self.sentinels]
            for sentinel in self.sentinels:
                sentinel.port = free_port()
            for sentinel, myid in zip(self.sentinels, ids, strict=True):
                sentinel.set_config(self._sentinel_config(master, replicas, myid, ids))
            for sentinel in self.sentinels:
                sentinel.spawn()
            try:
                for sentinel in self.sentinels:
                    sentinel.wait_ready()
                return
            except PortInUse:  # the others were told this port: start them all again
                kill_all(self.sentinels)
                if attempt == 4:
                    raise

    def _sentinel_config(self, master: RedisServer, replicas: list[RedisServer], myid: str,
                         ids: list[str]) -> str:
        config = SENTINEL_CONFIG.format(
            name=self.master_name, host=master.host, port=master.port, quorum=self.quorum,
            down_after_ms=self.down_after_ms, failover_timeout_ms=self.failover_timeout_ms)
        config += f"sentinel myid {myid}\n"
        for replica in replicas:
            config += f"sentinel known-replica {self.master_name} {replica.host} {replica.port}\n"
        for other, other_id in zip(self.sentinels, ids, strict=True):
            if other_id != myid:
                config += (f"sentinel known-sentinel {self.master_name} {other.host} "
                           f"{other.port} {other_id}\n")
        return config

    def stop(self) -> None:
        kill_all([*self.sentinels, *self.servers])

    def wait_healthy(self, master: RedisServer | None = None, timeout: float = 30.0) -> None:
        """Until every sentinel names `master` (default: what they report now), knows the
        other sentinels and sees every replica up and in sync, and the replicas say so too."""
        master = master or self.master()
        wait_for(lambda: self._healthy(master), timeout,
                 f"a healthy sentinel set-up with master {master.port}", interval=0.05)

    def failover(self, timeout: float = 30.0) -> tuple[str, int]:
        """Force a failover (SENTINEL FAILOVER) and wait until every sentinel reports the new
        master, the new master says it is one, and the old master replicates from it.
        Returns the new master's address."""
        self.wait_healthy(timeout=timeout)
        old = self.master()
        sentinel = self.sentinels[0]

        def started() -> bool:
            try:
                return sentinel.command("SENTINEL", "FAILOVER", self.master_name) == "OK"
            except RespError as exc:  # -NOGOODSLAVE until it has seen a replica fresh enough
                if "INPROG" in str(exc):
                    return True
                raise

        wait_for(started, timeout, "SENTINEL FAILOVER to be accepted", interval=0.1)

        def switched() -> bool:
            addresses = {self.master_address(s) for s in self.sentinels}
            return len(addresses) == 1 and addresses != {old.address}

        wait_for(switched, timeout, "every sentinel to report the new master", interval=0.05)
        new = self.master()
        wait_for(lambda: new.info("replication")["role"] == "master", timeout,
                 "the new master to be one")
        # Sentinel converts the old master only after 8 s; do what it would do, at once, so
        # no client writes to the old master and the next failover has a replica to promote.
        if old.running and old.info("replication").get("role") == "master":
            old.command("REPLICAOF", new.host, new.port)
        self.wait_healthy(new, timeout)
        return new.address

    # Internals

    def _server_at(self, address: tuple[str, int]) -> RedisServer:
        for server in self.servers:
            if server.address == address:
                return server
        raise LookupError(f"no server of this set-up at {address}")

    def _healthy(self, master: RedisServer) -> bool:
        replicas = [s for s in self.servers if s is not master]
        if master.info("replication").get("role") != "master":
            return False
        for replica in replicas:
            info = replica.info("replication")
            if info.get("role") != "slave" or info.get("master_port") != str(master.port) \
                    or info.get("master_link_status") != "up":
                return False
        for sentinel in self.sentinels:
            if not self._sentinel_sees(sentinel, master, replicas):
                return False
        return True

    def _sentinel_sees(self, sentinel: RedisServer, master: RedisServer,
                       replicas: list[RedisServer]) -> bool:
        state = _pairs(sentinel.command("SENTINEL", "MASTER", self.master_name))
        if (state["ip"], int(state["port"])) != master.address or state["flags"] != "master":
            return False
        if int(state["num-other-sentinels"]) != len(self.sentinels) - 1:
            return False
        seen = sentinel.command("SENTINEL", "REPLICAS", self.master_name)
        assert isinstance(seen, list)
        # Up and connected is what a failover needs of a replica. (Its master-link-status
        # here comes from an INFO the sentinel sends only every 10 s: the replicas are asked.)
        good = set()
        for entry in seen:
            fields = _pairs(entry)
            if fields["flags"] == "slave":
                good.add((fields["ip"], int(fields["port"])))
        return good >= {r.address for r in replicas}


# --- TLS ----------------------------------------------------------------------------------


def make_tls_files(directory: Path) -> TLSFiles:
    """A throw-away CA and a server certificate for 127.0.0.1 and localhost (openssl CLI)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.crt"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "server.ext"
    # Python 3.13's default context checks strictly (X509_STRICT): key identifiers needed.
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                   "basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n"
                   "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for argv in (
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca_cert, "-days", "2",
         "-subj", "/CN=conveyor test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext],
    ):
        done = subprocess.run(["openssl", *map(str, argv)], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"openssl {argv[0]} failed:\n{done.stderr}")
    return TLSFiles(ca_cert=ca_cert, cert=cert, key=key)


# --- Fixtures -----------------------------------------------------------------------------


def delete_namespace(port: int, namespace: str, host: str = HOST) -> int:
    """Delete every key whose name contains `namespace`; returns how many."""
    deleted = 0
    with RespConnection(port, host=host) as conn:
        cursor: bytes | str = "0"
        while True:
            reply = conn.call("SCAN", cursor, "MATCH", f"*{namespace}*", "COUNT", 1000)
            assert isinstance(reply, list), reply
            cursor, keys = reply
            if keys:
                result = conn.call("UNLINK", *keys)
                assert isinstance(result, int)
                deleted += result
            if cursor in (b"0", "0"):
                return deleted


def require_redis_binaries() -> None:
    """Fail under CI=true, skip elsewhere, when redis-server or redis-cli isn't installed."""
    missing = [name for name in ("redis-server", "redis-cli") if shutil.which(name) is None]
    if missing:
        message = f"{' and '.join(missing)} not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def redis_namespace() -> str:
    """A namespace no other test uses: "t-<32 hex digits>"."""
    return unique_namespace()


@pytest.fixture
def redis_url(redis_namespace: str) -> Iterator[str]:
    """The shared Redis on 127.0.0.1:6379, DB 0, in a fresh namespace deleted afterwards."""
    from tests.conftest import require_service  # here: conftest may import this module

    require_service(HOST, SHARED_PORT, "Redis")
    yield _with_namespace(f"redis://{HOST}:{SHARED_PORT}/0", redis_namespace)
    delete_namespace(SHARED_PORT, redis_namespace)


AOF_ARGS = ("--appendonly", "yes", "--appendfsync", "always", "--save", "")


@pytest.fixture
def make_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """A factory of running redis-servers of this test's own, killed after it:
    `make_redis(*extra_args, aof=True)`, append-only with fsync always unless aof=False."""
    require_redis_binaries()
    made: list[RedisServer] = []

    def make(*args: str, aof: bool = True) -> RedisServer:
        server = RedisServer(tmp_path / f"redis{len(made)}", [*(AOF_ARGS if aof else ()), *args],
                             name=f"own-redis{len(made)}")
        made.append(server)
        server.start()
        return server

    try:
        yield make
    finally:
        kill_all(made)


@pytest.fixture
def own_redis(make_redis: Callable[..., RedisServer]) -> RedisServer:
    """A redis-server of this test's own, append-only (fsync always), running."""
    return make_redis()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterSetup]:
    """A 3-master Redis Cluster for the whole session (don't kill its nodes)."""
    require_redis_binaries()
    cluster = RedisClusterSetup(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinelSetup]:
    """Master, replica and three sentinels for the whole session; `failover()` swaps roles."""
    require_redis_binaries()
    setup = RedisSentinelSetup(tmp_path_factory.mktemp("redis-sentinel"))
    try:
        setup.start()
        yield setup
    finally:
        setup.stop()


@pytest.fixture(scope="session")
def redis_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server speaking only TLS; `url(ns)` is rediss://...&ssl_ca_certs=CA."""
    require_redis_binaries()
    directory = tmp_path_factory.mktemp("redis-tls")
    server = RedisServer(directory / "server", name="redis-tls",
                         tls=make_tls_files(directory / "certs"))
    try:
        server.start()
        yield server
    finally:
        server.kill()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Last sweep: kill any server a fixture somehow left running."""
    kill_all(list(_LIVE))
