"""What both benchmark scripts report about the machine, and how they wait for a quieter moment."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path


def load_avg() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def wait_for_load(max_load: float | None, limit: float = 600) -> None:
    """On a shared machine, wait (up to `limit` s) for the 1-minute load average to fall below `max_load`."""
    if max_load is None:
        return
    deadline = time.monotonic() + limit
    while os.getloadavg()[0] >= max_load and time.monotonic() < deadline:
        print(f"waiting for load < {max_load} (now {load_avg()})", file=sys.stderr)
        time.sleep(15)
