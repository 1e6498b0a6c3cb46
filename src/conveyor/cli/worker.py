"""``conveyor worker``: parse options, then hand over to the Supervisor."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence

import click

from conveyor.app import App
from conveyor.backends import describe
from conveyor.beat import DEFAULT_LEASE, Beat
from conveyor.cli.inspect import task_queues
from conveyor.cli.options import with_app
from conveyor.errors import ConveyorError, did_you_mean
from conveyor.worker.consumer import default_prefetch
from conveyor.worker.supervisor import Supervisor, configure_logging
from conveyor.worker.window import CAP as WINDOW_CAP


def check_store(app: App) -> None:
    """Fail now, with a clear message, if the broker is unreachable. The check runs in a
    short-lived child process, so the supervisor never loads a broker client whose
    memory every worker process would then carry twice."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        code = 1  # anything but a clean check fails it
        try:
            app.broker.stats()
            code = 0
        except ConveyorError as exc:
            os.write(write, str(exc).encode())
        except BaseException as exc:  # noqa: BLE001 - said in one line, in the parent
            os.write(write, f"the broker check failed: {type(exc).__name__}: {exc}".encode())
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise ConveyorError(message or "the broker check failed")


def queue_warnings(app: App, consumed: Sequence[str]) -> list[str]:
    """What a worker consuming `consumed` would silently never run: queues no registered
    task goes to (a typo in -Q, most often), and tasks whose queue it doesn't consume."""
    routed = task_queues(app)
    warnings = []
    for queue in consumed:
        if queue not in routed:
            close = did_you_mean(queue, routed) if routed else ""
            warnings.append(f"no registered task goes to queue {queue!r} (-Q){close}")
    missed = [f"{queue} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
              for queue, names in sorted(routed.items()) if names and queue not in consumed]
    if missed:
        warnings.append(f"this worker doesn't consume the queue(s) of these tasks, which wait "
                        f"for another worker: {'; '.join(missed)}")
    return warnings


def parse_queues(value: str) -> list[str]:
    queues = [q.strip() for q in value.split(",") if q.strip()]
    if not queues:
        raise click.BadParameter("name at least one queue, e.g. -Q default,emails")
    return queues


@click.command()
@with_app
@click.option("-Q", "--queues", default="default", show_default=True,
              help="Comma-separated queues to consume.")
@click.option("-p", "--processes", type=click.IntRange(min=1), default=None,
              help="Worker processes [default: CPU count].")
@click.option("-t", "--threads", type=click.IntRange(min=1), default=8, show_default=True,
              help="Threads per process (async tasks share one event loop per process).")
@click.option("--prefetch", type=click.IntRange(min=1), default=None,
              help="Tasks a process holds at most, running or reserved ahead of its "
                   "threads [default: adaptive, about 20 ms of its throughput, from 2 x "
                   "threads to 256]. --prefetch 1 -t 1: a process never holds a task it "
                   "can't start (long tasks).")
@click.option("--async-concurrency", type=click.IntRange(min=1), default=None,
              help="async def tasks a process runs at once, on its event loop, besides "
                   "its threads' work [default: 256].")
@click.option("--max-tasks-per-child", type=click.IntRange(min=1), default=None,
              help="Replace a process after it ran this many tasks.")
@click.option("--max-memory-per-child", type=click.IntRange(min=1), default=None,
              metavar="MB",
              help="Replace a process, warm, when its resident memory (RSS) is over this "
                   "many MB after a task.")
@click.option("--grace", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Seconds a warm shutdown waits for running tasks.")
@click.option("--beat", "with_beat", is_flag=True,
              help="Also run the periodic scheduler, in a process of its own (safe on "
                   "several workers: one beat publishes at a time).")
@click.option("--beat-lease", type=click.FloatRange(min=0.1), default=DEFAULT_LEASE,
              show_default=True, help="The beat lock's lease in seconds (see conveyor beat).")
@click.option("-l", "--loglevel", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
def worker(app: App, queues: str, processes: int | None, threads: int,
           prefetch: int | None, async_concurrency: int | None,
           max_tasks_per_child: int | None,
           max_memory_per_child: int | None, grace: float, with_beat: bool,
           beat_lease: float, loglevel: str) -> None:
    """Run worker processes until SIGINT/SIGTERM (twice: don't wait for running tasks)."""
    configure_logging(loglevel)
    prefetch = prefetch or app.settings.worker_prefetch
    queue_list = parse_queues(queues)
    processes = processes or os.cpu_count() or 1
    beat = beat_lease if with_beat else None
    if with_beat:
        Beat(app, lease=beat_lease)  # a schedule naming an unknown task fails here, not later
    check_store(app)
    user_tasks = [name for name in app.tasks if not name.startswith("conveyor.")]  # not builtins
    recycle = [f"after {max_tasks_per_child} task(s)"] if max_tasks_per_child else []
    recycle += [f"over {max_memory_per_child} MB"] if max_memory_per_child else []
    click.echo(
        f"conveyor worker for {app.name}: {describe(app.settings.broker_url)}, "
        f"queues {','.join(queue_list)}, {processes} process(es) x {threads} thread(s), "
        f"prefetch {prefetch or f'{default_prefetch(threads)}-{WINDOW_CAP} (adaptive)'}, "
        f"{len(user_tasks)} task(s) registered" + (", with beat" if with_beat else "")
        + (f", processes replaced {' or '.join(recycle)}" if recycle else ""),
        err=True,
    )
    for warning in queue_warnings(app, queue_list):
        logging.getLogger("conveyor.worker").warning("%s", warning)
    spec = click.get_current_context().meta.get("conveyor.app_spec")
    if spec:  # hand over to a lean supervisor process (see conveyor/worker/__main__.py)
        options = {"queues": queue_list, "processes": processes, "threads": threads,
                   "prefetch": prefetch, "async_concurrency": async_concurrency,
                   "max_tasks_per_child": max_tasks_per_child,
                   "max_memory_per_child": max_memory_per_child, "grace": grace,
                   "beat_lease": beat, "loglevel": loglevel}
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", "conveyor.worker", spec,
                                  json.dumps(options)])
    supervisor = Supervisor(app, queue_list, processes, threads, prefetch=prefetch,
                            async_concurrency=async_concurrency,
                            max_tasks_per_child=max_tasks_per_child,
                            max_memory_per_child=max_memory_per_child, grace=grace,
                            beat_lease=beat)
    raise SystemExit(supervisor.run())
