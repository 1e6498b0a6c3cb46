"""Shared fixtures: a fresh store per test, brokers by name, and real worker processes.

A test that needs a network service it can't reach fails under CI=true and skips with
the reason elsewhere (`require_service`).
"""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conveyor.backends.memory import MemoryBroker, MemoryCoordination, MemoryResultStore
from conveyor.backends.sqlite import SQLiteBroker, SQLiteCoordination, SQLiteResultStore
from conveyor.broker import Broker
from conveyor.store import Coordination, ResultStore

pytest_plugins = ["tests.redis_servers"]

ROOT = Path(__file__).resolve().parent.parent
TASKS_MODULE = Path(__file__).resolve().parent / "worker" / "e2e_tasks.py"
BROKERS = ["memory", "sqlite", "redis", "redis-tls", "redis-cluster", "redis-sentinel"]
# RabbitMQ is a broker only: no results, no coordination. amqp-quorum: its quorum queues.
BROKER_KINDS = [*BROKERS, "amqp", "amqp-quorum"]
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
AMQP_HOST, AMQP_PORT = "127.0.0.1", 5672


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test` runs two processes) the Django tests all go to one
    process, in file order: they share one configured Django, its test database and the
    in-process worker their fixtures start, so splitting them would race on those."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    django_tests = Path(__file__).resolve().parent / "django"
    for item in items:
        if django_tests in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.xdist_group("django"))


def redis_namespace_url() -> str:
    """The machine's Redis, with a namespace no other test uses."""
    require_service(REDIS_HOST, REDIS_PORT, "Redis")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0?namespace=t-{uuid.uuid4().hex[:12]}"


def redis_url_for(request: pytest.FixtureRequest, kind: str) -> str:
    """A fresh-namespace URL of one kind of Redis set-up; servers the tests start are
    session fixtures of tests/redis_servers.py, fetched only when a test asks."""
    namespace = f"t-{uuid.uuid4().hex[:12]}"
    if kind == "redis":
        return redis_namespace_url()
    if kind == "redis-tls":
        return str(request.getfixturevalue("redis_tls").url(namespace))
    if kind == "redis-cluster":
        return str(request.getfixturevalue("redis_cluster").url(namespace))
    if kind == "redis-sentinel":
        return str(request.getfixturevalue("redis_sentinel").url(namespace))
    return ""


def drop_namespace(url: str) -> None:
    import redis

    namespace = url.rpartition("namespace=")[2]
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        keys = list(client.scan_iter(match=f"*{namespace}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def require_service(host: str, port: int, name: str) -> None:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        message = f"{name} is not reachable on {host}:{port} ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'conveyor.db'}"


class Clock:
    """The wall clock of the stores a contract test runs against. The in-process ones
    (memory, SQLite) read a fake one, so `advance()` moves their time at once: leases,
    schedules and TTLs run out without waiting. The others read the real clock (Redis
    its server's), so `advance()` sleeps."""

    IN_PROCESS = ("memory", "sqlite")

    def __init__(self, kind: str) -> None:
        self.fake = kind in self.IN_PROCESS
        self._now = time.time()

    def time(self) -> float:
        return self._now if self.fake else time.time()

    def advance(self, seconds: float) -> None:
        if self.fake:
            self._now += seconds
        else:
            time.sleep(seconds)


STORE_FIXTURES = ("make_broker", "result_store", "coordination")


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> Clock:
    """The clock of the store kind this test runs against (see `Clock`)."""
    params = getattr(request.node, "callspec", None)
    given = params.params if params is not None else {}
    kind = next((str(v) for k, v in given.items() if k in STORE_FIXTURES), "real")
    return Clock(kind)


@pytest.fixture(scope="session")
def amqp_vhost() -> Iterator[str]:
    """A RabbitMQ vhost of this test run's own, deleted after it (guest has its rights)."""
    require_service(AMQP_HOST, AMQP_PORT, "RabbitMQ")
    vhost = f"conveyor-test-{uuid.uuid4().hex[:10]}"
    for args in (["add_vhost", vhost], ["set_permissions", "-p", vhost, "guest", ".*", ".*",
                                       ".*"]):
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True,
                       timeout=120)
    yield vhost
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True,
                   timeout=120)


def amqp_url_for(request: pytest.FixtureRequest) -> str:
    """The run's vhost, with a namespace no other test uses."""
    vhost = request.getfixturevalue("amqp_vhost")
    return (f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{vhost}"
            f"?namespace=t-{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=BROKER_KINDS)
def make_broker(request: pytest.FixtureRequest, tmp_path: Path,
                clock: Clock) -> Iterator[Callable[..., Broker]]:
    """A factory of brokers of one kind sharing one store: `make_broker(lease_seconds=1)`."""
    made: list[Broker] = []
    kind: str = request.param
    memory: list[MemoryBroker] = []
    redis_url = redis_url_for(request, kind)
    amqp_url = amqp_url_for(request) if kind.startswith("amqp") else ""
    if kind == "amqp-quorum":
        amqp_url += "&queue_type=quorum"

    def make(lease_seconds: float = 30.0) -> Broker:
        broker: Broker
        if kind == "memory":
            # One in-process store: extra "connections" share it, as clients of a server do.
            if not memory:
                memory.append(MemoryBroker(lease_seconds=lease_seconds, clock=clock.time))
            broker = memory[0]
            broker.lease_seconds = lease_seconds
        elif kind.startswith("redis"):
            from conveyor.backends.redis import RedisBroker

            broker = RedisBroker(redis_url, lease_seconds)
        elif kind.startswith("amqp"):
            from conveyor.backends.amqp.broker import AmqpBroker

            broker = AmqpBroker(amqp_url, lease_seconds)
        else:
            broker = SQLiteBroker(f"sqlite:///{tmp_path / 'broker.db'}", lease_seconds,
                                  clock=clock.time)
        made.append(broker)
        return broker

    make.kind = kind  # type: ignore[attr-defined]
    yield make
    for broker in made:
        broker.close()
    if kind == "redis":
        drop_namespace(redis_url)


@pytest.fixture
def broker(make_broker: Callable[..., Broker]) -> Broker:
    return make_broker()


def store_of_kind(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock,
                  classes: tuple[type, type, str]) -> Iterator[Any]:
    """A result store or coordination store of the kind `request.param` names: `classes`
    are its memory class, SQLite class and the name of its class in the Redis backend."""
    memory, sqlite, redis_name = classes
    url = ""
    if request.param == "memory":
        store = memory(clock=clock.time)
    elif request.param.startswith("redis"):
        from conveyor.backends import redis

        url = redis_url_for(request, request.param)
        store = getattr(redis, redis_name)(url)
    else:
        store = sqlite(f"sqlite:///{tmp_path / 'results.db'}", clock=clock.time)
    yield store
    store.close()
    if request.param == "redis":
        drop_namespace(url)


@pytest.fixture(params=BROKERS)
def result_store(request: pytest.FixtureRequest, tmp_path: Path,
                 clock: Clock) -> Iterator[ResultStore]:
    yield from store_of_kind(request, tmp_path, clock,
                             (MemoryResultStore, SQLiteResultStore, "RedisResultStore"))


@pytest.fixture(params=BROKERS)
def coordination(request: pytest.FixtureRequest, tmp_path: Path,
                 clock: Clock) -> Iterator[Coordination]:
    yield from store_of_kind(request, tmp_path, clock,
                             (MemoryCoordination, SQLiteCoordination, "RedisCoordination"))


class ConveyorProcess:
    """`python -m conveyor ARGS` (or `python LAUNCHER ARGS`: ``-m flask``, ``manage.py``...)
    started in its own process group, logging to a file in `log_dir` (default: `cwd`)."""

    def __init__(self, cwd: Path, env: dict[str, str], args: list[str],
                 launcher: Sequence[str] = ("-m", "conveyor"),
                 log_dir: Path | None = None) -> None:
        self.args = args
        self.log = (log_dir or cwd) / f"{args[0]}-{time.monotonic_ns()}.log"
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, *launcher, *args],
            cwd=cwd, env=env, stdout=self._log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                             text=True).stdout
        return [int(pid) for pid in out.split()]

    def wait_for_children(self, count: int, timeout: float = 15.0) -> list[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.children()
            if len(pids) >= count:
                return pids
            time.sleep(0.05)
        raise AssertionError(f"worker never had {count} processes:\n{self.output()}")

    def signal_group(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(15)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log_file.close()

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, 9)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self._log_file.close()


@pytest.fixture
def task_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                ) -> Iterator[Callable[[str, str], ModuleType]]:
    """`task_module(name, source)`: write a task module into tmp_path (the working
    directory, on a SQLite broker there), import it here, and close its App after."""
    made: list[ModuleType] = []

    def make(name: str, source: str) -> ModuleType:
        (tmp_path / f"{name}.py").write_text(source)
        monkeypatch.chdir(tmp_path)
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setenv("CONVEYOR_BROKER_URL", f"sqlite:///{tmp_path / 'conveyor.db'}")
        sys.modules.pop(name, None)
        made.append(importlib.import_module(name))
        return made[-1]

    yield make
    for module in made:
        module.app.close()
        sys.modules.pop(module.__name__, None)


def worker_env(cwd: Path) -> dict[str, str]:
    """The environment a worker started in `cwd` needs to import the modules there."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), str(ROOT / "src")])}


class WorkerProcess(ConveyorProcess):
    """A real `conveyor worker -A e2e_tasks` supervisor."""

    def __init__(self, cwd: Path, env: dict[str, str], args: list[str]) -> None:
        super().__init__(cwd, env, ["worker", "-A", "e2e_tasks", *args])


@pytest.fixture(params=["sqlite", "redis"])
def project(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory holding the e2e task module, importable here too, with the broker
    (SQLite in that directory, a fresh Redis namespace, or a fresh RabbitMQ namespace
    with results in SQLite) in $CONVEYOR_BROKER_URL."""
    (tmp_path / "e2e_tasks.py").write_text(TASKS_MODULE.read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    url = redis_url_for(request, request.param) or f"sqlite:///{tmp_path / 'conveyor.db'}"
    if request.param == "amqp":
        url = amqp_url_for(request)
        monkeypatch.setenv("CONVEYOR_RESULTS_URL", f"sqlite:///{tmp_path / 'results.db'}")
    monkeypatch.setenv("CONVEYOR_BROKER_URL", url)
    sys.modules.pop("e2e_tasks", None)
    yield tmp_path
    if request.param == "redis":
        drop_namespace(url)


@pytest.fixture
def tasks(project: Path) -> Iterator[ModuleType]:
    """The e2e task module, imported in this process on the project's broker."""
    import e2e_tasks

    yield e2e_tasks
    e2e_tasks.app.close()


@pytest.fixture
def start_worker(project: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `conveyor worker -A e2e_tasks ARGS...` in `project`; killed after the test."""
    started: list[WorkerProcess] = []

    def start(*args: str) -> WorkerProcess:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(ROOT / "src")])}
        worker = WorkerProcess(project, env, list(args))
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()
    sys.modules.pop("e2e_tasks", None)
