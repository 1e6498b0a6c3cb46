"""``python -m conveyor.worker MODULE[:APP] OPTIONS_JSON``: the supervisor process.

`conveyor worker` checks the app and the broker, then execs this: a supervisor that never
imports the user's code or a broker driver (each worker process imports them after
fork()), so it stays a few MB instead of carrying a copy of everything its workers load.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING

from conveyor.worker.supervisor import Supervisor, configure_logging

if TYPE_CHECKING:
    from conveyor.app import App


def main(argv: list[str]) -> int:
    spec, raw = argv
    options = json.loads(raw)
    configure_logging(options.pop("loglevel"))
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())

    def load_app() -> App:  # runs in each worker process, after fork()
        from conveyor.discovery import load_app

        return load_app(spec)

    return Supervisor(load_app, **options).run()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
