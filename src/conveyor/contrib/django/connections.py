"""Database connections in workers, handled the way Django handles them per request."""

from __future__ import annotations

from conveyor.middleware.base import Execution, Middleware, Outcome


class CloseOldConnections(Middleware):
    """Around each task, what Django does around each request (``request_started`` and
    ``request_finished``): close connections that are broken or older than
    ``CONN_MAX_AGE``. Without it a long-running worker keeps a connection the database
    closed hours ago and its next task dies of "server closed the connection"."""

    def before_execute(self, execution: Execution) -> None:
        from django.db import close_old_connections

        close_old_connections()

    def after_execute(self, execution: Execution, outcome: Outcome) -> None:
        from django.db import close_old_connections

        close_old_connections()
