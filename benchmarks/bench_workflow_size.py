"""Size of what a compiled pipeline becomes, and what compiling it costs, for pipelines of many steps.

    python benchmarks/bench_workflow_size.py                   # 3 repetitions of each case
    python benchmarks/bench_workflow_size.py --repeat 5 --output results.md --max-load 2
    python benchmarks/bench_workflow_size.py --tree /tmp/old   # another kale_like tree (e.g. `git archive`)

Cases (the goals of the issue "share components, estimate the Workflow"):

- `add_step 300` / `add_step 1000`: seed document 002's shape, `Pipeline.add_step(process_chunk,
  name=f"chunk_{i}", params={"chunk_id": i})` for i in range(N) (tests/fixtures/code_built/chunks.py);
- `notebook 150`: benchmarks/make_notebooks.py's generator at 380 cells (seed 0), 150 steps of
  distinct cells.

Each measurement is a fresh `python` process (kale_like imported from `--tree`, default this
tree) that builds the step graph (not timed) and times `compile_graph` with the compiled-pipeline
cache off: kfp's define and compile, the YAML, the structural and server checks, the Workflow
estimate. It reports the YAML's bytes and the process's peak RSS (`ru_maxrss`: the graph, kfp and
the compile). This script then estimates, with this tree's `workflow_size`, the Argo Workflow the
KFP backend makes of that YAML (for KFP 2.14 and 2.17), so an older tree's YAML is measured the
same way. For whole-process figures of the compile alone, `--pickle DIR` writes each case's step
graph; `python benchmarks/bench_workflow_size.py --compile-pickled DIR/add_step_1000.pickle` then
imports, unpickles and compiles, nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from machine import cpu_model, load_avg, wait_for_load  # noqa: E402

CHUNKS = ROOT / "tests" / "fixtures" / "code_built" / "chunks.py"
CASES = ("add_step_300", "add_step_1000", "notebook_150")
NOTEBOOK_CELLS = 380  # 150 steps with make_notebooks' seed 0


def build_graph(case: str, notebook: str):
    """The step graph of `case` (with whatever kale_like is importable)."""
    os.environ["KALE_LIKE_COMPILE_CACHE"] = "0"
    if case.startswith("add_step_"):
        import importlib.util

        from kale_like import Pipeline

        spec = importlib.util.spec_from_file_location("bench_chunks", CHUNKS)
        chunks = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(chunks)
        pipeline = Pipeline("chunked")
        for i in range(int(case.rsplit("_", 1)[1])):
            pipeline.add_step(chunks.process_chunk, name=f"chunk_{i}", params={"chunk_id": i})
        return pipeline.graph()
    from kale_like.frontends.notebook import notebook_to_graph

    return notebook_to_graph(notebook)


def child(case: str, notebook: str, yaml_out: str) -> None:
    """One measurement, in this (fresh) process: prints a JSON line."""
    import resource

    import kfp.compiler  # noqa: F401 - imported before the clock, as by any caller

    from kale_like.backends.kfp.compile import compile_graph

    graph = build_graph(case, notebook)
    started = time.perf_counter()
    compiled = compile_graph(graph)
    seconds = time.perf_counter() - started
    Path(yaml_out).write_text(compiled.yaml_text, encoding="utf-8")
    print(json.dumps({"steps": len(graph.all_steps), "seconds": seconds, "yaml": len(compiled.yaml_text.encode()),
                      "dsl": len(compiled.dsl_source.encode()),
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def compile_pickled(path: str) -> None:
    os.environ["KALE_LIKE_COMPILE_CACHE"] = "0"
    from kale_like.backends.kfp.compile import compile_graph

    with open(path, "rb") as handle:
        compile_graph(pickle.load(handle))


def estimate(yaml_path: Path) -> dict[str, int]:
    import yaml

    from kale_like.backends.kfp.workflow_size import workflow_shape

    documents = [d for d in yaml.load_all(yaml_path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader) if d]
    platform = next((d for d in documents[1:] if "platforms" in d), None)
    shape = workflow_shape(documents[0], platform)
    return {version: shape.estimate(version).total for version in ("2.14", "2.17")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--tree", type=Path, default=ROOT, help="the kale_like tree the children import")
    parser.add_argument("--output")
    parser.add_argument("--max-load", type=float)
    parser.add_argument("--pickle", type=Path, help="write each case's step graph here and stop")
    parser.add_argument("--compile-pickled", help=argparse.SUPPRESS)
    parser.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        child(*args._child)
        return 0
    if args.compile_pickled:
        compile_pickled(args.compile_pickled)
        return 0
    scratch = Path(tempfile.mkdtemp(prefix="kale_like_bench_"))
    from make_notebooks import write_notebook

    notebook = scratch / "notebook_150.ipynb"
    write_notebook(notebook, NOTEBOOK_CELLS, 0)
    cases = args.cases.split(",")
    if args.pickle:
        args.pickle.mkdir(parents=True, exist_ok=True)
        for case in cases:
            with open(args.pickle / f"{case}.pickle", "wb") as handle:
                pickle.dump(build_graph(case, str(notebook)), handle)
        print(f"wrote {', '.join(cases)} to {args.pickle}")
        return 0
    wait_for_load(args.max_load)
    env = {**os.environ, "PYTHONPATH": str(args.tree), "KALE_LIKE_COMPILE_CACHE": "0"}
    lines = [f"Tree: {args.tree}; machine: {os.cpu_count()} cores ({cpu_model()}), load {load_avg()} before", "",
             "| case | steps | YAML bytes | DSL bytes | Workflow estimate 2.14 / 2.17 | compile s (median, min) "
             "| peak RSS MB (median) |", "|---|---|---|---|---|---|---|"]
    for case in cases:
        runs = []
        for _ in range(args.repeat):
            out = scratch / f"{case}.yaml"
            done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_child", case, str(notebook),
                                   str(out)], env=env, cwd=scratch, capture_output=True, text=True, timeout=1800)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        sizes = estimate(scratch / f"{case}.yaml")
        seconds = [r["seconds"] for r in runs]
        lines.append(f"| {case} | {runs[0]['steps']} | {runs[0]['yaml']:,} | {runs[0]['dsl']:,} | "
                     f"{sizes['2.14']:,} / {sizes['2.17']:,} | {statistics.median(seconds):.2f}, {min(seconds):.2f} "
                     f"| {statistics.median(r['peak_mb'] for r in runs):.0f} |")
        print(lines[-1], file=sys.stderr)
    lines.append("")
    lines.append(f"Load after: {load_avg()}")
    text = "\n".join(lines)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
