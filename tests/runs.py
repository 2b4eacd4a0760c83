"""Helpers for the run tests: run a compiled pipeline with kfp.local, run a notebook with nbclient.

Both sides are observed from the outside, with code independent of kale_like's runtime:

* a pipeline run is read back from its pipeline root. Every task leaves `executor_output.json`
  there, which holds each output artifact's URI and metadata. A KFP Metrics artifact keeps its
  logged values in that metadata, and which outputs are Metrics is read from the compiled IR (the
  component's output definitions), never guessed from a name. Dataset artifacts are directories
  holding one `value.*` file, which `load_value` reads back.
* a notebook run executes the notebook top to bottom in a fresh kernel, then one appended cell
  prints the wanted variables as JSON.

kfp.local keeps global state (`local.init`), so a run is not thread-safe; pytest-xdist runs each
worker in its own process, which is fine.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

VALUE_FILES = ("value.json", "value.npy", "value.pkl", "value.cloudpickle")
RESULT_MARKER = "KALE_LIKE_TEST_VALUES="
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


# ---------------------------------------------------------------------------
# Compiling


def compile_notebook(notebook: Path, output: Path, params: dict[str, Any] | None = None) -> Path:
    """Compile `notebook` with the CLI, as a user would (`--param` for each of `params`)."""
    from kale_like.surfaces.cli import main

    argv = [str(notebook), "--kfp", "-o", str(output), "-q"]
    for name, value in (params or {}).items():
        argv += ["--param", f"{name}={value}"]
    code = main(argv)
    assert code == 0, f"kale_like exited with {code} compiling {notebook}"
    return output


# ---------------------------------------------------------------------------
# Running a pipeline with kfp.local


@dataclass
class TaskResult:
    """One task of a finished local run, read from its directory under the pipeline root."""

    name: str  # the DAG task name, which is also the task's directory name
    component: str  # the IR component it ran (comp-...)
    directory: Path
    metrics: dict[str, float] = field(default_factory=dict)  # from the Metrics output, if any
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # output name -> {uri, metadata}
    parameters: dict[str, Any] = field(default_factory=dict)  # output parameters, if any

    def value(self, output: str) -> Any:
        """The value stored in this task's Dataset output `output`."""
        return load_value(self.artifacts[output]["uri"])


@dataclass
class PipelineRun:
    root: Path
    tasks: dict[str, TaskResult]

    @property
    def metrics(self) -> dict[str, float]:
        """All metrics logged by any task; a name logged twice is an error."""
        merged: dict[str, float] = {}
        for task in self.tasks.values():
            for name, value in task.metrics.items():
                assert name not in merged, f"metric {name!r} logged by more than one task"
                merged[name] = value
        return merged

    def load_all(self) -> dict[tuple[str, str], Any]:
        """Every Dataset output of the run, read back: (task, output) -> value."""
        return {(t.name, o): t.value(o) for t in self.tasks.values() for o in t.artifacts}

    def variable(self, name: str) -> Any:
        """The value of notebook variable `name` as it left the step that produced it.

        Found through the `variable` metadata the step runtime writes on each Dataset output; the
        variable must have been passed out of exactly one task.
        """
        found = [
            (task, output)
            for task in self.tasks.values()
            for output, artifact in task.artifacts.items()
            if artifact["metadata"].get("variable") == name
        ]
        assert len(found) == 1, f"variable {name!r} is an output of {len(found)} tasks: {found}"
        task, output = found[0]
        return task.value(output)


def run_pipeline(pipeline_yaml: Path, pipeline_root: Path, arguments: dict[str, Any] | None = None) -> PipelineRun:
    """Run a compiled pipeline with kfp.local's SubprocessRunner in this Python, then read it back.

    Raises RuntimeError (kfp.local's `raise_on_error`) when any task fails. Tasks run in the
    current working directory, so notebooks that read relative paths need it set by the caller.
    """
    from kfp import components, local

    pipeline_root = Path(pipeline_root)
    assert not pipeline_root.exists() or not any(pipeline_root.iterdir()), "use a fresh pipeline root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root))
    pipeline = components.load_component_from_file(str(pipeline_yaml))
    pipeline(**(arguments or {}))
    return collect_run(pipeline_yaml, pipeline_root)


def collect_run(pipeline_yaml: Path, pipeline_root: Path) -> PipelineRun:
    """Read every task's executor output of the single run under `pipeline_root`.

    Covers the tasks of the root DAG that run a container; tasks standing for a sub-DAG (a
    condition or loop) are left out, as none of the notebooks tested here compiles to one.
    """
    spec = next(doc for doc in yaml.safe_load_all(Path(pipeline_yaml).read_text(encoding="utf-8")) if doc)
    dag_tasks = spec["root"]["dag"]["tasks"]
    runs = [p for p in Path(pipeline_root).iterdir() if p.is_dir()]
    assert len(runs) == 1, f"expected one run under {pipeline_root}, found {runs}"
    run_dir = runs[0]
    tasks: dict[str, TaskResult] = {}
    for name, task in dag_tasks.items():
        component_name = task["componentRef"]["name"]
        component = spec["components"][component_name]
        if "dag" in component:
            continue
        outputs = component.get("outputDefinitions", {}).get("artifacts", {})
        metric_outputs = {o for o, d in outputs.items() if d["artifactType"]["schemaTitle"] == "system.Metrics"}
        directory = run_dir / name
        result = TaskResult(name=name, component=component_name, directory=directory)
        executor_output = directory / "executor_output.json"
        assert executor_output.is_file(), f"task {name!r} left no executor_output.json: did it run?"
        executed = json.loads(executor_output.read_text(encoding="utf-8"))
        result.parameters = dict(executed.get("parameterValues", {}))
        written = executed.get("artifacts", {})
        assert set(written) == set(outputs), f"task {name!r} wrote outputs {sorted(written)}, IR has {sorted(outputs)}"
        for output, entry in written.items():
            (artifact,) = entry["artifacts"]
            if output in metric_outputs:
                result.metrics.update(artifact.get("metadata", {}))
            else:
                result.artifacts[output] = {"uri": artifact["uri"], "metadata": artifact.get("metadata", {})}
        tasks[name] = result
    return PipelineRun(root=run_dir, tasks=tasks)


def load_value(uri: str | os.PathLike) -> Any:
    """Read a value directory (value.json / value.npy / value.pkl / value.cloudpickle)."""
    directory = Path(uri)
    present = [name for name in VALUE_FILES if (directory / name).is_file()]
    assert len(present) == 1, f"{directory} should hold exactly one value file, has {sorted(os.listdir(directory))}"
    path = directory / present[0]
    if path.name == "value.json":
        return json.loads(path.read_text(encoding="utf-8"))
    if path.name == "value.npy":
        import numpy

        return numpy.load(path, allow_pickle=False)
    with path.open("rb") as handle:  # cloudpickle output is read by plain pickle
        return pickle.load(handle)


def task_logs(captured: str) -> dict[str, list[str]]:
    """Split kfp.local's console output into each task's own output lines (indented by 4 spaces)."""
    logs: dict[str, list[str]] = {}
    current = None
    for raw in _ANSI.sub("", captured).splitlines():
        started = re.search(r"Executing task '([^']+)'", raw)
        if started:
            current = started.group(1)
            logs.setdefault(current, [])
        elif re.search(r"Task '[^']+' finished with status", raw):
            current = None
        elif current is not None and raw.startswith("    "):
            logs[current].append(raw[4:])
    return logs


# ---------------------------------------------------------------------------
# Running a notebook with nbclient


@dataclass
class NotebookRun:
    values: dict[str, Any]
    errored_cells: list[int]  # indexes of cells that raised (only those tagged to allow it)


def run_notebook(
    notebook: Path,
    names: list[str],
    *,
    inject: dict[str, Any] | None = None,
    allow_errors_in_skip_cells: bool = False,
    timeout: int = 300,
) -> NotebookRun:
    """Execute `notebook` top to bottom in a fresh python3 kernel, cwd = its folder; return `names`.

    `inject` sets parameters the way papermill does: a cell assigning them is inserted right after
    the last `pipeline-parameters` cell. With `allow_errors_in_skip_cells`, cells tagged `skip`
    may raise (they are tagged `raises-exception`, which nbclient honours per cell); any other
    error fails the run. Values come back through JSON: numpy scalars as Python numbers, anything
    JSON cannot hold as its repr().
    """
    import nbformat
    from nbclient import NotebookClient

    notebook = Path(notebook)
    nb = nbformat.read(notebook, as_version=4)
    original = len(nb.cells)
    if inject:
        positions = [i for i, c in enumerate(nb.cells) if "pipeline-parameters" in _tags(c)]
        assert positions, f"{notebook.name} has no pipeline-parameters cell to inject after"
        source = "\n".join(f"{name} = {value!r}" for name, value in inject.items())
        nb.cells.insert(positions[-1] + 1, nbformat.v4.new_code_cell(source))
    if allow_errors_in_skip_cells:
        for cell in nb.cells:
            if "skip" in _tags(cell):
                cell.metadata["tags"] = [*_tags(cell), "raises-exception"]
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import json as _kl_json\n"
            "def _kl_plain(value):\n"
            "    return value.item() if hasattr(value, 'item') and getattr(value, 'ndim', 1) == 0 else repr(value)\n"
            f"print({RESULT_MARKER!r} + _kl_json.dumps({{_kl_n: globals()[_kl_n] for _kl_n in {names!r}}}, "
            "default=_kl_plain))\n"
        )
    )
    resources = {"metadata": {"path": str(notebook.parent)}}
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources=resources).execute()
    assert len(nb.cells) == original + 1 + bool(inject)
    errored = []  # indexes in the original notebook (the injected cell cannot be here: it may not raise)
    for index, cell in enumerate(nb.cells[:-1]):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            errored.append(index - 1 if inject and index > positions[-1] else index)
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    line = next(line for line in text.splitlines() if line.startswith(RESULT_MARKER))
    return NotebookRun(values=json.loads(line[len(RESULT_MARKER):]), errored_cells=errored)


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", None) or [])


def metric_names(notebook: Path) -> list[str]:
    """The names a notebook's `pipeline-metrics` cells print (`print(name)` or a bare `name`)."""
    import ast

    import nbformat

    nb = nbformat.read(Path(notebook), as_version=4)
    names: list[str] = []
    for cell in nb.cells:
        if cell.cell_type != "code" or "pipeline-metrics" not in _tags(cell):
            continue
        for statement in ast.parse(cell.source).body:
            value = statement.value if isinstance(statement, ast.Expr) else None
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "print":
                names += [arg.id for arg in value.args if isinstance(arg, ast.Name)]
            elif isinstance(value, ast.Name):
                names.append(value.id)
    return names


def python_and_local_notes(source: Path, pipeline: str, params: dict[str, Any], folder: Path) -> tuple[list, list]:
    """The lines a pipeline's steps note in the file given as `log`: run as plain Python (the
    oracle), then compiled and run by kale_like's local runner; each sorted (tasks run in parallel)."""
    import importlib.util

    import kale_like

    spec = importlib.util.spec_from_file_location(f"_kl_plain_{source.stem}", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plain, local = folder / "plain.log", folder / "run.log"
    getattr(module, pipeline)(log=str(plain), **params)
    result = kale_like.run(source, {**params, "log": str(local)}, pipeline=pipeline, store=folder / "store",
                           cache=False, echo=False)
    assert result.succeeded, result.error

    def lines(path: Path) -> list[str]:
        return sorted(path.read_text(encoding="utf-8").splitlines()) if path.exists() else []

    return lines(plain), lines(local)
