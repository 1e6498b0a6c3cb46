"""The worker side: consumer, executor, pools, supervisor (imported on first use)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.worker.supervisor import Supervisor
    from conveyor.worker.worker import Worker

__all__ = ["Supervisor", "Worker"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(f"conveyor.worker.{name.lower()}"), name)
    raise AttributeError(f"module 'conveyor.worker' has no attribute {name!r}")
