"""Analysis time of a Python pipeline file against its size: N module-level constants, one step.

    .venv/bin/python benchmarks/bench_module_size.py            # 2,000 and 20,000 constants, 3 runs each
    .venv/bin/python benchmarks/bench_module_size.py --sizes 2000 20000 50000 --repeat 5

Each run is a fresh `python -m kale_like FILE --graph-json -q` (the front end and the graph checks,
no kfp compile), timed from spawn to exit; the table gives the minimum and median, and the time per
constant, which stays flat when the time is linear in the file's size.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def module(constants: int) -> str:
    lines = ["from kale_like import pipeline, step", ""]
    lines += [f"C{i} = {i}" for i in range(constants)]
    lines += ["", "", "@step", "def use():", "    print(C1)", "", "", '@pipeline(name="p")', "def p():", "    use()", ""]
    return "\n".join(lines)


def timed(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kale_like", str(path), "--graph-json", "-q"], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| constants | min (s) | median (s) | ms per constant (median) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            path = Path(folder) / f"constants_{size}.py"
            path.write_text(module(size), encoding="utf-8")
            timed(path)  # warm-up: .pyc files and the page cache
            runs = [timed(path) for _ in range(args.repeat)]
            median = statistics.median(runs)
            print(f"| {size:,} | {min(runs):.2f} | {median:.2f} | {median / size * 1000:.3f} |")


if __name__ == "__main__":
    main()
