"""Start-up and size benchmarks: each case paired, in one run, with its floor or anchor.

    .venv/bin/python benchmarks/bench_startup.py                       # every case, 5 pairs each
    .venv/bin/python benchmarks/bench_startup.py --cases candies run1 --repeat 9
    .venv/bin/python benchmarks/bench_startup.py --python /path/to/env/bin/python   # another environment
    .venv/bin/python benchmarks/bench_startup.py --kale-python /path/to/kale-env/bin/python

Cases (every run a fresh process, `.pyc` written and used, an empty compile cache of its own, so
each compile is a first compile of that notebook; one untimed warm-up of each command first):

- `candies`: `python -m kale_like candies_sharing.ipynb --kfp -o OUT -q` (Kale's own example
  notebook, from $KALE_LIKE_PEER_CASES or a `shared/peer-cases/kale` folder above the checkout),
  interleaved with the floor `python -c "import kfp.compiler"`, and with Kale 2.3.0 compiling the
  same notebook when `--kale-python` names the interpreter of an environment that has it: `kale --nb`
  writes a DSL script, and running that script writes the YAML, so the anchor is both (Kale 2.3.0
  refuses the notebook's stale `docker_image` metadata key, so it gets a copy without it).
- `steps150`, `steps2000`: notebooks of 150 and about 2,000 steps made by make_notebooks.py (seed 0),
  compiled the same way (`--max-workflow-size 0`: the 2,000-step Workflow is larger than a cluster
  stores, which is refused otherwise), interleaved with the floor; peak memory is the process's
  maximum resident set size (`wait4`).
- `edit150`: the 150-step notebook compiled again, each time after adding a line to one step, with
  the cache folder of the earlier compiles (the warm-up's): what a user editing a notebook waits for.
- `seed002`: `Pipeline.add_step` x8 of a step sleeping 0.5 s, run on 4 workers (process backend):
  the time of the first `run()` in a fresh process (it compiles first), against the ideal 1.0 s and
  interleaved with the floor for the same work, a `ProcessPoolExecutor(4)` started and running the
  8 sleeps in a fresh process.
- `run1`: `python -m kale_like one_step.ipynb --run -q` (one step, `x = 1 + 1`), fresh store,
  interleaved with the floor.

Times run from fork to exit; peak memory is the command's maximum resident set size.
Ratios are paired: ours / anchor within each pair, then the median (and range) of those.
The environment is named by whether JupyterLab is importable in it (the `jupyter` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model, load_avg, wait_for_load  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FLOOR = ["-c", "import kfp.compiler"]
CASES = ("candies", "steps150", "edit150", "steps2000", "seed002", "run1")

SEED_002 = '''
import sys, time
from kale_like import Pipeline, ParallelExecutor, step

@step
def process_chunk(chunk_id):
    import time
    time.sleep(0.5)
    return f"processed_{chunk_id}"

pipeline = Pipeline("parallel_processing")
for i in range(8):
    pipeline.add_step(process_chunk, name=f"chunk_{i}", params={"chunk_id": i})
started = time.perf_counter()
result = pipeline.run(executor=ParallelExecutor(max_workers=4), echo=False, store=sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - started, "status": result.status}))
'''.replace("import sys, time", "import json, sys, time")

SEED_002_FLOOR = '''
import json, time
from concurrent.futures import ProcessPoolExecutor

def process_chunk(chunk_id):
    time.sleep(0.5)
    return f"processed_{chunk_id}"

if __name__ == "__main__":
    started = time.perf_counter()
    with ProcessPoolExecutor(4) as pool:
        list(pool.map(process_chunk, range(8)))
    print(json.dumps({"seconds": time.perf_counter() - started, "status": "SUCCEEDED"}))
'''


def _peer_notebook() -> Path | None:
    if os.environ.get("KALE_LIKE_PEER_CASES"):
        path = Path(os.environ["KALE_LIKE_PEER_CASES"]) / "candies_sharing.ipynb"
        return path if path.exists() else None
    for folder in REPO.parents:
        path = folder / "shared" / "peer-cases" / "kale" / "candies_sharing.ipynb"
        if path.exists():
            return path
    return None


def _environment(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "_KFP_RUNTIME")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env


# Runs a command and reports its wall time and peak RSS. A child's maximum RSS starts at the high-water
# mark of the process that forked it (Linux carries it across exec), so the command is forked by this
# small interpreter, not by the benchmark (which holds the notebooks it made), and timed there.
_LAUNCHER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    json.dump({"seconds": seconds, "kb": usage.ru_maxrss}, out)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _run(command: list[str], cwd: Path, env: dict) -> tuple[float, float, str]:
    """Wall seconds from fork to exit, peak RSS in MB, stdout."""
    report = cwd / "launcher.json"
    done = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, str(report), *command], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}")
    measured = json.loads(report.read_text())
    return measured["seconds"], measured["kb"] / 1024, done.stdout


class Case:
    """A command of ours and its anchors, each a function of a fresh scratch folder."""

    def __init__(self, name: str, what: str, ours, anchors: dict, goal: str, inner: bool = False,
                 cache: Path | None = None):
        self.name, self.what, self.ours, self.anchors, self.goal, self.inner = name, what, ours, anchors, goal, inner
        self.cache = cache  # a compile cache shared by the runs (else each run has an empty one)
        self.check: Callable[[Path], None] | None = None  # asserts a run of ours did the work


def _cases(python: str, kale_python: str | None, work: Path, wanted: list[str]) -> list[Case]:
    from make_notebooks import write_notebook

    floor = {"floor `python -c \"import kfp.compiler\"`": lambda scratch: [python, *FLOOR]}
    made: list[Case] = []

    def compile_command(notebook: Path, *extra: str):
        return lambda scratch: [python, "-m", "kale_like", str(notebook), "--kfp", "-o", str(scratch / "p.yaml"),
                                "-q", *extra]

    if "candies" in wanted:
        notebook = _peer_notebook()
        if notebook is None:
            print("candies: Kale's candies_sharing.ipynb not found; case left out", file=sys.stderr)
        else:
            anchors = dict(floor)
            if kale_python:
                for_kale = work / "candies_for_kale.ipynb"
                document = json.loads(notebook.read_text(encoding="utf-8"))
                document["metadata"].get("kubeflow_notebook", {}).pop("docker_image", None)
                for_kale.write_text(json.dumps(document), encoding="utf-8")
                anchors["Kale 2.3.0 (`kale --nb`, then its DSL script to YAML)"] = lambda scratch: [
                    "sh", "-c", f"{kale_python} -m kale.cli --nb {for_kale} >/dev/null 2>&1 && "
                    f"{kale_python} .kale/kale-pipeline.kale.py"]
            made.append(Case("candies", "cold `--kfp` of Kale's candies_sharing notebook",
                             compile_command(notebook), anchors, "<= 1.5 x floor"))
    for steps, name in ((150, "steps150"), (2000, "steps2000")):
        if name in wanted:
            notebook = work / f"steps_{steps}.ipynb"
            cells = 380 if steps == 150 else round(steps * 2.53)
            made_steps = write_notebook(notebook, cells, 0)
            goal = "<= 1.5 s" if steps == 150 else "<= 15 s, <= 500 MB"
            made.append(Case(name, f"{made_steps}-step notebook, cold `--kfp`",
                             compile_command(notebook, "--max-workflow-size", "0"), floor, goal))
    if "edit150" in wanted:
        edited_notebook = work / "edited_150.ipynb"
        write_notebook(edited_notebook, 380, 0)
        edits, last_edit = iter(range(1, 1000)), [0]

        def edited(scratch: Path) -> list[str]:
            """The notebook with one more line in its last step's first cell, compiled again."""
            document = json.loads(edited_notebook.read_text(encoding="utf-8"))
            cell = next(c for c in reversed(document["cells"]) if any(t.startswith("step:")
                                                                     for t in c["metadata"].get("tags", [])))
            last_edit[0] = next(edits)
            cell["source"] = "".join(cell["source"]) + f"\nedit_{last_edit[0]} = 1"
            edited_notebook.write_text(json.dumps(document), encoding="utf-8")
            return compile_command(edited_notebook, "--max-workflow-size", "0")(scratch)

        made.append(Case("edit150", "150-step notebook compiled again after a one-line edit (the facts and the "
                         "step runtime kept by the earlier compiles)", edited, floor, "-", cache=work / "edit_cache"))
        # the DSL module beside the YAML holds each step's code as it is (the YAML folds long lines)
        made[-1].check = lambda scratch: (_contains(scratch / "p_kfp.py", f"edit_{last_edit[0]} = 1"),
                                          _contains(scratch / "p.yaml", "s149"))
    for case in made:
        if case.name in ("candies", "steps150", "steps2000"):
            case.check = lambda scratch: _contains(scratch / "p.yaml", "pipelineInfo")
    if "seed002" in wanted:
        script, floor_script = work / "seed002.py", work / "seed002_floor.py"
        script.write_text(SEED_002)
        floor_script.write_text(SEED_002_FLOOR)
        pool = {"`ProcessPoolExecutor(4)`, 8 sleeps": lambda scratch: [python, str(floor_script)]}
        made.append(Case("seed002", "seed 002 `Pipeline.add_step` x8 (0.5 s each), 4 workers, first `run()`, "
                         "first compile", lambda scratch: [python, str(script), str(scratch / "store")], pool,
                         "<= 1.15 s (ideal 1.0)", inner=True))
        made.append(Case("seed002", "the same, its YAML kept by an earlier process (the user's cache folder)",
                         lambda scratch: [python, str(script), str(scratch / "store")], pool,
                         "<= 1.15 s (ideal 1.0)", inner=True, cache=work / "kept_cache"))
    if "run1" in wanted:
        one_step = work / "one_step.ipynb"
        cell = {"cell_type": "code", "id": "a", "metadata": {"tags": ["step:one"]}, "execution_count": None,
                "outputs": [], "source": "x = 1 + 1\n"}
        one_step.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [cell]}))
        made.append(Case("run1", "`--run` of a 1-step trivial pipeline",
                         lambda scratch: [python, "-m", "kale_like", str(one_step), "--run", "-q", "--store",
                                          str(scratch / "store")], floor, "<= 0.6 s"))
    return made


def _contains(path: Path, text: str) -> None:
    if not path.exists() or text not in path.read_text(encoding="utf-8"):
        raise SystemExit(f"{path} does not hold {text!r}: the run measured did not do the work")


def _measure(case: Case, repeat: int, work: Path) -> dict:
    names = ["ours", *case.anchors]
    commands = {"ours": case.ours, **case.anchors}
    times: dict[str, list[float]] = {n: [] for n in names}
    inner: dict[str, list[float]] = {n: [] for n in names}
    memory: dict[str, list[float]] = {n: [] for n in names}
    for index in range(repeat + 1):  # the first round is the warm-up
        order = names if index % 2 == 0 else names[::-1]
        for name in order:
            scratch = Path(tempfile.mkdtemp(dir=work))
            env = _environment({"KALE_LIKE_CACHE_DIR": str(case.cache or scratch / "cache")})
            seconds, rss, out = _run(commands[name](scratch), scratch, env)
            if name == "ours" and case.check is not None:
                case.check(scratch)
            if index == 0:
                continue
            times[name].append(seconds)
            memory[name].append(rss)
            if case.inner and out.strip():
                inner[name].append(json.loads(out.strip().splitlines()[-1])["seconds"])
    return {"times": times, "inner": inner, "memory": memory}


def _spread(values: list[float], digits: int = 3) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def _row(case: Case, result: dict, environment: str) -> list[str]:
    rows = []
    key = "inner" if case.inner else "times"
    ours = result[key]["ours"]
    for anchor, values in result[key].items():
        if anchor == "ours":
            continue
        ratios = [a / b for a, b in zip(ours, values)]
        rows.append(f"| {case.what} | {environment} | {len(ours)} | {_spread(ours)} | "
                    f"{statistics.median(result['memory']['ours']):.0f} | {anchor}: {_spread(values)} | "
                    f"{_spread(ratios, 2)} | {case.goal} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--python", default=sys.executable, help="the interpreter of the environment to measure")
    parser.add_argument("--kale-python", help="the interpreter of an environment with Kale 2.3.0 (candies)")
    parser.add_argument("--max-load", type=float, help="first wait (up to 10 minutes) for a lower load average")
    args = parser.parse_args()
    wait_for_load(args.max_load)
    probe = subprocess.run([args.python, "-c", "import jupyterlab"], capture_output=True)
    environment = "with the jupyter extra" if probe.returncode == 0 else "without JupyterLab"
    print(f"Machine: {os.cpu_count()} cores ({cpu_model()}), Python {sys.version.split()[0]}; environment: "
          f"{environment} ({args.python}); load average (1/5/15 min) before: {load_avg()}")
    print()
    print("| case | environment | pairs | ours s: median (min-max) | ours peak MB | anchor s: median (min-max) | "
          "ours / anchor, paired: median (min-max) | goal |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for case in _cases(args.python, args.kale_python, work, args.cases):
            repeat = min(args.repeat, 3) if case.name == "steps2000" else args.repeat
            for row in _row(case, _measure(case, repeat, work), environment):
                print(row, flush=True)
    print()
    print(f"Load average after: {load_avg()}. seed002 times the `run()` call inside the process (its floor the "
          "pool's start, 8 sleeps and shutdown); the other cases whole processes, fork to exit.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
