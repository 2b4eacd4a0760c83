"""The KFP backend: deterministic, checked output; real Kale notebooks compile; known bugs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import EXAMPLES, KALE_CASES, fixture_notebook
from kale_like.backends.kfp import compile as kfp_compile
from kale_like.backends.kfp.validate import check_pipeline_spec
from kale_like.errors import InternalError
from kale_like.frontends.notebook import notebook_to_graph

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

# --- determinism --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["kubernetes", "parameters", "prev_diamond"])
def test_compiling_twice_gives_identical_bytes(run_cli, tmp_path, name):
    texts = []
    for run in ("first", "second"):
        out = tmp_path / run / "pipeline.yaml"
        assert run_cli(fixture_notebook(name), "--kfp", "-o", out).code == 0
        texts.append((out.read_bytes(), (tmp_path / run / "pipeline_kfp.py").read_bytes()))
    assert texts[0] == texts[1]


@pytest.mark.parametrize("name", ["kubernetes", "parameters", "dict_parameter_order"])
def test_running_the_dsl_module_writes_the_same_yaml(run_cli, tmp_path, name):
    out = tmp_path / "pipeline.yaml"
    assert run_cli(fixture_notebook(name), "--kfp", "-o", out).code == 0
    expected = out.read_bytes()
    out.unlink()
    run = subprocess.run(
        [sys.executable, str(tmp_path / "pipeline_kfp.py")], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == expected


def test_dict_parameter_header_lists_keys_in_a_stable_order(compiled):
    """kfp's '# Inputs:' header shows dict defaults in protobuf map order, random per process."""
    declared = {"h": "1", "c": "2", "f": "3", "a": "4", "g": "5", "b": "6", "e": "7", "d": "8"}
    lines = compiled("dict_parameter_order").text.splitlines()
    header = next(line for line in lines if line.startswith("#    layout:"))
    stable = (declared, dict(sorted(declared.items())))
    assert header in {f"#    layout: dict [Default: {value!r}]" for value in stable}


# --- the structural check -----------------------------------------------------------------------


def test_structural_check_failure_is_an_internal_error_and_writes_nothing(run_cli, tmp_path, monkeypatch):
    monkeypatch.setattr(kfp_compile, "check_pipeline_spec", lambda text: ["root/load: injected problem"])
    out = tmp_path / "out.yaml"
    result = run_cli(fixture_notebook("step_tags"), "--kfp", "-o", out)
    assert result.code == 1
    assert result.err.startswith("internal error: the compiled pipeline failed the structural check")
    assert "root/load: injected problem" in result.err
    assert "Traceback" not in result.err
    assert not out.exists()
    assert not (tmp_path / "out_kfp.py").exists()


def test_compile_graph_raises_internal_error_when_the_check_fails(monkeypatch):
    seen = []

    def failing_check(text):
        seen.append(text)
        return ["root: injected problem"]

    monkeypatch.setattr(kfp_compile, "check_pipeline_spec", failing_check)
    graph = notebook_to_graph(fixture_notebook("step_tags"))
    with pytest.raises(InternalError, match="injected problem"):
        kfp_compile.compile_graph(graph)
    assert len(seen) == 1 and seen[0].startswith("# PIPELINE DEFINITION")


# --- real notebooks -----------------------------------------------------------------------------

_REAL = [
    KALE_CASES / "candies_sharing.ipynb",
    KALE_CASES / "pipeline_parameters_and_metrics.ipynb",
    KALE_CASES / "titanic" / "titanic_dataset_ml.ipynb",
    *sorted(EXAMPLES.glob("*.ipynb")),
]


@pytest.mark.parametrize("path", _REAL, ids=[p.stem for p in _REAL])
def test_real_notebooks_compile_and_pass_the_check(run_cli, tmp_path, path):
    if not path.exists():
        pytest.skip(f"{path} is not available here")
    out = tmp_path / "pipeline.yaml"
    result = run_cli(path, "--kfp", "-o", out)
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    assert check_pipeline_spec(out.read_text(encoding="utf-8")) == []


def test_examples_are_present():
    assert len(list(EXAMPLES.glob("*.ipynb"))) >= 3


def test_old_block_tags_of_the_titanic_notebook_become_steps(graph_json):
    path = KALE_CASES / "titanic" / "titanic_dataset_ml.ipynb"
    if not path.exists():
        pytest.skip(f"{path} is not available here")
    graph = graph_json(path)
    assert len(graph["steps"]) == 9
    assert graph["edges"]


# --- known bugs ---------------------------------------------------------------------------------


def test_variable_named_metrics_compiles(run_cli, tmp_path):
    result = run_cli(fixture_notebook("bug_metrics_variable"), "--kfp", "-o", tmp_path / "out.yaml")
    assert result.code == 0, result.err


def test_parameter_named_like_a_step_compiles(run_cli, tmp_path):
    result = run_cli(fixture_notebook("bug_parameter_named_like_step"), "--kfp", "-o", tmp_path / "out.yaml")
    assert result.code == 0, result.err


@pytest.mark.parametrize("name", ["bug_dict_int_keys", "bug_dict_none_value"])
def test_dict_parameter_kfp_cannot_hold_is_not_an_internal_error(run_cli, tmp_path, name):
    result = run_cli(fixture_notebook(name), "--kfp", "-o", tmp_path / "out.yaml")
    assert result.code in (0, 2)
    assert "internal error" not in result.err
    if result.code == 2:
        assert f"{fixture_notebook(name)}:cell 0:1: " in result.err


def test_step_named_os_dsl_module_runs(run_cli, tmp_path):
    out = tmp_path / "pipeline.yaml"
    assert run_cli(fixture_notebook("bug_step_named_os"), "--kfp", "-o", out).code == 0
    expected = out.read_bytes()
    out.unlink()
    run = subprocess.run(
        [sys.executable, str(tmp_path / "pipeline_kfp.py")], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == expected
