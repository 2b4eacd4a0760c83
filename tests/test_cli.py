"""The command line: flags, parameter overrides, outputs, graph JSON, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, fixture_notebook

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

# --- --param ------------------------------------------------------------------------------------

_OVERRIDES = [
    ("n_rows=5", "n_rows", "NUMBER_INTEGER", 5),
    ("ratio=1", "ratio", "NUMBER_DOUBLE", 1.0),
    ("label=42", "label", "STRING", "42"),
    ("label=a=b", "label", "STRING", "a=b"),
    ("verbose=false", "verbose", "BOOLEAN", False),
    ('columns=["x", "y"]', "columns", "LIST", ["x", "y"]),
    ("columns=('p', 'q')", "columns", "LIST", ["p", "q"]),
    ('options={"depth": 1}', "options", "STRUCT", {"depth": 1}),
]


@pytest.mark.parametrize(("arg", "name", "kfp_type", "default"), _OVERRIDES, ids=[o[0] for o in _OVERRIDES])
def test_param_overrides_the_default_typed_by_its_declaration(compiled, arg, name, kfp_type, default):
    parameter = compiled("parameters", "--param", arg).parameters[name]
    assert parameter["parameterType"] == kfp_type
    assert parameter["defaultValue"] == default
    assert type(parameter["defaultValue"]) is type(default) or kfp_type.startswith("NUMBER")


def test_param_leaves_other_defaults_alone(compiled):
    parameters = compiled("parameters", "--param", "n_rows=5").parameters
    assert parameters["ratio"]["defaultValue"] == 0.25
    assert parameters["label"]["defaultValue"] == "demo"


_BAD_PARAMS = [
    ("n_rows=abc", "--param n_rows=abc: not a valid int"),
    ("n_rows=1.5", "--param n_rows=1.5: not a valid int"),
    ("ratio=fast", "--param ratio=fast: not a valid float"),
    ("verbose=maybe", "--param verbose=maybe: not a valid bool"),
    ('columns={"a": 1}', "not a valid list"),
    ("options=[1]", "not a valid dict"),
    ("nope=1", "--param nope: the pipeline has no such parameter"),
    ("n_rows", "--param n_rows: expected NAME=VALUE"),
]


@pytest.mark.parametrize(("arg", "message"), _BAD_PARAMS, ids=[b[0] for b in _BAD_PARAMS])
def test_bad_param_exits_2_and_writes_nothing(run_cli, tmp_path, arg, message):
    out = tmp_path / "out.yaml"
    result = run_cli(fixture_notebook("parameters"), "--kfp", "-o", out, "--param", arg)
    assert result.code == 2
    assert result.err.startswith("error: ")
    assert message in result.err.splitlines()[0]
    assert "\n  hint: " in result.err
    assert "Traceback" not in result.err
    assert not out.exists()


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_float_param_is_not_an_internal_error(run_cli, tmp_path, value):
    result = run_cli(fixture_notebook("parameters"), "--kfp", "-o", tmp_path / "out.yaml", "--param", f"ratio={value}")
    assert result.code in (0, 2)
    assert "internal error" not in result.err


# --- flags override metadata only when given ----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "name", "experiment"),
    [
        ((), "meta-pipe", "meta-exp"),
        (("--pipeline-name", "cli-pipe"), "cli-pipe", "meta-exp"),
        (("--experiment", "cli-exp"), "meta-pipe", "cli-exp"),
    ],
    ids=["no-flags", "pipeline-name", "experiment"],
)
def test_flags_override_metadata_only_when_given(graph_json, args, name, experiment):
    settings = graph_json(fixture_notebook("metadata"), *args)["settings"]
    assert (settings["name"], settings["experiment"]) == (name, experiment)
    assert settings["description"] == "Described in the notebook metadata"


def test_pipeline_name_flag_names_the_compiled_pipeline(compiled):
    assert compiled("metadata", "--pipeline-name", "cli-pipe").name == "cli-pipe"


def test_invalid_pipeline_name_flag_exits_2(run_cli, tmp_path):
    result = run_cli(fixture_notebook("metadata"), "--kfp", "-o", tmp_path / "out.yaml", "--pipeline-name", "Bad Name")
    assert result.code == 2
    assert "pipeline name 'Bad Name' is not valid" in result.err
    assert not (tmp_path / "out.yaml").exists()


def test_image_flag_replaces_the_default_image_but_not_an_image_tag(compiled):
    ir = compiled("run_settings", "--image", "example.com/cli:2")
    assert ir.container("plain")["image"] == "example.com/cli:2"
    assert ir.container("job")["image"] == "example.com/team/job:1.2"


def test_image_flag_replaces_the_metadata_image(compiled):
    assert compiled("metadata", "--image", "example.com/cli:2").container("only")["image"] == "example.com/cli:2"


# --- outputs ------------------------------------------------------------------------------------


def test_kfp_writes_the_yaml_and_the_dsl_module_beside_it(run_cli, tmp_path):
    out = tmp_path / "sub" / "out.yaml"
    result = run_cli(fixture_notebook("step_tags"), "--kfp", "-o", out)
    assert result.code == 0
    assert result.out.strip() == f"wrote {out} (3 steps) and {tmp_path / 'sub' / 'out_kfp.py'}"
    assert out.read_text(encoding="utf-8").startswith("# PIPELINE DEFINITION")
    assert "@dsl.pipeline" in (tmp_path / "sub" / "out_kfp.py").read_text(encoding="utf-8")


def test_dsl_flag_chooses_the_module_path_and_no_dsl_skips_it(run_cli, tmp_path):
    path = fixture_notebook("step_tags")
    assert run_cli(path, "--kfp", "-o", tmp_path / "a.yaml", "--dsl", tmp_path / "m.py").code == 0
    assert (tmp_path / "m.py").exists() and not (tmp_path / "a_kfp.py").exists()
    assert run_cli(path, "--kfp", "-o", tmp_path / "b.yaml", "--no-dsl").code == 0
    assert (tmp_path / "b.yaml").exists() and not (tmp_path / "b_kfp.py").exists()


def test_output_must_be_yaml(run_cli, tmp_path):
    result = run_cli(fixture_notebook("step_tags"), "--kfp", "-o", tmp_path / "out.json")
    assert result.code == 2
    assert "must end in .yaml" in result.err
    assert list(tmp_path.iterdir()) == [tmp_path / "tempfiles"]


def test_source_must_be_a_notebook(run_cli, tmp_path):
    source = tmp_path / "pipeline.txt"
    source.write_text("x = 1\n", encoding="utf-8")
    result = run_cli(source, "--kfp", "-o", tmp_path / "out.yaml")
    assert result.code == 2
    assert result.err.startswith(f"error: {source}: cannot read a '.txt' file")


def test_without_kfp_it_prints_a_summary_and_writes_nothing(run_cli, tmp_path):
    result = run_cli(fixture_notebook("prev_diamond"))
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == "pipeline prev-diamond: 5 steps, 0 parameters"
    assert [line.split()[0] for line in lines[1:-1]] == ["load", "left", "right", "join", "audit"]
    assert lines[-1] == "add --kfp to compile it"


# --- --graph-json -------------------------------------------------------------------------------


def test_graph_json_lists_steps_and_edges_named_by_the_variables_they_carry(run_cli):
    result = run_cli(fixture_notebook("step_tags"), "--graph-json")
    assert result.code == 0
    graph = json.loads(result.out)
    assert [s["name"] for s in graph["steps"]] == ["load", "double", "show"]
    assert sorted((e["source"], e["target"], tuple(e["names"])) for e in graph["edges"]) == [
        ("double", "show", ("y",)),
        ("load", "double", ("x",)),
    ]


def test_graph_json_with_kfp_prints_json_then_writes(run_cli, tmp_path):
    result = run_cli(fixture_notebook("step_tags"), "--graph-json", "--kfp", "-o", tmp_path / "out.yaml")
    assert result.code == 0
    document, _, tail = result.out.rpartition("\n}\n")
    assert json.loads(document + "\n}")["settings"]["name"] == "chain"
    assert tail.startswith("wrote ")


# --- end to end (subprocess) --------------------------------------------------------------------


def _module(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kale_like", *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_module_entry_point_compiles(tmp_path):
    out = tmp_path / "out.yaml"
    run = _module(fixture_notebook("prev_diamond"), "--kfp", "-o", out)
    assert run.returncode == 0, run.stderr
    assert out.exists() and (tmp_path / "out_kfp.py").exists()


def test_module_entry_point_reports_an_input_error_without_traceback(tmp_path):
    out = tmp_path / "out.yaml"
    path = fixture_notebook("err_undefined")
    run = _module(path, "--kfp", "-o", out)
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        f"error: {path}:cell 3 (step b):2:9: name 'missing_value' is not defined by any earlier step, "
        "import, function or parameter",
        "  hint: assign it in an earlier step, import it in an 'imports' cell, or add it to 'pipeline-parameters'",
    ]
    assert run.stdout == ""
    assert not out.exists()
