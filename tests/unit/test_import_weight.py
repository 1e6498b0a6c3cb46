"""What a worker process loads before it imports the user's app: nothing heavy that only
some apps use. Each of these costs every process 1-4 MB of RSS (hashlib loads OpenSSL,
asyncio loads ssl), and a worker tree is a supervisor plus one process per core."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

HEAVY = ["asyncio", "ssl", "hashlib", "hmac", "ctypes", "zoneinfo", "pkgutil", "redis",
         "aiormq", "croniter", "django", "flask"]


def test_the_worker_and_cli_modules_import_none_of_the_heavy_modules() -> None:
    probe = ("import sys, conveyor, conveyor.cli, conveyor.worker.supervisor, "
             "conveyor.worker.worker; "
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src")})

    assert loaded.stdout.strip() == ""


def test_the_supervisor_imports_no_codec_driver_or_app_module() -> None:
    """The supervisor (`python -m conveyor.worker`) only forks and watches: msgspec alone
    would add 5 MB to it, and the workers import what they need after fork()."""
    probe = ("import sys, conveyor.worker.__main__; "
             f"print(','.join(m for m in {[*HEAVY, 'msgspec', 'conveyor.app']!r} "
             "if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src")})

    assert loaded.stdout.strip() == ""
