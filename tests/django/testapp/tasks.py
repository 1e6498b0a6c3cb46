"""Tasks of the test Django app, found by autodiscovery (nothing imports this module)."""

from __future__ import annotations

import os

from django.db import connection

from tests.django.proj_conveyor import app
from tests.django.testapp.models import Order


@app.task
def confirm(order_id: int) -> str:
    """Fails with Order.DoesNotExist if it runs before the order's transaction commits."""
    order = Order.objects.get(pk=order_id)
    order.confirmed = True
    order.save()
    return order.email


@app.task
def backend_pid() -> int:
    """The database connection's server-side id (PostgreSQL) or this process's pid."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return int(cursor.fetchone()[0])
    return os.getpid()


@app.task
def count_orders() -> int:
    return Order.objects.count()
