"""The shop's pages. Views only enqueue work and read its state; the tasks in tasks.py
do the work on the worker."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db import transaction
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, render
from django.tasks import TaskResultStatus
from django.tasks.exceptions import TaskResultDoesNotExist
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from conveyor import State
from orders.forms import OrderForm
from orders.models import Export, Order
from orders.tasks import export_orders, sales_summary, send_confirmation
from shop_project.conveyor import app


class SeeOther(HttpResponseRedirect):
    """303: after a POST, the browser GETs the new page (a reload doesn't re-post)."""

    status_code = 303


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return home_page(request, OrderForm(initial={"quantity": 1}))


def home_page(request: HttpRequest, form: OrderForm, status: int = 200) -> HttpResponse:
    return render(request, "orders/home.html", {
        "form": form,
        "orders": Order.objects.all()[:10],
        "order_count": Order.objects.count(),
        "exports": Export.objects.all()[:5],
    }, status=status)


@require_POST
def place_order(request: HttpRequest) -> HttpResponse:
    """Save the order and e-mail its confirmation in the background, once the order is
    committed: a worker never looks for an order that isn't there yet, and an order
    that rolls back sends nothing."""
    form = OrderForm(request.POST)
    if not form.is_valid():
        return home_page(request, form, status=400)  # the form again, with its errors
    with transaction.atomic():
        order = form.save()
        send_confirmation.delay_on_commit(order.pk)
    return SeeOther(order.get_absolute_url())


@require_GET
def order_detail(request: HttpRequest, order_id: int) -> HttpResponse:
    order = get_object_or_404(Order, pk=order_id)
    return render(request, "orders/order.html", {"order": order})


# -- CSV export with a progress bar -------------------------------------------------------


@require_POST
def start_export(request: HttpRequest) -> HttpResponse:
    with transaction.atomic():
        export = Export.objects.create()
        # The export's id doubles as its task's id, so the page can ask for its progress.
        export_orders.apply_async_on_commit((str(export.pk),), task_id=export.task_id)
    return SeeOther(export.get_absolute_url())


@require_GET
def export_detail(request: HttpRequest, export_id: UUID) -> HttpResponse:
    export = get_object_or_404(Export, pk=export_id)
    return render(request, "orders/export.html", {"export": export,
                                                  "status": export_status(export)})


@require_GET
def export_json(request: HttpRequest, export_id: UUID) -> JsonResponse:
    """What the export page polls: ``{state, progress: {current, total, percent}, error,
    download_url}``."""
    return JsonResponse(export_status(get_object_or_404(Export, pk=export_id)))


def export_status(export: Export) -> dict[str, Any]:
    if export.finished_at is not None:  # lasts longer than the task's result
        done = {"current": export.rows, "total": export.rows, "percent": 100}
        return {"state": "SUCCESS", "progress": done, "error": None,
                "download_url": reverse("export-download", args=[export.pk])}
    result = app.AsyncResult(export.task_id).snapshot()  # one read: every field agrees
    state, progress = result.state, result.progress
    return {
        "state": str(state),  # PENDING (queued), STARTED, RETRY, SUCCESS or FAILURE
        "progress": progress and {
            "current": int(progress.current), "total": int(progress.total or 0),
            "percent": int((progress.fraction or 0) * 100),
        },
        "error": str(result.result) if state == State.FAILURE else None,  # "Type: message"
        "download_url": None,  # set once finished_at is: the file is complete then
    }


@require_GET
def export_download(request: HttpRequest, export_id: UUID) -> HttpResponse:
    export = get_object_or_404(Export, pk=export_id)
    if export.finished_at is None:
        return HttpResponse("The export is not finished yet.\n", status=409,
                            content_type="text/plain")
    if not export.path.exists():
        raise Http404("The export's file was deleted.")
    return FileResponse(export.path.open("rb"), as_attachment=True,
                        filename=f"orders-{export.created:%Y%m%d-%H%M%S}.csv",
                        content_type="text/csv")


# -- A django.tasks task, run by Conveyor's TASKS backend ------------------------------


@require_POST
def start_summary(request: HttpRequest) -> HttpResponse:
    result = sales_summary.enqueue()
    return SeeOther(reverse("summary", args=[result.id]))


@require_GET
def summary_detail(request: HttpRequest, result_id: str) -> HttpResponse:
    try:
        result = sales_summary.get_result(result_id)
    except TaskResultDoesNotExist:
        raise Http404("No such summary.") from None
    summary = result.return_value if result.status == TaskResultStatus.SUCCESSFUL else None
    return render(request, "orders/summary.html", {"result": result, "summary": summary})
