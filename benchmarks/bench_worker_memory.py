"""Worker processes forked with the parent's objects frozen for the garbage collector, or not.

    python benchmarks/bench_worker_memory.py [--repeat 3] [--objects 2000000]

A fresh `python` per measurement imports kfp, numpy and scikit-learn (a parent like a notebook
kernel), then runs, on the process backend, a one-step pipeline whose step builds `--objects`
tuples and collects garbage. Timed: `run_pipeline`; memory: the peak proportional set size of the
process tree above its start (pages shared by parent and worker count once). "not frozen" replaces
`workers._frozen_heap` with a no-op for that measurement. The two kinds alternate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

STEP = '''
from kale_like import pipeline, step


@step
def churn(n: int) -> int:
    import gc

    keep = [(i, str(i)) for i in range(n)]
    gc.collect()
    return len(keep)


@pipeline
def churning(n: int = 1000):
    churn(n)
'''

CHILD = '''
import contextlib, json, sys, time
sys.path.insert(0, {here!r})
import numpy, sklearn, kfp.dsl.executor  # noqa: F401
import kale_like
from kale_like.backends.local import workers
from kale_like.backends.local.ir import PipelineIR
from kale_like.backends.local.run import RunConfig, run_pipeline
from bench_local import TreeMemory
if not {frozen}:
    workers._frozen_heap = contextlib.nullcontext
ir = PipelineIR.from_text(kale_like.compile({source!r}))
with TreeMemory() as memory:
    start = time.perf_counter()
    result = run_pipeline(ir, {{"n": {objects}}}, RunConfig(store={store!r}, backend="process", max_workers=1,
                                                          echo=False, cache=False))
    wall = time.perf_counter() - start
assert result.succeeded, result.error
print(json.dumps({{"wall": wall, "pss": memory.report()["peak_pss"]}}))
'''


def measure(folder: Path, frozen: bool, objects: int) -> dict:
    code = CHILD.format(here=str(HERE), frozen=frozen, source=str(folder / "churning.py"), objects=objects,
                        store=str(folder / f"store-{frozen}"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=folder)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--objects", type=int, default=2_000_000)
    args = parser.parse_args()
    results: dict[bool, list[dict]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "churning.py").write_text(STEP, encoding="utf-8")
        for rep in range(args.repeat):
            for frozen in ((True, False) if rep % 2 == 0 else (False, True)):
                results[frozen].append(measure(folder, frozen, args.objects))
    rows = ["| workers forked | run, ms (median / min) | peak PSS above start, MB (median) |", "|---|---|---|"]
    for frozen, label in ((False, "not frozen"), (True, "parent's objects frozen")):
        walls = [r["wall"] * 1000 for r in results[frozen]]
        pss = statistics.median(r["pss"] for r in results[frozen]) / 1e6
        rows.append(f"| {label} | {statistics.median(walls):.0f} / {min(walls):.0f} | {pss:.0f} |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
