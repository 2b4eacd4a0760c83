"""The KFP backend: deterministic, checked output; real Kale notebooks compile; known bugs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import EXAMPLES, KALE_CASES, fixture_notebook
from kale_like.backends.kfp import checks_aside
from kale_like.backends.kfp import compile as kfp_compile
from kale_like.backends.kfp import kept_pipelines
from kale_like.backends.kfp.validate import check_pipeline_spec
from kale_like.errors import InternalError
from kale_like.frontends.notebook import notebook_to_graph

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

# --- determinism --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["kubernetes", "parameters", "prev_diamond"])
def test_compiling_twice_gives_identical_bytes(run_cli, tmp_path, name, monkeypatch):
    monkeypatch.setenv("KALE_LIKE_COMPILE_CACHE", "0")  # kfp compiles each time: determinism, not the cache
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
    monkeypatch.setattr(checks_aside, "check_pipeline_documents", lambda docs: ["root/load: injected problem"])
    monkeypatch.setenv("KALE_LIKE_COMPILE_CACHE", "0")  # a kept YAML passed the check when it was kept
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

    def failing_check(documents):
        seen.append(documents)
        return ["root: injected problem"]

    # a fresh compile checks the documents kfp wrote the YAML from (the same data, not parsed again)
    monkeypatch.setattr(checks_aside, "check_pipeline_documents", failing_check)
    monkeypatch.setenv("KALE_LIKE_COMPILE_CACHE", "0")  # the check of a fresh compile, alone
    graph = notebook_to_graph(fixture_notebook("step_tags"))
    with pytest.raises(InternalError, match="injected problem"):
        kfp_compile.compile_graph(graph)
    assert len(seen) == 1 and "root" in seen[0][0] and "deploymentSpec" in seen[0][0]


# --- compiled pipelines kept in the cache folder -------------------------------------------------


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty cache folder, and a count of the times kfp really compiles."""
    monkeypatch.setenv("KALE_LIKE_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    original = kfp_compile._compile_module
    monkeypatch.setattr(kfp_compile, "_compile_module", lambda *a: calls.append(1) or original(*a))
    return tmp_path / "cache" / "pipelines", calls


def test_a_pipeline_compiled_before_is_read_back_not_compiled_again(fresh_cache):
    kept, calls = fresh_cache
    graph = notebook_to_graph(EXAMPLES / "wine_quality.ipynb")
    first = kfp_compile.compile_graph(graph)
    again = kfp_compile.compile_graph(notebook_to_graph(EXAMPLES / "wine_quality.ipynb"))
    assert len(calls) == 1
    assert again == first and len(list(kept.glob("*.yaml"))) == 1


def test_other_library_versions_settings_or_another_module_compile_again(fresh_cache, monkeypatch):
    kept, calls = fresh_cache
    graph = notebook_to_graph(EXAMPLES / "wine_quality.ipynb")
    kfp_compile.compile_graph(graph)
    kfp_compile.compile_graph(graph, yaml_name="other.yaml")  # the module's __main__ differs
    monkeypatch.setenv("KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT", "true")  # kfp reads it: part of the key
    kfp_compile.compile_graph(graph)
    monkeypatch.setattr(kept_pipelines, "writer_versions", lambda: "kfp=9.9")
    kfp_compile.compile_graph(graph)
    assert len(calls) == 4 and len(list(kept.glob("*.yaml"))) == 4


def test_a_damaged_kept_pipeline_is_compiled_over(fresh_cache):
    kept, calls = fresh_cache
    graph = notebook_to_graph(EXAMPLES / "wine_quality.ipynb")
    good = kfp_compile.compile_graph(graph).yaml_text
    (path,) = kept.glob("*.yaml")
    path.write_text(good[: len(good) // 2], encoding="utf-8")
    assert kfp_compile.compile_graph(graph).yaml_text == good
    assert len(calls) == 2 and path.read_text(encoding="utf-8") == good


def test_only_the_most_recently_used_pipelines_are_kept(fresh_cache, monkeypatch):
    kept, calls = fresh_cache
    monkeypatch.setattr(kept_pipelines, "KEPT_PIPELINES", 2)
    graph = notebook_to_graph(EXAMPLES / "wine_quality.ipynb")
    for name in ("a.yaml", "b.yaml", "c.yaml"):
        kfp_compile.compile_graph(graph, yaml_name=name)
    assert len(list(kept.glob("*.yaml"))) == 2
    kfp_compile.compile_graph(graph, yaml_name="c.yaml")
    kfp_compile.compile_graph(graph, yaml_name="a.yaml")  # the oldest was dropped: compiled again
    assert len(calls) == 4


def test_no_pipeline_is_kept_when_turned_off(fresh_cache, monkeypatch):
    kept, calls = fresh_cache
    monkeypatch.setenv("KALE_LIKE_COMPILE_CACHE", "0")
    graph = notebook_to_graph(EXAMPLES / "wine_quality.ipynb")
    kfp_compile.compile_graph(graph)
    kfp_compile.compile_graph(graph)
    assert len(calls) == 2 and not kept.exists()


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
        assert f"{fixture_notebook(name)}:cell 1:1: " in result.err


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
