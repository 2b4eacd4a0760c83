"""Steps for a notebook without step tags: one per markdown section, or one for the whole notebook.

Most notebooks are written without Kale's tags. Rather than refuse them, kale_like reads the
structure the author already gave: each `#` or `##` heading starts a step (named after the
heading), holding the code cells under it; cells that only import or only define functions and
classes are shared, as `imports` and `functions` cells are; code before the first heading is a
step named after the notebook. The tags are then exactly those a user could have written, so the
usual analysis finds the data each step reads from the others (sections that share nothing run
in parallel), and the panel can write them into the notebook for the user to edit. With no
heading, or when asked (`--one-step`), the whole notebook is one step.
"""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from pathlib import Path

from kale_like.frontends.magics import strip_magics
from kale_like.frontends.notebook_reader import RawCell, RawNotebook
from kale_like.graph.model import unique_name


def untagged(notebook: RawNotebook) -> bool:
    """No code cell carries a tag (any tag: a half-tagged notebook is the user's to finish)."""
    return not any(cell.tags for cell in notebook.cells)


def section_tags(notebook: RawNotebook, one_step: bool = False) -> dict[int, tuple[str, ...]]:
    """The tags each code cell (by its index among all cells) would carry, as described above."""
    starts = [] if one_step else sorted((h.index, h.text) for h in notebook.headings)
    taken: set[str] = set()
    whole = unique_name(_step_name(Path(notebook.path).stem, "notebook"), taken)
    names = {index: unique_name(_step_name(text, f"section_{number}"), taken)
             for number, (index, text) in enumerate(starts, start=1)}
    tags: dict[int, tuple[str, ...]] = {}
    for cell in notebook.cells:
        shared = _shared_kind(cell)
        if shared is not None:
            tags[cell.index] = (shared,)
            continue
        if not cell.source.strip():
            continue
        above = [index for index, _ in starts if index < cell.index]
        tags[cell.index] = (f"step:{names[above[-1]] if above else whole}",)
    return tags


def with_section_tags(notebook: RawNotebook, one_step: bool = False) -> tuple[RawNotebook, str]:
    """The notebook with those tags on its cells, and a line saying what was made."""
    tags = section_tags(notebook, one_step)
    cells = tuple(replace(cell, tags=tags.get(cell.index, ())) for cell in notebook.cells)
    steps = list(dict.fromkeys(tag[len("step:"):] for cell in cells for tag in cell.tags if tag.startswith("step:")))
    how = "one step for the whole notebook" if one_step or not notebook.headings else \
        f"{len(steps)} step{'s' if len(steps) != 1 else ''} from its headings"
    note = (f"{notebook.path}: no step tags, so {how}: {', '.join(steps) or 'none'} "
            "(tag cells step:NAME to choose the steps yourself)")
    return replace(notebook, cells=cells), note


def _shared_kind(cell: RawCell) -> str | None:
    """`imports` for a cell of only imports, `functions` for only definitions (and imports)."""
    try:
        tree = ast.parse(strip_magics(cell.source).code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None  # the step's own analysis reports it, with its line
    body = [node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    if not body:
        return None
    if all(isinstance(node, (ast.Import, ast.ImportFrom)) for node in body):
        return "imports"
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
    if all(isinstance(node, definitions) for node in body):
        return "functions"
    return None


def _step_name(text: str, fallback: str) -> str:
    """A step name (`[a-z_][a-z0-9_]*`) from a heading: `## 2. Clean the data!` -> `clean_the_data`."""
    text = re.sub(r"^\s*\d+(\.\d+)*[.)]\s*", "", text)  # a section number: "2." or "1.3)"
    words = re.findall(r"[a-z0-9]+", text.lower())
    name = "_".join(words)[:40].strip("_")
    if not name:
        return fallback
    return name if not name[0].isdigit() else f"s_{name}"
