"""A 50-step notebook with loops and branches: steps reading one or two of the
last eight, every eighth a `foreach:` loop, every sixth a step under a `when:`. The layout tests and
the browser tests draw it."""

from __future__ import annotations

import random
from pathlib import Path

import nbformat


def groups_cells(steps: int = 50, seed: int = 3) -> list[tuple[str, list[str]]]:
    rng = random.Random(seed)
    cells = [("items = [1, 2, 3]\nthr = 0.5", ["pipeline-parameters"]),
             ("def g(*a):\n    return sum(sum(x) if isinstance(x, list) else x for x in a)", ["functions"])]
    readable: list[str] = []
    for n in range(steps):
        name = f"s{n:02d}"
        if n % 6 == 5 and readable:  # a branch: a step under a condition (no step may read it)
            value = rng.choice(readable[-6:])
            cells.append((f"print('c', {value})", [f"step:{name}", f"when:{value}:>:thr"]))
        elif n % 8 == 3 and readable:  # a loop
            value = rng.choice(readable[-5:])
            cells.append((f"v{n} = g({value}) + it", [f"step:{name}", "foreach:it:items"]))
            readable.append(f"v{n}")
        else:
            sources = rng.sample(readable[-8:], min(len(readable[-8:]), rng.choice([1, 1, 2]))) if readable else []
            if readable and rng.random() < 0.1:
                sources.append(rng.choice(readable[:5]))
            expression = f"g({', '.join(dict.fromkeys(sources))})" if sources else "1"
            cells.append((f"v{n} = {expression}", [f"step:{name}"]))
            readable.append(f"v{n}")
    return cells


def write_groups_notebook(path: Path, steps: int = 50) -> Path:
    notebook = nbformat.v4.new_notebook()
    for source, tags in groups_cells(steps):
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        notebook.cells.append(cell)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path
