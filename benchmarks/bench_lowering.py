"""Lowering time against a graph's size: `kale_like.lowering.lower` on step graphs of N branch tests.

    .venv/bin/python benchmarks/bench_lowering.py                    # 200, 800, 3,200 tests, 5 runs each
    .venv/bin/python benchmarks/bench_lowering.py --sizes 500 5000 --repeat 3

Each graph holds N steps returning an untyped result, each followed by an `if result > 0.5:` around a
step: every test is one KFP cannot state (an untyped result), so every pass has work to do on every
node (conditions_kfp_states writes a test step for each, the others walk and rewrite the whole graph).
Timed in this process around `lower()` alone (the graph is built first); the table gives the minimum
and median and the time per test, which stays flat when lowering is linear in the graph's size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from tiny_graphs import branch, condition, const, graph, step, task  # noqa: E402 (the tests' graph builder)

from kale_like.graph.model import StepGraph, Test  # noqa: E402
from kale_like.lowering import lower  # noqa: E402


def tests_graph(n: int) -> StepGraph:
    body = []
    for i in range(n):
        body.append(step(f"score_{i}", makes=("result",)))
        body.append(condition(f"if-{i}", branch(Test(">", (task(f"score_{i}"), const(0.5))), step(f"use_{i}"))))
    return graph(*body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 800, 3200])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print("| branch tests | runs | min s | median s | median ms a test |")
    print("|---|---|---|---|---|")
    for n in args.sizes:
        built = tests_graph(n)
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            lower(built)
            times.append(time.perf_counter() - started)
        median = statistics.median(times)
        print(f"| {n:,} | {args.repeat} | {min(times):.3f} | {median:.3f} | {1000 * median / n:.3f} |")


if __name__ == "__main__":
    main()
