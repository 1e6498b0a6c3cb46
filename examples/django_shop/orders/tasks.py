"""The shop's background work. Nothing imports this module: the installed app
``conveyor.contrib.django`` finds it (as every app's ``tasks.py``) when Django starts, in
the web server and in each worker process alike.

Three tasks use Conveyor's API (``@app.task``, ``@app.periodic``), one Django's own
(``@django.tasks.task``), which Conveyor's ``TASKS`` backend runs on the same workers.
Tasks run *at least once*: a worker killed mid-task hands it back, so each is safe to
run twice.
"""

from __future__ import annotations

import csv
import time
from datetime import timedelta
from smtplib import SMTPException
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Count, Max, Sum
from django.tasks import task
from django.utils import timezone

from conveyor import TaskContext, cron
from orders.models import ITEMS, Export, Order
from shop_project.conveyor import app

CSV_HEADER = ["order", "email", "item", "quantity", "created", "confirmed_at"]


# -- Conveyor's API -----------------------------------------------------------------------


@app.task(retries=3, retry_on=(ConnectionError, SMTPException))
def send_confirmation(order_id: int) -> str:
    """E-mail the customer, then mark the order confirmed. Enqueued on commit by the
    view, so the order is always there; a confirmed order is not e-mailed again."""
    order = Order.objects.get(pk=order_id)
    if order.confirmed_at is None:
        send_mail(
            subject=f"Your order #{order.pk} is confirmed",
            message=(f"Thank you for your order!\n\n{order.quantity} × "
                     f"{order.get_item_display()}\n\nConveyor Shop\n"),
            from_email=None,  # settings.DEFAULT_FROM_EMAIL
            recipient_list=[order.email],
        )
        order.confirmed_at = timezone.now()
        order.save(update_fields=["confirmed_at"])
    return order.email


@app.task(bind=True)
def export_orders(task: TaskContext, export_id: str) -> int:
    """Write every order placed before the export started to ``EXPORT_DIR/<id>.csv``,
    reporting progress per row; the file appears only once complete."""
    export = Export.objects.get(pk=export_id)
    last_id = Order.objects.filter(created__lte=export.created).aggregate(Max("id"))["id__max"]
    orders = Order.objects.filter(id__lte=last_id or 0).order_by("id")
    total = orders.count()
    task.progress(0, total, "rows")
    export.path.parent.mkdir(parents=True, exist_ok=True)
    partial = export.path.with_suffix(".part")
    with partial.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_HEADER)
        for done, order in enumerate(orders.iterator(), start=1):
            writer.writerow([order.pk, order.email, order.item, order.quantity,
                             order.created.isoformat(), order.confirmed_at and
                             order.confirmed_at.isoformat()])
            time.sleep(settings.EXPORT_ROW_DELAY)  # pretend each row is hard work
            task.progress(done, total, "rows")
    partial.replace(export.path)
    Export.objects.filter(pk=export.pk).update(finished_at=timezone.now(), rows=total)
    return total


@app.periodic(cron("0 3 * * *"))  # every night at 03:00 UTC, from `conveyor worker --beat`
def clean_up_exports() -> int:
    """Delete the exports (rows and files) older than ``EXPORTS_KEEP_DAYS``."""
    cutoff = timezone.now() - timedelta(days=settings.EXPORTS_KEEP_DAYS)
    old = list(Export.objects.filter(created__lt=cutoff))
    for export in old:
        export.path.unlink(missing_ok=True)
        export.path.with_suffix(".part").unlink(missing_ok=True)
    Export.objects.filter(pk__in=[export.pk for export in old]).delete()
    return len(old)


# -- Django's own API (django.tasks), run by Conveyor's TASKS backend -------------------


@task
def sales_summary() -> dict[str, Any]:
    """Orders and quantities per item: a report computed off the request."""
    per_item = (Order.objects.values("item").order_by("item")
                .annotate(orders=Count("id"), quantity=Sum("quantity")))
    return {
        "orders": Order.objects.count(),
        "by_item": [{"item": dict(ITEMS)[row["item"]], "orders": row["orders"],
                     "quantity": row["quantity"]} for row in per_item],
    }
