"""Generate large annotated notebooks for the compile-time benchmark.

`make_notebook(n_cells, seed)` builds, with nbformat, a notebook of exactly `n_cells` code cells:

- cell 0: `imports` (numpy, math, statistics, json, collections)
- cell 1: `pipeline-parameters` (6 literal parameters)
- cell 2: `functions` (two small helpers)
- then steps: each step is a `step:NAME` cell followed by 0-3 untagged continuation cells
  (on average ~1.4), so a step spans ~2.4 cells;
- last cell: `pipeline-metrics` (4 names printed).

Every step reads variables defined by earlier steps and defines new ones. The wiring is seeded
(`random.Random(seed)`) and mixes the shapes real notebooks have: ~60% of the steps read a
variable of the step just before (chains); ~45% also read 1-2 variables of random earlier steps,
most within the last 8, some from far back (fan-ins); ~10% carry a `prev:` tag; a step that reads
nothing earlier is a new root (a new data source). Continuation cells use the parameters and the
helper functions.

With seed 0 (the default), as kale_like's step graph sees them:

| cells | steps | continuation cells | parents per step (0/1/2/3/4) | longest path | prev: tags |
|---|---|---|---|---|---|
| 100 | 35 | 61 | 6 / 19 / 8 / 1 / 1 | 15 | 5 |
| 500 | 199 | 297 | 22 / 107 / 54 / 15 / 1 | 44 | 21 |

`python benchmarks/make_notebooks.py OUTDIR` writes both and prints the step counts.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

PARAMETERS = {
    "seed": 42,
    "scale": 1.5,
    "threshold": 0.25,
    "window": 5,
    "label": "bench",
    "use_log": True,
}

IMPORTS = """import json
import math
import statistics
from collections import Counter

import numpy as np"""

FUNCTIONS = '''def normalise(values):
    """Scale a list of numbers to [0, 1]."""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return [(v - low) / span for v in values]


def summarise(values):
    return {"mean": statistics.fmean(values), "max": max(values), "n": len(values)}'''


def _step_cell(rng: random.Random, index: int, name: str, reads: list[str], uses_param: bool) -> tuple[str, list[str]]:
    """The first cell of a step: reads `reads`, defines two new variables; returns (code, defined)."""
    a, b = f"{name}_values", f"{name}_total"
    lines = [f"# step {index}: combine {', '.join(reads) if reads else 'a new source'}"]
    if reads:
        parts = []
        for read in reads:
            if read.endswith("_total"):
                parts.append(f"[float({read})]")
            else:
                parts.append(f"list({read})")
        lines.append(f"{a} = {' + '.join(parts)}")
    else:
        lines.append(f"rng_{index} = np.random.default_rng(seed + {index})")
        lines.append(f"{a} = [float(x) for x in rng_{index}.normal(size={rng.randint(20, 80)})]")
    if uses_param:
        param = rng.choice(["scale", "threshold", "window"])
        lines.append(f"{a} = [v * {param} for v in {a}]")
    if rng.random() < 0.4:
        lines.append(f"{b} = float(np.sum(np.asarray({a})))")
    else:
        lines.append(f"{b} = math.fsum({a})")
    if rng.random() < 0.2:
        lines.append(f"{name}_summary = summarise({a})")
        lines.append(f"print(json.dumps({name}_summary))")
    lines.append(f'print(f"{name}: {{len({a})}} values, total {{{b}:.3f}}")')
    return "\n".join(lines), [a, b]


def _continuation_cell(rng: random.Random, name: str, k: int) -> tuple[str, str]:
    """An untagged cell continuing step `name`; returns (code, new variable)."""
    new = f"{name}_part{k}"
    choice = rng.randrange(4)
    if choice == 0:
        code = f"{new} = normalise({name}_values)\nprint(max({new}))"
    elif choice == 1:
        code = (
            f"{new} = [v for v in {name}_values if abs(v) > threshold]\n"
            f"if use_log:\n    {new} = [math.log1p(abs(v)) for v in {new}]"
        )
    elif choice == 2:
        code = (
            f"counts_{name}_{k} = Counter(round(v) for v in {name}_values)\n"
            f"{new} = [float(n) for _, n in sorted(counts_{name}_{k}.items())][:window]\n"
            f"print({new})"
        )
    else:
        code = (
            f"{new} = []\n"
            f"for i in range(0, len({name}_values), window):\n"
            f"    chunk = {name}_values[i : i + window]\n"
            f"    {new}.append(sum(chunk) / len(chunk))"
        )
    return code, new


def make_notebook(n_cells: int, seed: int = 0) -> tuple[nbformat.NotebookNode, int]:
    """An annotated notebook of exactly `n_cells` code cells; returns (notebook, step count)."""
    if n_cells < 5:
        raise ValueError("need at least 5 cells")
    rng = random.Random(seed)
    cells = [
        new_code_cell(IMPORTS, metadata={"tags": ["imports"]}),
        new_code_cell("\n".join(f"{k} = {v!r}" for k, v in PARAMETERS.items()), metadata={"tags": ["pipeline-parameters"]}),
        new_code_cell(FUNCTIONS, metadata={"tags": ["functions"]}),
    ]
    budget = n_cells - len(cells) - 1  # the last cell is pipeline-metrics
    defined: list[list[str]] = []  # per step: the names a later step may read
    names: list[str] = []
    while budget > 0:
        index = len(names)
        name = f"s{index:03d}"
        extra = min(rng.choices([0, 1, 2, 3], weights=[25, 25, 30, 20])[0], budget - 1)
        reads: list[str] = []
        if index:
            if rng.random() < 0.6:
                reads.append(rng.choice(defined[index - 1]))
            if rng.random() < 0.45:
                for _ in range(rng.choice([1, 1, 2])):
                    back = rng.randint(1, min(8, index)) if rng.random() < 0.8 else rng.randint(1, index)
                    pick = rng.choice(defined[index - back])
                    if pick not in reads:
                        reads.append(pick)
            if not reads and rng.random() < 0.65:
                reads.append(rng.choice(defined[index - 1]))
        tags = [f"step:{name}"]
        if index > 1 and rng.random() < 0.1:
            tags.append(f"prev:{names[rng.randint(max(0, index - 4), index - 1)]}")
        code, new = _step_cell(rng, index, name, reads, rng.random() < 0.5)
        cells.append(new_code_cell(code, metadata={"tags": tags}))
        exported = list(new)
        for k in range(extra):
            code, var = _continuation_cell(rng, name, k)
            cells.append(new_code_cell(code))
            exported.append(var)
        defined.append(exported)
        names.append(name)
        budget -= 1 + extra
    metrics = [f"{names[-1]}_total", f"{names[len(names) // 2]}_total", f"{names[0]}_total", f"{names[-2]}_total"]
    cells.append(new_code_cell("\n".join(f"print({m})" for m in metrics), metadata={"tags": ["pipeline-metrics"]}))
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i:04d}"  # deterministic (nbformat's default ids are random)
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    notebook.metadata["kubeflow_notebook"] = {
        "pipeline_name": f"bench-{n_cells}-cells",
        "experiment_name": "bench",
        "pipeline_description": f"Generated benchmark notebook: {n_cells} cells, {len(names)} steps.",
    }
    nbformat.validate(notebook)
    return notebook, len(names)


def write_notebook(path: Path, n_cells: int, seed: int = 0) -> int:
    """Write the notebook; return its number of steps."""
    notebook, steps = make_notebook(n_cells, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))
    return steps


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/generated")
    for n in (100, 500):
        steps = write_notebook(out / f"bench_{n}_cells.ipynb", n)
        print(f"{out / f'bench_{n}_cells.ipynb'}: {n} cells, {steps} steps")
