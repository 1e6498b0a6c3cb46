"""The Django example in one command: ``make django-example`` (or ``python run.py``).

It does what you would do by hand, in three terminals:

1. ``python manage.py migrate``: creates the shop's database (in DATA_DIR, ``var/``);
2. the worker, with the periodic scheduler: ``python manage.py conveyor worker -p 1 --beat``;
3. the web server: ``python manage.py runserver 8000 --noreload``;

prints the URL, and on Ctrl-C (or SIGTERM) stops both: SIGTERM to each, which lets the
worker finish its running tasks (a warm shutdown), then SIGKILL if one hangs or you
press Ctrl-C again. Everything runs in this directory, whatever the current one.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

HERE = os.path.dirname(os.path.abspath(__file__))
MANAGE = [sys.executable, os.path.join(HERE, "manage.py")]
STOP_TIMEOUT = 15.0  # seconds each process gets to stop before it is killed


def start(*args: str) -> subprocess.Popen[bytes]:
    """A child in its own session: a Ctrl-C in the terminal reaches only this script,
    which then stops each child once, in order (a second SIGINT would tell the worker
    to abandon its running tasks)."""
    return subprocess.Popen([*MANAGE, *args], cwd=HERE, start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process (the worker's supervisor stops its own children), then
    SIGKILL to its whole group if it hangs or Ctrl-C is pressed again."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_until_listening(port: int, server: subprocess.Popen[bytes],
                         timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def supervise(processes: dict[str, subprocess.Popen[bytes]]) -> int:
    """Wait until one of the processes exits on its own; return its status."""
    while True:
        for name, process in processes.items():
            if process.poll() is not None:
                print(f"\nthe {name} exited with status {process.returncode}; stopping")
                return process.returncode or 1
        time.sleep(0.2)


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same clean stop as Ctrl-C


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000, help="web server port (8000)")
    options = parser.parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        migrate = subprocess.run([*MANAGE, "migrate", "--verbosity", "0"], cwd=HERE)
        if migrate.returncode:
            return migrate.returncode
        processes["worker"] = start("conveyor", "worker", "-p", "1", "--beat")
        processes["web server"] = start("runserver", f"127.0.0.1:{options.port}",
                                        "--noreload")
        if wait_until_listening(options.port, processes["web server"]):
            print(f"\n  Conveyor Django example: http://127.0.0.1:{options.port}/"
                  "\n  Ctrl-C stops the web server and the worker.\n", flush=True)
        return supervise(processes)
    except KeyboardInterrupt:
        return 0
    finally:
        for process in reversed(processes.values()):  # the web server first, then the worker
            stop(process)


if __name__ == "__main__":
    sys.exit(main())
