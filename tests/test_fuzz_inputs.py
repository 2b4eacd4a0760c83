"""Mutated example pipelines and notebooks: every one gets a result or a located refusal (exit 0 or
2), never an internal error, a traceback or a crash of the process.

Each example is the starting point; a mutation deletes, duplicates or swaps lines, inserts a hostile
snippet (nesting that used to crash libcst's parser, settings and defaults kfp rejects, a NUL, a
module-level side effect), replaces a character or truncates the file. The front end and the
graph checks run (`--graph-json`), which is where all of these are decided; examples are
derandomized and bounded (a few seconds), so a failure reproduces.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kale_like.surfaces.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MODULES = sorted((EXAMPLES / "pipelines").glob("*.py"))
NOTEBOOKS = sorted((EXAMPLES / "notebooks").glob("*.ipynb"))

HOSTILE = [
    "X = " + "(" * 3000 + "1" + ")" * 3000,
    "X = " + " + ".join("1" for _ in range(3000)),
    "X = " + "[" * 400 + "]" * 400,
    "X = " + " ".join('"a"' for _ in range(2000)),
    '@step(labels="team")',
    "@step(packages=True)",
    "@step(env={'DB_PASSWORD': 'hunter2'})",
    "import os\nos.system('echo hi')",
    "x = 1\x00",
    "def f(:",
    "    ",
    "@pipeline(name=None)",
    "return 1",
]
PARAMETERS = ["x: list = [1, None]", "x: float = 1e309", "x: int = ...", "x: bool = 'yes'", "api_key: str = 'k'",
              "x: dict = {1: 2}", "x: int = 1.5"]
TAGS = ["step:", "prev:nowhere", "limit:cpu:lots", "env:TOKEN:hf_" + "a" * 34, "foreach:x:nothing", "when:x:<>:1",
        "retries:-1", "image:", "pipeline-parameters", "pipeline-metrics", "skip", "exit-handler", "block:x y"]


def mutate(text: str, data) -> str:
    lines = text.split("\n")
    index = data.draw(st.integers(0, max(0, len(lines) - 1)))
    kind = data.draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "character", "truncate",
                                      "parameter"]))
    if kind == "delete":
        del lines[index]
    elif kind == "duplicate":
        lines.insert(index, lines[index])
    elif kind == "swap":
        other = data.draw(st.integers(0, max(0, len(lines) - 1)))
        lines[index], lines[other] = lines[other], lines[index]
    elif kind == "insert":
        indent = lines[index][:len(lines[index]) - len(lines[index].lstrip())]
        snippet = data.draw(st.sampled_from(HOSTILE))
        lines.insert(index, "\n".join(indent + part for part in snippet.split("\n")))
    elif kind == "character":
        line = lines[index]
        at = data.draw(st.integers(0, len(line)))
        lines[index] = line[:at] + data.draw(st.sampled_from(list("()[]{}:=,.'\"#@\\\t x1"))) + line[at + 1:]
    elif kind == "truncate":
        return text[:data.draw(st.integers(0, len(text)))]
    else:
        signature = next((i for i, line in enumerate(lines) if line.startswith("def ") and "(" in line), None)
        if signature is not None:
            lines[signature] = lines[signature].replace("(", "(" + data.draw(st.sampled_from(PARAMETERS)) + ", ", 1)
    return "\n".join(lines)


def assert_answered(path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(path), "--graph-json", "-q"])
    shown = err.getvalue()
    assert code in (0, 2), shown
    assert "internal error" not in shown and "Traceback" not in shown, shown
    if code == 2:
        assert shown.startswith("error: ") and str(path.name) in shown, shown  # located


FUZZ = settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(data=st.data())
def test_mutated_pipeline_files_get_a_result_or_a_located_refusal(data):
    source = data.draw(st.sampled_from(MODULES))
    text = mutate(source.read_text(encoding="utf-8"), data)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / source.name
        path.write_text(text, encoding="utf-8")
        assert_answered(path)


@FUZZ
@given(data=st.data())
def test_mutated_notebooks_get_a_result_or_a_located_refusal(data):
    source = data.draw(st.sampled_from(NOTEBOOKS))
    notebook = json.loads(source.read_text(encoding="utf-8"))
    code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    cell = data.draw(st.sampled_from(code_cells))
    if data.draw(st.booleans()):
        cell.setdefault("metadata", {}).setdefault("tags", []).append(data.draw(st.sampled_from(TAGS)))
    else:
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cell["source"] = mutate(text, data)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / source.name
        path.write_text(json.dumps(notebook), encoding="utf-8")
        assert_answered(path)
