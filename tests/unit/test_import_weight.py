"""What a worker process loads before it imports the user's app: nothing heavy that only
some apps use. Each of these costs every process 1-4 MB of RSS (hashlib loads OpenSSL,
asyncio loads ssl), and a worker tree is a supervisor plus one process per core."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

HEAVY = ["asyncio", "ssl", "hashlib", "hmac", "ctypes", "zoneinfo", "pkgutil", "redis",
         "aiormq", "croniter", "django", "flask"]


def loaded(imports: str, watched: list[str]) -> str:
    """Which of `watched` a fresh interpreter has loaded after `import {imports}`."""
    probe = (f"import sys, {imports}; "
             f"print(','.join(m for m in {watched!r} if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src")})
    return run.stdout.strip()


def test_the_worker_and_cli_modules_import_none_of_the_heavy_modules() -> None:
    assert loaded("conveyor, conveyor.cli, conveyor.worker.supervisor, conveyor.worker.worker",
                  HEAVY) == ""


def test_the_supervisor_imports_no_codec_driver_or_app_module() -> None:
    """The supervisor (`python -m conveyor.worker`) only forks and watches: msgspec alone
    would add 5 MB to it, and the workers import what they need after fork()."""
    assert loaded("conveyor.worker.__main__", [*HEAVY, "msgspec", "conveyor.app"]) == ""
