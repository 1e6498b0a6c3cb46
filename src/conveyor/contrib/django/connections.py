"""Database connections in workers, handled the way Django handles them per request."""

from __future__ import annotations

from conveyor.middleware.base import Execution, Middleware, Outcome


class CloseOldConnections(Middleware):
    """Around each task, what Django does around each request (``request_started`` and
    ``request_finished``): close connections that are broken or older than
    ``CONN_MAX_AGE``. Without it a long-running worker keeps a connection the database
    closed hours ago and its next task dies of "server closed the connection".

    A connection inside a transaction is left alone: that is a task run in-process
    within the caller's transaction (``conveyor.testing.eager`` or
    ``conveyor.contrib.django.testing.run_worker`` in a test), where closing would break
    the caller's transaction. A worker never starts a task inside one.
    """

    def before_execute(self, execution: Execution) -> None:
        close_old_connections()

    def after_execute(self, execution: Execution, outcome: Outcome) -> None:
        close_old_connections()


def close_old_connections() -> None:
    """Django's ``close_old_connections()``, skipping connections in a transaction."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()
