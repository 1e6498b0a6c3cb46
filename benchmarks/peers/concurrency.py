"""The concurrency of a run: equal for all (processes x threads), or each library's best."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Concurrency:
    """One row of the workload matrix (redis_workloads.py): `processes` x `threads` task
    slots, the same for every library, or (`best`) each library's own best setting."""

    name: str  # "1x8", "2x8", "best"
    processes: int = 1
    threads: int = 8

    @property
    def best(self) -> bool:
        return self.name == "best"

    @classmethod
    def parse(cls, name: str) -> Concurrency:
        """"PxT" (e.g. "2x8") or "best"; ValueError otherwise."""
        if name == "best":
            return cls(name)
        processes, _, threads = name.partition("x")
        if not (processes.isdigit() and threads.isdigit() and int(processes) and int(threads)):
            raise ValueError(f"not PxT (e.g. 2x8) nor best: {name!r}")
        return cls(name, int(processes), int(threads))


Setting = tuple[list[list[str]], str]  # the worker commands (all started), what they are
