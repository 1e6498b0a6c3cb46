"""The supervisor: forks worker processes (and, with `beat_lease=`, a beat process), restarts
any that dies, recycles them, and turns signals into warm or cold shutdown.

Hard deadlines: each worker process writes the deadlines of its running tasks to a
`Board` shared with the supervisor. A process still holding a task `STUCK_GRACE` seconds
past its deadline can't act (a task holding the GIL in C code stops all its threads), so
the supervisor replaces it: it forks the replacement first, which marks the stuck
attempts in the store (their redelivered messages then end with TimeLimitExceeded
instead of running again), and kills the stuck process once it has.

Signals: the supervisor alone listens to SIGINT/SIGTERM; its children ignore them, so
a signal sent to the whole process group (Ctrl-C in a terminal, `kill -TERM -PGID`)
counts once. The first asks the children for a warm shutdown (SIGUSR1), the second for
a cold one (SIGUSR2). Children stay in the supervisor's process group, and a child
whose supervisor vanished (even by SIGKILL) hands its tasks back and exits.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING

from conveyor.worker.deadlines import EXIT_HARD_LIMIT, STUCK_GRACE, Board, Entry
from conveyor.worker.threads import EXIT_THREAD_DIED

if TYPE_CHECKING:
    from conveyor.app import App

logger = logging.getLogger("conveyor.supervisor")

WARM, COLD = signal.SIGUSR1, signal.SIGUSR2
CRASH_WINDOW = 2.0  # a child dying sooner than this after start counts as a crash loop
TAKE_OVER_WAIT = 5.0  # a replacement that hasn't marked the stuck tasks by then: kill anyway


class _ProcessLabel(logging.Filter):
    """Names the process in each log line (``worker-2[4242]``): forked with os.fork, every
    process would otherwise say ``MainProcess``. Kept on the log handler, so a forked
    child inherits it and relabels it (`label_process`)."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def filter(self, record: logging.LogRecord) -> bool:
        record.processName = self.label
        return True


def configure_logging(level: str, label: str = "supervisor") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(processName)s[%(process)d] %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _ProcessLabel) for f in handler.filters):
            handler.addFilter(_ProcessLabel(label))
    label_process(label)


def label_process(label: str) -> None:
    """Name this process in the log lines from now on (where `configure_logging` set up
    the logging; a framework's own logging configuration is left alone)."""
    for handler in logging.getLogger().handlers:
        for found in handler.filters:
            if isinstance(found, _ProcessLabel):
                found.label = label


class Supervisor:
    def __init__(
        self,
        app: App | Callable[[], App],
        queues: Sequence[str] = ("default",),
        processes: int = 2,
        threads: int = 8,
        *,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        prefetch: int | None = None,
        async_concurrency: int | None = None,
        grace: float = 30.0,
        on_child_start: Callable[[], None] | None = None,
        beat_lease: float | None = None,
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        if prefetch is not None and prefetch < 1:
            raise ValueError(f"prefetch must be >= 1, got {prefetch}")
        if max_memory_per_child is not None and max_memory_per_child < 1:
            raise ValueError(f"max_memory_per_child must be >= 1 (MB), got "
                             f"{max_memory_per_child}")
        # An App, or a function that makes one in each worker process after fork():
        # then this process never imports the user's code or a broker driver.
        self.app = app
        self.queues = tuple(queues)
        self.processes = processes
        self.threads = threads
        self.max_tasks_per_child = max_tasks_per_child
        self.max_memory_per_child = max_memory_per_child  # MB of RSS, checked after tasks
        self.prefetch = prefetch  # tasks a process reserves; None: the Consumer's default
        self.async_concurrency = async_concurrency  # None: the Consumer's default
        self.grace = grace
        self.on_child_start = on_child_start
        self.beat_lease = beat_lease  # with a lease: run a beat in a process of its own
        self.children: dict[int, float] = {}  # pid -> start time
        self.beat_pid: int | None = None
        self.boards: dict[int, Board] = {}  # worker pid -> the deadlines it publishes
        self.replacing: dict[int, tuple[float, int]] = {}  # stuck pid -> (since, pipe)
        self.killed: set[int] = set()  # stuck pids killed, not reaped yet
        self.worker_ids: dict[int, str] = {}  # worker pid -> its id in `conveyor status`
        self._spawned = 0
        self._signals = 0
        self._crash_delay = 0.0

    def run(self) -> int:
        """Run until a signal stops it; returns the exit status for the command line."""
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        if not callable(self.app):
            self.app.close()  # no connection may cross fork()
        try:
            for _ in range(self.processes):
                self._spawn()
            if self.beat_lease is not None:
                self._spawn(beat=True)
            while self._signals == 0:
                self._reap(restart=True)
                self._police()
                time.sleep(0.1)
            self._tell_children(WARM)
            told_cold = False
            while self.children:
                if self._signals > 1 and not told_cold:
                    self._tell_children(COLD)
                    told_cold = True
                self._reap(restart=False)
                self._police()
                time.sleep(0.05)
            logger.info("stopped")
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        kind = "warm" if self._signals == 1 else "cold"
        logger.warning("received %s: %s shutdown", signal.Signals(signum).name, kind)

    def _tell_children(self, sig: signal.Signals) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                self.children.pop(pid, None)

    def _reap(self, restart: bool) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            started = self.children.pop(pid, time.monotonic())
            code = os.waitstatus_to_exitcode(status)
            was_beat = pid == self.beat_pid
            worker_id = self.worker_ids.pop(pid, None)
            board = self.boards.pop(pid, None)
            if board is not None:
                board.close()
            if pid in self.replacing or pid in self.killed:  # replaced already
                self._forget_stuck(pid)
                continue
            if not restart:
                continue
            if was_beat:
                logger.error("beat %d died (exit %s): starting a new one", pid, code)
            elif code == EXIT_HARD_LIMIT:
                logger.warning("worker %d replaced after a task's hard time limit", pid)
            elif code != 0:
                logger.error("worker %d died (exit %s): starting a new one", pid, code)
            lived = time.monotonic() - started
            self._crash_delay = min(10.0, self._crash_delay * 2 or 0.2) if lived < CRASH_WINDOW \
                else 0.0
            time.sleep(self._crash_delay)
            # A process that died without a word (killed, crashed) is still listed as
            # alive; its replacement drops it at once (the others deregister themselves).
            dead = worker_id if code not in (0, EXIT_HARD_LIMIT, EXIT_THREAD_DIED) else None
            self._spawn(beat=was_beat, forget=dead)

    def _police(self) -> None:
        """Replace the worker processes stuck past a task's deadline (see the module's
        docstring); kill each once its replacement has marked its tasks."""
        now = time.monotonic()
        for pid, (since, pipe) in list(self.replacing.items()):
            if _signalled(pipe) or now - since > TAKE_OVER_WAIT:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self._forget_stuck(pid)
                self.killed.add(pid)
        for pid, board in list(self.boards.items()):
            if pid in self.replacing or pid in self.killed:
                continue
            stuck = [e for e in board.read() or () if e.deadline + STUCK_GRACE <= now]
            if not stuck:
                continue
            first = min(stuck)
            why = "its hard time limit" if first.kind == "limit" else "a terminate request"
            logger.error("worker %d is stuck: task %s is %.1f s past %s and the process "
                         "doesn't respond (a task holding the GIL in C code?): replacing it",
                         pid, first.task_id, now - first.deadline, why)
            done, told = os.pipe()
            os.set_blocking(done, False)
            self.replacing[pid] = (now, done)
            self._spawn(stuck=(stuck, told, done), forget=self.worker_ids.get(pid))
            os.close(told)

    def _forget_stuck(self, pid: int) -> None:
        _, pipe = self.replacing.pop(pid, (0.0, -1))
        if pipe >= 0:
            os.close(pipe)
        self.killed.discard(pid)

    def _spawn(self, beat: bool = False,
               stuck: tuple[list[Entry], int, int] | None = None,
               forget: str | None = None) -> None:
        board = None if beat else Board()
        nonce = os.urandom(3).hex()
        self._spawned += 0 if beat else 1
        pid = os.fork()
        if pid:
            self.children[pid] = time.monotonic()
            if beat:
                self.beat_pid = pid
            elif board is not None:
                self.boards[pid] = board
                self.worker_ids[pid] = f"{socket.gethostname()}:{pid}:{nonce}"
            return
        label_process("beat" if beat else f"worker-{self._spawned}")
        code = 1
        try:
            code = self._beat_child() if beat else self._child(board, stuck, nonce, forget)
        except BaseException:
            logger.exception("beat process failed" if beat else "worker process failed")
        finally:
            logging.shutdown()
            os._exit(code)

    def _app(self) -> App:
        return self.app() if callable(self.app) else self.app

    def _beat_child(self) -> int:
        """The beat, in its own process: a warm or cold stop frees its lock at once, and
        it stops too if the supervisor vanishes."""
        from conveyor.beat.scheduler import Beat

        assert self.beat_lease is not None
        beat = Beat(self._app(), lease=self.beat_lease, parent_pid=os.getppid())
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(WARM, lambda *_: beat.stop())
        signal.signal(COLD, lambda *_: beat.stop())
        logger.info("beat %s started: %d periodic task(s)", beat.id, len(beat.entries))
        beat.run()
        return 0

    def _child(self, board: Board | None, stuck: tuple[list[Entry], int, int] | None,
               nonce: str, forget: str | None) -> int:
        from conveyor.worker.worker import Worker, take_over

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        app = self._app()
        if stuck is not None:
            entries, told, done = stuck
            os.close(done)
            try:
                take_over(app, entries)
            except Exception:  # noqa: BLE001 - the stuck process must go all the same
                logger.exception("can't mark the stuck tasks %s: they may run again",
                                 ", ".join(e.task_id for e in entries))
            finally:
                os.write(told, b"1")
                os.close(told)
            if self._signals:  # the supervisor is shutting down: replace, don't work
                return 0
        if forget is not None:
            try:
                app.broker.forget_worker(forget)
            except Exception:  # noqa: BLE001 - its heartbeat expires anyway
                logger.debug("can't drop dead worker %s", forget, exc_info=True)
        worker = Worker(app, self.queues, self.threads, max_tasks=self.max_tasks_per_child,
                        max_memory_mb=self.max_memory_per_child, prefetch=self.prefetch,
                        grace=self.grace, supervised=True, board=board, nonce=nonce,
                        **({"async_concurrency": self.async_concurrency}
                           if self.async_concurrency else {}))
        signal.signal(WARM, lambda *_: worker.stop(cold=False))
        signal.signal(COLD, lambda *_: worker.stop(cold=True))
        if self.on_child_start is not None:
            self.on_child_start()
        window = worker.consumer.window
        logger.info("worker %s started: queues %s, %d threads, prefetch %s", worker.id,
                    ",".join(self.queues), self.threads,
                    window.floor if window.fixed else f"{window.floor}-{window.target(1e9)} "
                    "(adaptive)")
        worker.run()
        return 0


def _signalled(pipe: int) -> bool:
    """Whether the replacement wrote to (or closed) its end of the pipe."""
    try:
        return os.read(pipe, 1) is not None
    except BlockingIOError:
        return False
