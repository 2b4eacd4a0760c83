"""The notebook's run widget (`widgets.RunProgress`): a step picked under the rows shows its log (the
error line first and only the user's frames for a failure) and its outputs previewed, as the panel does."""

from __future__ import annotations

import json

import nbformat
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("pandas")

import kale_like  # noqa: E402
from kale_like.surfaces.api import load_graph  # noqa: E402
from kale_like.surfaces.widgets import RunProgress  # noqa: E402

CELLS = [
    ("import numpy as np\nimport pandas as pd", ["imports"]),
    ("seeds = [1, 2, 3]", ["pipeline-parameters"]),
    ("print('making the table')\ntable = pd.DataFrame({'alpha': [1, 2, 3], 'beta': [4.5, 5.5, 6.5]})",
     ["step:make_table"]),
    ("grid = np.zeros((3, 4), dtype='float32')", ["step:make_grid"]),
    ("print('squaring seed', seed)\nsquare = seed * seed", ["step:square", "foreach:seed:seeds"]),
    ("print('total', sum(square), grid.shape)", ["step:total"]),
    ("def audit(t):\n    raise ValueError('the table has only %d rows' % len(t))\n\n"
     "print('auditing the table')\naudit(table)", ["step:check"]),
]


@pytest.fixture
def finished(tmp_path, monkeypatch):
    """A run of a notebook (a DataFrame, an array, a loop, a failing step) followed by the widget; a
    step picked before the run starts is followed while it runs."""
    monkeypatch.chdir(tmp_path)
    notebook = nbformat.v4.new_notebook()
    for source, tags in CELLS:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        notebook.cells.append(cell)
    nbformat.write(notebook, tmp_path / "detail.ipynb")
    graph = load_graph(str(tmp_path / "detail.ipynb"))
    progress = RunProgress("detail", json.loads(graph.to_json()))
    progress.expect([step.name for step in graph.steps])
    assert progress.picker.options == ("make_table", "make_grid", "square", "total", "check")
    progress.select("make_table")  # picked before it runs: pending, no log yet
    assert "has not run" in progress.detail.value
    result = kale_like.run(str(tmp_path / "detail.ipynb"), observer=progress.observe, echo=False, max_workers=2,
                           store=str(tmp_path / ".kale_like"))
    progress.finish(result)
    assert result.status == "FAILED"
    return progress


def test_a_picked_step_shows_its_log_and_its_dataframe(finished):
    progress = finished
    progress.wait()
    shown = progress.detail.value
    assert "data-task='make_table'" in shown and "data-status='done'" in shown
    assert "making the table" in shown
    assert "DataFrame, 3 rows × 2 columns" in shown
    assert "<th>alpha</th><th>beta</th>" in shown and "<td>4.5</td>" in shown
    assert 'class="node selected" data-step="make_table"' in progress.graph.value  # outlined in the graph
    assert "data-step='make_table' data-status='done' style='background" in progress.table.value


def test_an_array_shows_its_shape_and_dtype(finished):
    finished.select("make_grid")
    finished.wait()
    assert "ndarray of shape (3, 4), dtype float32" in finished.detail.value


def test_a_failed_step_shows_its_error_first_and_only_the_users_frames(finished):
    finished.select("check")
    finished.wait()
    shown = finished.detail.value
    assert "auditing the table" in shown
    error = shown.index("ValueError: the table has only 3 rows")
    assert error < shown.index("cell 7 (check), line 5, in &lt;module&gt;") < shown.index("in audit")
    assert error < shown.index("auditing the table")  # the error comes before the log
    for frame in ("component_runner", "kfp/dsl", "executor.py", "_kl_run_step", "kale_like/"):
        assert frame not in shown


def test_a_failed_run_opens_on_its_failed_step_when_nothing_was_picked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    notebook = nbformat.v4.new_notebook()
    for source, tags in (("x = 1", ["step:ok"]), ("print('about to fail')\n1 / 0", ["step:boom"])):
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        notebook.cells.append(cell)
    nbformat.write(notebook, tmp_path / "boom.ipynb")
    progress = RunProgress("boom")  # no graph: the rows come from the tasks, as for a compiled YAML run
    result = kale_like.run(str(tmp_path / "boom.ipynb"), observer=progress.observe, echo=False,
                           store=str(tmp_path / ".kale_like"))
    progress.finish(result)
    assert progress.selected == "boom" and progress.picker.value == "boom"
    shown = progress.detail.value
    assert shown.index("ZeroDivisionError: division by zero") < shown.index("about to fail")


def test_a_loop_step_shows_the_iteration_picked(finished):
    finished.select("square")
    assert [name for name, _ in finished.iteration.options] == ["square[0]", "square[1]", "square[2]"]
    assert finished.iteration.layout.display == ""
    assert "squaring seed 1" in finished.detail.value
    finished.iteration.value = "square[2]"  # as a user picks it in the menu
    finished.wait()
    assert "data-task='square[2]'" in finished.detail.value and "squaring seed 3" in finished.detail.value
    assert "int" in finished.detail.value  # its output, `square`
    finished.select("total")
    assert finished.iteration.layout.display == "none"
    assert "total 14 (3, 4)" in finished.detail.value
