"""The Flask example in a real browser: upload a CSV through the page and watch the
progress bar move while a real worker imports it, served by the real dev server."""

from __future__ import annotations

import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.flask.conftest import FlaskProcess
from tests.flask.example_helpers import Example, contacts_csv

CHROMIUM = Path("/usr/bin/chromium")
# Without the networking flags Chromium waits on services it can't reach here.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ROWS, ROW_DELAY = 100, 0.03  # about 3 s of import: several polls of the page see it move


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(url: str, server: FlaskProcess, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError(f"the dev server never answered on {url}:\n{server.output()}")


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"the browser test needs Chromium at {CHROMIUM}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            start_flask: Callable[..., FlaskProcess]) -> Iterator[Example]:
    made = Example(tmp_path, monkeypatch, start_flask, row_delay=ROW_DELAY)
    yield made
    made.close()


def test_the_progress_bar_follows_an_import_to_the_end(example: Example, browser: Browser,
                                                      tmp_path: Path) -> None:
    port = free_port()
    server = example.start_server(port)
    example.start_worker()
    url = f"http://127.0.0.1:{port}/"
    wait_until_serving(url, server)
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_bytes(contacts_csv(ROWS))
    page = browser.new_page()

    page.goto(url)
    page.set_input_files("input[name=file]", str(csv_file))
    page.get_by_role("button", name="Import").click()
    page.wait_for_url("**/jobs/*")
    bar = page.get_by_role("progressbar")
    seen: list[int] = []  # the bar's value, sampled faster than the page polls
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not seen or seen[-1] < 100):
        seen.append(int(bar.get_attribute("aria-valuenow") or 0))
        time.sleep(0.05)

    assert any(0 < percent < 100 for percent in seen), seen
    assert seen[-1] == 100, f"{seen}\n{example.output()}"
    expect(page.get_by_role("status")).to_have_text("Succeeded")
    expect(page.get_by_text(f"Imported {ROWS} contacts.")).to_be_visible()
    expect(page.get_by_text(f"{ROWS} of {ROWS} rows (100 %)")).to_be_visible()
