"""Time against input size: a Python pipeline file of N module-level constants (one step), and a
notebook of N steps.

    .venv/bin/python benchmarks/bench_module_size.py            # 2,000 and 20,000 constants, 3 runs each
    .venv/bin/python benchmarks/bench_module_size.py --sizes 2000 20000 50000 --repeat 5
    .venv/bin/python benchmarks/bench_module_size.py --steps 200 2000 --repeat 1   # notebooks (~1 min)

Constants: each run is a fresh `python -m kale_like FILE --graph-json -q` (the front end and the
graph checks, no kfp compile). Steps: benchmarks/make_notebooks.py's generator (seed 0, about 2.5
cells a step) and a fresh `python -m kale_like NB --kfp -o OUT -q --max-workflow-size 0`, the whole
compile. Timed from spawn to exit; the table gives the minimum and median, and the time per
constant or step, which stays flat when the time is linear in the input's size.
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
    if path.suffix == ".ipynb":
        command = [str(path), "--kfp", "-o", str(path.with_suffix(".yaml")), "-q", "--max-workflow-size", "0"]
    else:
        command = [str(path), "--graph-json", "-q"]
    subprocess.run([sys.executable, "-m", "kale_like", *command], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def table(kind: str, inputs: list[tuple[int, Path]], repeat: int) -> None:
    print(f"| {kind} | min (s) | median (s) | ms per {kind[:-1]} (median) |")
    print("|---|---|---|---|")
    for size, path in inputs:
        timed(path)  # warm-up: .pyc files and the page cache
        runs = [timed(path) for _ in range(repeat)]
        median = statistics.median(runs)
        print(f"| {size:,} | {min(runs):.2f} | {median:.2f} | {median / size * 1000:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, nargs="+", help="time notebooks of about this many steps instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if args.steps:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from make_notebooks import write_notebook

            made = []
            for wanted in args.steps:
                path = Path(folder) / f"steps_{wanted}.ipynb"
                made.append((write_notebook(path, round(wanted * 2.53), 0), path))
            table("steps", made, args.repeat)
            return
        inputs = []
        for size in args.sizes:
            path = Path(folder) / f"constants_{size}.py"
            path.write_text(module(size), encoding="utf-8")
            inputs.append((size, path))
        table("constants", inputs, args.repeat)

if __name__ == "__main__":
    main()
