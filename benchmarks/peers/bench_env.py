"""Where a driver run happens: this directory (the task modules, the workers' working
directory and PYTHONPATH), the Redis DB of the benchmarks, and the venv's bin directory
(the libraries' worker CLIs). Imported by every driver module; setting BENCH_REDIS_URL
here, when it is unset, passes the URL on to the workers' task modules.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
URL = os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
BIN = Path(sys.executable).parent
