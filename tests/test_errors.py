"""Every input problem: exit 2, one located message with a hint, no traceback, nothing written."""

from __future__ import annotations

import pytest

from conftest import fixture_notebook
from kale_like.errors import KaleLikeError, KaleLikeErrors
from kale_like.frontends.notebook import notebook_to_graph

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

# fixture, where (rendered after the path), message fragment, hint fragment
_ERRORS = [
    ("err_bad_json", "", "not valid JSON (line 2, column 1", "was it saved completely?"),
    ("err_not_notebook", "", "this JSON file is not a Jupyter notebook", "pass an .ipynb notebook"),
    ("err_syntax", ":cell 3 (step a):2:8", "syntax error: invalid syntax", "fix the code"),
    ("err_prev_missing", ":cell 2", "prev:nothere names a step that does not exist", "steps in this notebook: a, b"),
    ("err_cycle", ":cell 1", "the steps a -> b -> a depend on each other in a cycle (b has prev:a; a has prev:b)",
     "remove the one that closes"),
    ("err_undefined", ":cell 3 (step b):2:9", "name 'missing_value' is not defined", "assign it in an earlier step"),
    ("err_defined_later", ":cell 1 (step a):1:7", "name 'late' is not defined", "only assigned later, in step 'b'"),
    ("err_unknown_tag", ":cell 2", "unknown tag 'setp:b'", "did you mean 'step:b'?"),
    ("err_two_kinds", ":cell 1", "the cell has more than one cell kind: imports, step:a", "keep one"),
    ("err_two_steps", ":cell 1", "the cell has more than one cell kind: step:a, step:b", "keep one"),
    ("err_bad_parameter", ":cell 1:2", "parameter 'm' must be a literal value", "compute derived values in a step"),
    ("err_settings_on_non_step", ":cell 1", "tag 'limit:cpu:1' only applies to step cells", "move it to a step:NAME"),
    ("err_no_steps", "", "no step cells", "tag at least one code cell 'step:NAME'"),
    ("err_gpu_request", ":cell 1", "'request:nvidia.com/gpu:1': only cpu and memory take requests", "use limit:"),
    ("err_undefined_metric", ":cell 2:1", "metric 'accuracy' is not a variable any step defines", "pipeline-metrics"),
    ("err_bad_limit", ":cell 1", "'lots' is not a CPU amount KFP accepts", ""),
]


@pytest.mark.parametrize(("name", "where", "message", "hint"), _ERRORS, ids=[e[0] for e in _ERRORS])
def test_input_error_exits_2_with_a_located_message(run_cli, tmp_path, name, where, message, hint):
    path = fixture_notebook(name)
    out = tmp_path / "out.yaml"
    result = run_cli(path, "--kfp", "-o", out)
    assert result.code == 2
    first, *rest = result.err.splitlines()
    assert first.startswith(f"error: {path}{where}: {message}")
    if hint:
        assert rest and rest[0].startswith("  hint: ") and hint in rest[0]
    assert "Traceback" not in result.err
    assert result.out == ""
    assert not out.exists()
    assert not (tmp_path / "out_kfp.py").exists()


def test_missing_file_exits_2(run_cli, tmp_path):
    path = tmp_path / "nowhere.ipynb"
    result = run_cli(path, "--kfp", "-o", tmp_path / "out.yaml")
    assert result.code == 2
    assert result.err.splitlines() == [f"error: {path}: file not found", "  hint: check the path"]
    assert list(tmp_path.glob("out*")) == []


@pytest.mark.parametrize(
    "name",
    [name for name, *_ in _ERRORS],
)
def test_every_input_error_has_a_hint(run_cli, name):
    result = run_cli(fixture_notebook(name))
    assert result.code == 2
    assert "\n  hint: " in result.err


def test_step_listing_itself_in_prev_is_one_problem_with_a_hint(run_cli):
    result = run_cli(fixture_notebook("err_prev_self"))
    assert result.code == 2
    assert result.err.startswith(f"error: {fixture_notebook('err_prev_self')}:cell 1")
    assert "lists itself in prev:" in result.err
    assert "problems found" not in result.err
    assert "\n  hint: " in result.err


# --- positions are data -------------------------------------------------------------------------

_LOCATIONS = [
    ("err_syntax", (2, "a", 2, 8)),
    ("err_undefined", (2, "b", 2, 9)),
    ("err_defined_later", (0, "a", 1, 7)),
    ("err_bad_parameter", (0, None, 2, None)),
    ("err_unknown_tag", (1, None, None, None)),
]


@pytest.mark.parametrize(("name", "expected"), _LOCATIONS, ids=[n for n, _ in _LOCATIONS])
def test_error_location_fields(name, expected):
    path = fixture_notebook(name)
    with pytest.raises(KaleLikeError) as caught:
        notebook_to_graph(path)
    location = caught.value.location
    assert location.path == str(path)
    assert (location.cell_index, location.step, location.line, location.column) == expected
    assert str(caught.value).startswith(location.render() + ": ")


# --- several problems at once -------------------------------------------------------------------


def test_several_problems_are_reported_together_sorted_by_position(run_cli, tmp_path):
    path = fixture_notebook("err_many")
    result = run_cli(path, "--kfp", "-o", tmp_path / "out.yaml")
    assert result.code == 2
    located = [line for line in result.err.splitlines() if not line.startswith("  hint:")]
    assert located == [
        "error: 3 problems found:",
        f"{path}:cell 2 (step a):1:7: name 'zeta' is not defined by any earlier step, import, function or parameter",
        f"{path}:cell 2 (step a):2:7: name 'alpha' is not defined by any earlier step, import, function or parameter",
        f"{path}:cell 3: prev:ghost names a step that does not exist",
    ]
    assert result.err.count("  hint: ") == 3
    assert not (tmp_path / "out.yaml").exists()


def test_several_problems_raise_one_exception_holding_each():
    with pytest.raises(KaleLikeErrors) as caught:
        notebook_to_graph(fixture_notebook("err_many"))
    assert [(e.location.cell_index, e.location.line) for e in caught.value.errors] == [(1, 1), (1, 2), (2, None)]
