"""The library's worker, started with its own CLI in a process group of its own, its
memory sampled while it runs, and always stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from bench_env import HERE
from procfs import command_name, cpu_seconds, group_members, pss_bytes, rss_bytes


class Worker:
    """The library's worker CLI in its own process group; RSS sampled while it runs.
    Several `commands` (a library run as P separate worker processes) share the first
    one's group, so they are measured and stopped as one."""

    def __init__(self, commands: list[list[str]], log: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
        self.log = log.open("wb")
        self.launched = time.time()
        self.procs: list[subprocess.Popen[bytes]] = []
        for command in commands:
            group = self.procs[0].pid if self.procs else 0
            self.procs.append(subprocess.Popen(command, cwd=HERE, env=env, stdout=self.log,
                                               stderr=subprocess.STDOUT, process_group=group))
        self.proc = self.procs[0]  # the group's leader
        self.peak_rss = self.peak_pss = 0
        self.peak_rss_by_process: list[tuple[str, float]] = []
        self.processes = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        """RSS every 50 ms; PSS (costlier to read) every 250 ms."""
        ticks = 0
        while not self._stop.wait(0.05):
            members = group_members(self.proc.pid)
            ticks += 1
            if ticks % 5 == 0:
                self.peak_pss = max(self.peak_pss, sum(pss_bytes(pid) for pid in members))
            self.processes = max(self.processes, len(members))
            sizes = [(pid, rss_bytes(pid)) for pid in members]
            if sum(size for _, size in sizes) > self.peak_rss:
                self.peak_rss = sum(size for _, size in sizes)
                self.peak_rss_by_process = [(command_name(pid), size / 2**20)
                                            for pid, size in sizes]

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in group_members(self.proc.pid))

    def check(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited with status {proc.returncode}")

    def stop(self, term_group: bool = True) -> None:
        """SIGTERM to the group (or, not `term_group`, to the commands' own processes, which
        stop their children), SIGKILL after 15 s; then SIGKILL whatever is left."""
        self._stop.set()
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                if sig == signal.SIGTERM and not term_group:
                    for proc in self.procs:
                        proc.send_signal(sig)
                else:
                    os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                for proc in self.procs:
                    proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
            if not group_members(self.proc.pid):
                break
        self.log.close()
