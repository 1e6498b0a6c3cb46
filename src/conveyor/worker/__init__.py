"""The worker side: consumer, executor, pools, supervisor."""

from conveyor.worker.supervisor import Supervisor
from conveyor.worker.worker import Worker

__all__ = ["Supervisor", "Worker"]
