"""The Django example (examples/django_shop) does what its README promises, end to end:
``manage.py migrate``, ``runserver`` and ``conveyor worker`` as real processes, driven
over HTTP as a browser does. Orders are e-mailed in the background, exports report
progress and download, the ``django.tasks`` summary runs on the worker, the nightly
clean-up is scheduled and deletes old exports; on SQLite, then on Redis by one setting.
"""

from __future__ import annotations

import csv
import email
import io
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from email.message import EmailMessage
from email.policy import default as email_policy
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import amqp_url_for, drop_namespace, redis_namespace_url
from tests.django.shop_helpers import ManageProcess, Shop, page_text

# The example uses Django 6's own tasks framework (Django 6 needs Python 3.12+).
pytest.importorskip("django.tasks", reason="the example project needs Django 6")

CSV_HEADER = ["order", "email", "item", "quantity", "created", "confirmed_at"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """The example on its default, embedded broker (SQLite files in DATA_DIR), migrated,
    with its web server running; shared by this module's tests to keep them quick."""
    made = Shop(tmp_path_factory.mktemp("shop"))
    try:
        made.manage("migrate", "--verbosity", "0")
        made.start_server()
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def worker(shop: Shop) -> ManageProcess:
    """``manage.py conveyor worker -p 1 --beat``, started by the first test that needs it
    (so the form test before it sees a queue nobody consumes)."""
    return shop.start_worker("--beat")


def place_order(shop: Shop, address: str, item: str = "mug", quantity: int = 1) -> int:
    """Submit the order form as a browser does; the id of the order it redirected to."""
    shop.get("/")
    response = shop.post("/orders", {"email": address, "item": item, "quantity": quantity})
    assert response.status == 200, response.brief()
    found = re.search(r"/orders/(\d+)$", response.url)
    assert found, response.url
    return int(found.group(1))


def order_count(shop: Shop) -> int:
    found = re.search(r"\((\d+) in all\)", page_text(shop.get("/")))
    return int(found.group(1)) if found else 0


def outbox_message(shop: Shop, subject: str) -> EmailMessage:
    """The message with `subject` that Django's file e-mail backend wrote to the outbox
    (each file: a message, then a line of dashes)."""
    for path in sorted((shop.data_dir / "outbox").glob("*.log")):
        raw = path.read_bytes().rsplit(b"\n" + b"-" * 79, 1)[0]
        message = email.message_from_bytes(raw, policy=email_policy)
        if message["Subject"] == subject:
            assert isinstance(message, EmailMessage)
            return message
    raise AssertionError(f"no e-mail {subject!r} in the outbox\n{shop.output()}")


def start_export(shop: Shop) -> str:
    """Press "Export to CSV"; the export's path, /exports/<id>."""
    shop.get("/")
    response = shop.post("/exports")
    assert response.status == 200, response.brief()
    path = response.url.removeprefix(shop.base_url)
    assert re.fullmatch(r"/exports/[0-9a-f-]{36}", path), path
    return path


def wait_for_export(shop: Shop, path: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Poll /exports/<id>.json as the export page's script does, until it is finished;
    every answer seen, in order."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = shop.get(f"{path}.json")
        assert response.status == 200, response.brief()
        seen.append(response.json())
        if seen[-1]["state"] in ("SUCCESS", "FAILURE"):
            return seen
        time.sleep(0.03)
    raise AssertionError(f"{path} did not finish in {timeout} s: {seen[-1:]}\n{shop.output()}")


def download_rows(shop: Shop, url: str) -> list[list[str]]:
    response = shop.get(url)
    assert response.status == 200, response.brief()
    assert response.headers["content-type"] == "text/csv"
    assert response.headers["content-disposition"].startswith('attachment; filename="orders-')
    return list(csv.reader(io.StringIO(response.text)))


def summary_page(shop: Shop) -> str:
    """Press "Compute the summary" (a django.tasks task) and wait until it has run."""
    shop.get("/")
    response = shop.post("/summaries")
    assert response.status == 200, response.brief()
    path = response.url.removeprefix(shop.base_url)
    return shop.wait_for(path, 'data-status="SUCCESSFUL"')


# -- placing orders ---------------------------------------------------------------------


def test_a_bad_order_is_shown_again_with_its_errors_and_nothing_is_enqueued(
        shop: Shop) -> None:
    before = order_count(shop)
    shop.get("/")
    for fields, error in [
        ({"email": "bob", "item": "mug", "quantity": 1}, "Enter a valid email address."),
        ({"email": "bob@example.com", "item": "mug", "quantity": 0}, "Order at least one."),
        ({"email": "bob@example.com", "item": "", "quantity": 1}, "This field is required."),
        ({"email": "bob@example.com", "item": "car", "quantity": 1},
         "Select a valid choice. car is not one of the available choices."),
    ]:
        response = shop.post("/orders", fields)

        assert response.status == 400, (fields, response.brief())
        assert f'<span class="error">{error}</span>' in page_text(response), fields
        assert f'value="{fields["email"]}"' in response.text  # what was typed is kept

    assert order_count(shop) == before
    queues = shop.manage("conveyor", "status").split("\n\n")[1]  # after the store's line
    assert re.search(r"^default\s+0\s+0\s+0\s+0\s+0$", queues, re.M), queues


def test_placing_an_order_emails_its_confirmation(shop: Shop, worker: ManageProcess) -> None:
    order = place_order(shop, "ann@example.com", "tote", 3)

    page = shop.wait_for(f"/orders/{order}", "Confirmed: the e-mail was sent")

    assert "3 × Tote bag for ann@example.com" in page
    message = outbox_message(shop, f"Your order #{order} is confirmed")
    assert message["To"] == "ann@example.com"
    assert message["From"] == "Conveyor Shop <shop@example.com>"
    assert "3 × Tote bag" in message.get_content()
    home = page_text(shop.get("/"))
    assert f'<a href="/orders/{order}">{order}</a>' in home


# -- CSV export -------------------------------------------------------------------------


def test_an_export_shows_its_progress_then_downloads_the_orders(
        shop: Shop, worker: ManageProcess) -> None:
    placed = [place_order(shop, f"buyer{n}@example.com", "stickers", n) for n in range(1, 11)]

    path = start_export(shop)
    not_yet = shop.get(f"{path}/download")
    seen = wait_for_export(shop, path)

    assert not_yet.status == 409, not_yet.brief()
    percents = [answer["progress"]["percent"] for answer in seen if answer["progress"]]
    assert any(percent < 100 for percent in percents), seen
    final = seen[-1]
    assert final["state"] == "SUCCESS", final
    total = final["progress"]["total"]
    assert final["progress"] == {"current": total, "total": total, "percent": 100}
    assert final["error"] is None
    assert final["download_url"] == f"{path}/download"
    rows = download_rows(shop, final["download_url"])
    assert rows[0] == CSV_HEADER
    assert len(rows) == total + 1
    by_id = {int(row[0]): row for row in rows[1:]}
    assert set(placed) <= set(by_id)
    assert by_id[placed[2]][1:4] == ["buyer3@example.com", "stickers", "3"]
    page = shop.get(path).text  # the page the browser polls from, with its script
    assert f'data-status-url="{path}.json"' in page
    assert shop.get("/static/orders/export.js").status == 200


def test_an_unknown_export_is_not_found(shop: Shop) -> None:
    unknown = f"/exports/{uuid.uuid4()}"

    for path in (unknown, f"{unknown}.json", f"{unknown}/download", "/exports/nope.json"):
        assert shop.get(path).status == 404, path


# -- django.tasks -------------------------------------------------------------------------


def test_the_summary_written_with_django_tasks_runs_on_the_worker(
        shop: Shop, worker: ManageProcess) -> None:
    place_order(shop, "mugs@example.com", "mug", 4)
    orders = order_count(shop)

    page = summary_page(shop)

    assert "orders.tasks.sales_summary" in page
    assert f"{orders} orders in all." in page
    assert re.search(r"<td>Conveyor mug</td><td>\d+</td><td>\d+</td>", page), page
    assert shop.get("/summaries/no-such-result").status == 404


# -- the nightly clean-up ---------------------------------------------------------------


def conveyor_status(shop: Shop, until: str, timeout: float = 20.0) -> str:
    """``manage.py conveyor status`` until its output has `until` (workers and beats
    report themselves once started)."""
    deadline = time.monotonic() + timeout
    while True:
        status = shop.manage("conveyor", "status")
        if until in status or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def backdate(shop: Shop, export_path: str, days: int) -> None:
    export_id = uuid.UUID(export_path.rsplit("/", 1)[1]).hex  # as Django stores UUIDs
    database = shop.data_dir / "shop.sqlite3"
    with closing(sqlite3.connect(database, timeout=20)) as connection, connection:
        connection.execute("UPDATE orders_export SET created = datetime(created, ?) "
                           "WHERE id = ?", (f"-{days} days", export_id))


def test_the_nightly_clean_up_is_scheduled_and_deletes_old_exports(
        shop: Shop, worker: ManageProcess) -> None:
    status = conveyor_status(shop, until="holds the lock")  # the worker's --beat runs it
    assert re.search(r"orders\.tasks\.clean_up_exports\s+orders\.tasks\.clean_up_exports\s+"
                     r"cron 0 3 \* \* \*\s+\S+ 03:00:00 UTC", status), status
    old, recent = start_export(shop), start_export(shop)
    for path in (old, recent):
        assert wait_for_export(shop, path)[-1]["state"] == "SUCCESS"
    backdate(shop, old, days=8)  # EXPORTS_KEEP_DAYS is 7

    deleted = shop.manage("shell", "--no-imports", "-c",
                          "from orders.tasks import clean_up_exports; "
                          "print(clean_up_exports.delay().get(timeout=30))")

    assert deleted.strip() == "1"
    assert shop.get(f"{old}.json").status == 404
    assert not (shop.data_dir / "exports" / f"{old.rsplit('/', 1)[1]}.csv").exists()
    assert shop.get(f"{recent}/download").status == 200


# -- on Redis and RabbitMQ ----------------------------------------------------------------


@pytest.fixture(params=["redis", "amqp"])
def server_shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shop]:
    """The example on Redis, then RabbitMQ: one environment variable, CONVEYOR_BROKER_URL
    (on RabbitMQ, which keeps no results, the example keeps them in a SQLite file)."""
    url = redis_namespace_url() if request.param == "redis" else amqp_url_for(request)
    made = Shop(tmp_path, broker_url=url)
    try:
        made.manage("migrate", "--verbosity", "0")
        made.start_server()
        yield made
    finally:
        made.close()
        if request.param == "redis":
            drop_namespace(url)


def test_on_a_server_broker_orders_exports_and_django_tasks_run_too(server_shop: Shop) -> None:
    shop = server_shop
    worker = shop.start_worker()
    order = place_order(shop, "server@example.com", "mug", 2)

    shop.wait_for(f"/orders/{order}", "Confirmed: the e-mail was sent")
    export = wait_for_export(shop, start_export(shop))[-1]
    summary = summary_page(shop)

    scheme = shop.env["CONVEYOR_BROKER_URL"].split("://")[0]
    assert f"conveyor worker for shop: {scheme}://" in worker.output()
    assert not (shop.data_dir / "conveyor.db").exists()
    assert outbox_message(shop, f"Your order #{order} is confirmed")["To"] == "server@example.com"
    assert export["state"] == "SUCCESS", export
    assert download_rows(shop, export["download_url"])[1][:4] == [
        str(order), "server@example.com", "mug", "2"]
    assert "1 order in all." in summary
