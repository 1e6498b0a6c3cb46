"""Installing Conveyor into a project of one's own, as the README says: a wheel built as
`make dist` builds it, installed with every extra into a fresh virtual environment, and
the README's Quick start run there from a new directory."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(600)


def quick_start_module() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\n\n```python\n(# shop\.py\n.*?)```", readme, re.S)
    assert block, "README has no Quick start shop.py"
    return block.group(1)


def test_the_wheel_installs_with_every_extra_and_runs_the_quick_start(tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir",
                            str(tmp_path / "dist"), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("conveyor-*.whl"))

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"{wheel}[all]"],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]
    python = str(venv / "bin" / "python")
    extras = subprocess.run([python, "-c", "import conveyor.backends.redis, "
                             "conveyor.backends.amqp, conveyor.contrib.flask, aiormq, redis, "
                             "django, flask; print('ok')"],
                            capture_output=True, text=True, timeout=60)
    assert extras.stdout.strip() == "ok", extras.stderr

    project = tmp_path / "myproject"
    project.mkdir()
    (project / "shop.py").write_text(quick_start_module())
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CONVEYOR_") and k != "PYTHONPATH"}
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen([str(venv / "bin" / "conveyor"), "worker", "-A", "shop", "-p",
                               "1", "-Q", "default,emails"], cwd=project, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        said = subprocess.run(
            [python, "-c", "from shop import add, export_report\n"
             "print(add.delay(2, 3).get(timeout=60))\n"
             "print(export_report.delay('2026-10').get(timeout=60))"],
            cwd=project, env=env, capture_output=True, text=True, timeout=120)
        assert said.stdout.split() == ["5", "/exports/2026-10.csv"], (
            said.stderr + (tmp_path / "worker.log").read_text())
        status = subprocess.run([str(venv / "bin" / "conveyor"), "status", "-A", "shop"],
                                cwd=project, env=env, capture_output=True, text=True,
                                timeout=60)
        assert status.returncode == 0 and "default" in status.stdout, status.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
    assert (project / "conveyor.db").exists()  # the embedded default, in the project
