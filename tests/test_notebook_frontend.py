"""Notebook-level behaviour: metadata, imports/functions, parameters, metrics, IPython syntax."""

from __future__ import annotations

import importlib.util

import pytest

from conftest import FIXTURES, fixture_notebook

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

# --- notebook metadata `kubeflow_notebook` ------------------------------------------------------


def test_metadata_names_and_describes_the_pipeline(compiled):
    ir = compiled("metadata")
    assert ir.name == "meta-pipe"
    assert ir.description == "Described in the notebook metadata"


def test_metadata_experiment_name_is_kept(graph_json):
    assert graph_json(fixture_notebook("metadata"))["settings"]["experiment"] == "meta-exp"


def test_pipeline_name_defaults_to_the_file_name(compiled):
    assert compiled("caching_off").name == "caching-off"


@pytest.mark.parametrize("key", ["docker_image", "unknown_key", "volumes"])
def test_stale_or_unknown_metadata_keys_warn_and_do_not_fail(run_cli, compiled, key):
    compiled("metadata")  # compiles with exit 0
    result = run_cli(fixture_notebook("metadata"))
    assert result.code == 0
    warnings = [line for line in result.err.splitlines() if line.startswith("warning: ")]
    assert any(f"'{key}'" in line for line in warnings), result.err


def test_old_docker_image_key_is_used_as_the_default_image(compiled):
    assert compiled("metadata").container("only")["image"] == "example.com/old-kale-image:1"


# --- imports and functions cells ----------------------------------------------------------------


def test_imports_are_pruned_to_what_each_step_uses(compiled):
    ir = compiled("imports_pruned")
    numbers = ir.program("numbers")
    assert "import numpy as np" in numbers
    assert "import pandas as pd" not in numbers
    assert "import fractions" not in numbers


def test_a_step_not_using_pandas_does_not_install_it(compiled):
    ir = compiled("imports_pruned")
    assert "numpy" in ir.packages("numbers")
    assert "pandas" not in ir.packages("numbers")
    assert not {"numpy", "pandas"} & ir.packages("dump")


def test_functions_reach_the_steps_that_call_them_with_their_imports(compiled):
    ir = compiled("imports_pruned")
    table = ir.program("table")
    assert "def to_frame(rows):" in table
    assert "import pandas as pd" in table
    assert "pandas" in ir.packages("table")
    assert "def to_frame(rows):" not in ir.program("numbers")


def test_standard_library_imports_are_not_pip_installed(compiled):
    ir = compiled("imports_pruned")
    assert "import fractions" in ir.program("dump")
    assert "fractions" not in ir.packages("dump")


# --- pipeline-parameters ------------------------------------------------------------------------

_PARAMETERS = [
    ("n_rows", "NUMBER_INTEGER", 100),
    ("ratio", "NUMBER_DOUBLE", 0.25),
    ("label", "STRING", "demo"),
    ("verbose", "BOOLEAN", True),
    ("columns", "LIST", ["a", "b"]),
    ("options", "STRUCT", {"depth": 3, "mode": "fast"}),
    ("scale", "NUMBER_DOUBLE", 2.0),
]


@pytest.mark.parametrize(("name", "kfp_type", "default"), _PARAMETERS, ids=[p[0] for p in _PARAMETERS])
def test_parameters_become_typed_pipeline_inputs_with_defaults(compiled, name, kfp_type, default):
    parameter = compiled("parameters").parameters[name]
    assert parameter["parameterType"] == kfp_type
    assert parameter["defaultValue"] == default
    assert type(parameter["defaultValue"]) is type(default) or kfp_type.startswith("NUMBER")


def test_parameters_reach_the_step_that_reads_them(compiled):
    ir = compiled("parameters")
    assert ir.parameter_inputs("use") == {name for name, _, _ in _PARAMETERS}
    component = ir.component("use")["inputDefinitions"]["parameters"]
    assert {name: component[name]["parameterType"] for name in component} == {n: t for n, t, _ in _PARAMETERS}


def test_a_step_not_reading_a_parameter_does_not_receive_it(compiled):
    ir = compiled("function_free_vars")
    assert "threshold" not in ir.parameter_inputs("setup")


# --- pipeline-metrics ---------------------------------------------------------------------------


@pytest.mark.parametrize("step", ["train", "evaluate"], ids=["print-name", "bare-name"])
def test_metrics_become_a_metrics_output_of_the_defining_step(compiled, step):
    metrics = compiled("metrics").outputs(step)["metrics"]
    assert metrics["artifactType"]["schemaTitle"] == "system.Metrics"


def test_each_metric_is_logged_by_the_step_that_defines_it(graph_json):
    graph = graph_json(fixture_notebook("metrics"))
    assert graph["metrics"] == ["accuracy", "loss"]
    logged = {s["name"]: s["metrics"] for s in graph["steps"]}
    assert logged == {"train": ["accuracy"], "evaluate": ["loss"], "publish": []}


def test_step_with_no_metrics_has_no_metrics_output(compiled):
    assert "metrics" not in compiled("metrics").outputs("publish")


# --- IPython syntax -----------------------------------------------------------------------------

_MAGIC_LINES = [
    ("cell 1:1", "%matplotlib inline"),
    ("cell 2:1", "!ls -la"),
    ("cell 2:2", "%pip install tqdm"),
    ("cell 2:4", "items?"),
    ("cell 2:6", "%time pass"),
    ("cell 3:1", "%%time"),
]


@pytest.mark.parametrize(("where", "line"), _MAGIC_LINES, ids=[line for _, line in _MAGIC_LINES])
def test_ipython_lines_are_left_out_with_a_located_warning(run_cli, compiled, where, line):
    compiled("magics")  # compiles with exit 0
    result = run_cli(fixture_notebook("magics"))
    assert result.code == 0, result.err
    assert f"warning: {fixture_notebook('magics')}:{where}: IPython line left out: {line}" in result.err.splitlines()


def test_ipython_lines_never_reach_the_step_code(compiled):
    ir = compiled("magics")
    assert "!ls" not in ir.program("shell")
    assert "%matplotlib" not in ir.program("shell")
    assert "items = json.dumps([1])" in ir.program("shell")


def test_pip_magic_adds_the_package_to_the_step(compiled):
    ir = compiled("magics")
    assert "tqdm" in ir.packages("shell")


def test_python_cell_magic_keeps_its_body(compiled):
    ir = compiled("magics")
    assert "count = len(items)" in ir.program("timed")
    assert ir.data_inputs("timed") == {"items": "shell"}


def test_quiet_flag_hides_warnings(run_cli, tmp_path):
    result = run_cli(fixture_notebook("magics"), "--kfp", "-o", tmp_path / "out.yaml", "-q")
    assert result.code == 0
    assert "warning" not in result.err


@pytest.mark.parametrize("name", ["bug_magic_in_parameters", "bug_magic_in_metrics"])
def test_ipython_line_in_parameters_or_metrics_cell_is_only_a_warning(run_cli, name):
    result = run_cli(fixture_notebook(name))
    assert result.code == 0, result.err
    assert "IPython line left out" in result.err


def test_prefix_help_line_is_only_a_warning(run_cli):
    result = run_cli(fixture_notebook("bug_help_prefix"))
    assert result.code == 0, result.err
    assert "IPython line left out: ?len" in result.err


def test_time_line_magic_keeps_its_statement(compiled):
    assert compiled("bug_time_line_magic").data_inputs("b") == {"y": "a"}


def test_pip_magic_ignores_a_trailing_comment(graph_json):
    graph = graph_json(fixture_notebook("bug_pip_comment"))
    assert graph["steps"][0]["packages"] == ["tqdm"]


def test_pip_magic_option_values_are_not_packages(graph_json):
    graph = graph_json(fixture_notebook("bug_pip_requirements_file"))
    assert "requirements.txt" not in graph["steps"][0]["packages"]


# --- the fixtures themselves --------------------------------------------------------------------


def test_fixture_notebooks_match_their_generator():
    """The committed .ipynb files are exactly what tests/fixtures/make_fixtures.py writes."""
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES.parent / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0, "run: python tests/fixtures/make_fixtures.py"


# --- which step logs a metric: its value at the end of a top-to-bottom run -----------------------


def _metric_notebook(tmp_path, *cells):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)}) for source, *tags in cells]
    path = tmp_path / "metric_owner.ipynb"
    nbformat.write(nb, path)
    return path


def _loggers(graph_json, path):
    return {s["name"]: s["metrics"] for s in graph_json(path)["steps"] if s["metrics"]}


def test_a_metric_is_logged_by_its_producer_not_by_a_conditional_reader(graph_json, tmp_path):
    """`report` only reads `best` under a `when:`; it may be skipped, so `pick` (which ran) logs it."""
    path = _metric_notebook(
        tmp_path,
        ("rate = 1", "pipeline-parameters"),
        ("scores = [1.0, 3.0]", "step:load"),
        ("best = max(scores)", "step:pick"),
        ("print('ok', best)", "step:report", "when:best:>=:rate"),
        ("best", "pipeline-metrics"),
    )
    assert _loggers(graph_json, path) == {"pick": ["best"]}


def test_a_metric_reassigned_later_is_logged_by_the_last_step_assigning_it(graph_json, tmp_path):
    path = _metric_notebook(
        tmp_path,
        ("best = 1.0", "step:first"),
        ("print(best)", "step:reads"),
        ("best = best * 2", "step:second"),
        ("print(best)", "step:last_reader"),
        ("best", "pipeline-metrics"),
    )
    assert _loggers(graph_json, path) == {"second": ["best"]}


def test_a_metric_reassigned_under_a_condition_is_logged_by_both(graph_json, tmp_path):
    """Python's value at the end is the conditional step's when it runs, the earlier one's when not."""
    path = _metric_notebook(
        tmp_path,
        ("rate = 1", "pipeline-parameters"),
        ("best = 1.0", "step:first"),
        ("best = 5.0", "step:maybe", "when:rate:>:2"),
        ("best", "pipeline-metrics"),
    )
    assert _loggers(graph_json, path) == {"first": ["best"], "maybe": ["best"]}


@pytest.mark.parametrize(("rate", "expected"), [(100, 3.0), (1, 3.0)])
def test_a_run_keeps_the_metric_when_the_step_reading_it_is_skipped(tmp_path, monkeypatch, rate, expected):
    """With rate=100 `report` is skipped: the metric `pick` assigns is still logged (it used to be lost)."""
    path = _metric_notebook(
        tmp_path,
        ("rate = 1", "pipeline-parameters"),
        ("scores = [1.0, 3.0]", "step:load"),
        ("best = max(scores)", "step:pick"),
        ("print('ok', best)", "step:report", "when:best:>=:rate"),
        ("best", "pipeline-metrics"),
    )
    assert _run_metrics(path, rate, tmp_path, monkeypatch) == {"best": expected}


@pytest.mark.parametrize(("rate", "expected"), [(1, 1.0), (5, 5.0)])
def test_a_run_takes_the_conditional_reassignment_when_it_ran(tmp_path, monkeypatch, rate, expected):
    path = _metric_notebook(
        tmp_path,
        ("rate = 1", "pipeline-parameters"),
        ("best = 1.0", "step:first"),
        ("best = 5.0", "step:maybe", "when:rate:>:2"),
        ("best", "pipeline-metrics"),
    )
    assert _run_metrics(path, rate, tmp_path, monkeypatch) == {"best": expected}


def _run_metrics(path, rate, tmp_path, monkeypatch) -> dict:
    """The metrics a local run of the notebook with `rate` reports, as the panel reads them."""
    from kale_like.surfaces.api import load_graph, run
    from kale_like.surfaces.server.run_worker import run_metrics

    monkeypatch.chdir(tmp_path)
    result = run(str(path), {"rate": rate}, store=tmp_path / "store", echo=False, backend="thread")
    assert result.succeeded
    return run_metrics(result, load_graph(str(path)))
