"""Running the Django example (examples/django_shop) in tests, as its README says: real
``manage.py`` processes (migrate, runserver, conveyor worker) in the example's directory,
with their data in a tmp DATA_DIR, driven over HTTP like a browser does (cookies and
Django's CSRF token included).

The test process never imports the example: pytest runs with another Django project's
settings (tests.django.settings).
"""

from __future__ import annotations

import html
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, ConveyorProcess

EXAMPLE_DIR = ROOT / "examples" / "django_shop"
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ManageProcess(ConveyorProcess):
    """``python manage.py ARGS`` in the example's directory, in its own process group,
    logging to a file in the test's tmp dir."""

    def __init__(self, log_dir: Path, env: dict[str, str], args: list[str]) -> None:
        super().__init__(EXAMPLE_DIR, env, args, launcher=("manage.py",), log_dir=log_dir)


@dataclass
class Response:
    status: int
    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)

    def brief(self) -> str:
        """For assertion messages: the status, and Django's error title or the page."""
        title = re.search(r"<title>(.*?)</title>", self.text, re.S)
        shown = " ".join(title.group(1).split()) if self.status >= 500 and title else self.text
        return f"{self.status} {self.url}\n{html.unescape(shown)[:3000]}"


class Shop:
    """The example for one test or module: its DATA_DIR, its processes, and a browser-like
    HTTP client with a cookie jar. `close()` stops everything it started."""

    def __init__(self, tmp: Path, *, broker_url: str | None = None,
                 row_delay: float = 0.05) -> None:
        self.data_dir = tmp / "data"
        self.log_dir = tmp / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # The example's settings, not the test run's (DJANGO_SETTINGS_MODULE, CONVEYOR_*, ...).
        self.env = {name: value for name, value in os.environ.items()
                    if not name.startswith(("CONVEYOR_", "DJANGO_", "MAIL_", "EXPORT", "DEBUG"))}
        self.env.update(DATA_DIR=str(self.data_dir), EXPORT_ROW_DELAY=str(row_delay),
                        PYTHONUNBUFFERED="1")
        if broker_url is not None:
            self.env["CONVEYOR_BROKER_URL"] = broker_url
        self.processes: list[ManageProcess] = []
        self.base_url = ""
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(CookieJar()))
        self._csrf_token = ""

    # -- processes ----------------------------------------------------------------------

    def manage(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``manage.py ARGS`` to the end; its output (it must succeed)."""
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=EXAMPLE_DIR,
                              env=self.env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"manage.py {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def start(self, *args: str) -> ManageProcess:
        process = ManageProcess(self.log_dir, self.env, list(args))
        self.processes.append(process)
        return process

    def start_server(self) -> None:
        port = free_port()
        server = self.start("runserver", f"127.0.0.1:{port}", "--noreload")
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"the web server did not start:\n{self.output()}")

    def start_worker(self, *args: str) -> ManageProcess:
        """``manage.py conveyor worker -p 1 ARGS``, as the README says."""
        return self.start("conveyor", "worker", "-p", "1", *args)

    def output(self) -> str:
        """The logs of every process started, for assertion messages."""
        return "\n".join(f"--- manage.py {' '.join(p.args)}\n{p.output()}"
                         for p in self.processes)

    def close(self) -> None:
        for process in self.processes:
            process.kill()

    # -- HTTP, as a browser -------------------------------------------------------------

    def get(self, path: str) -> Response:
        response = self._request(urllib.request.Request(self.base_url + path))
        found = CSRF_INPUT.search(response.text) if response.headers.get(
            "content-type", "").startswith("text/html") else None
        if found:
            self._csrf_token = found.group(1)
        return response

    def post(self, path: str, data: dict[str, Any] | None = None) -> Response:
        """Submit a form of the last page fetched (its CSRF token and cookie); redirects
        are followed, as a browser does."""
        assert self._csrf_token, "fetch the page with the form first"
        fields = {"csrfmiddlewaretoken": self._csrf_token, **(data or {})}
        body = urllib.parse.urlencode(fields).encode()
        request = urllib.request.Request(self.base_url + path, data=body, method="POST",
                                         headers={"Referer": self.base_url + "/"})
        return self._request(request)

    def _request(self, request: urllib.request.Request) -> Response:
        try:
            with self._opener.open(request, timeout=30) as answer:
                return Response(answer.status, answer.url, headers(answer.headers), answer.read())
        except urllib.error.HTTPError as error:
            with error:
                return Response(error.code, error.url, headers(error.headers), error.read())

    def wait_for(self, path: str, text: str, timeout: float = 30.0) -> str:
        """GET `path` until `text` is on the page (as its meta refresh would); the page."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.get(path)
            page = page_text(response)
            if text in page:
                return page
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared on {path}: "
                                     f"{response.brief()}\n{self.output()}")
            time.sleep(0.1)


def headers(message: Any) -> dict[str, str]:
    """Response headers by lower-case name."""
    return {name.lower(): value for name, value in message.items()}


def page_text(response: Response) -> str:
    return html.unescape(response.text)
