"""Inputs that used to crash or hang the compiler get a located refusal instead (exit 2, the file and
line, what is wrong and what to do), before kfp or libcst's native parser sees them.

- `@step` settings of the wrong shape (`labels="team"`, `labels=None`, `packages=True`, ...);
- parameter defaults kfp's compiler rejects (`pipeline_spec_builder.to_protobuf_value` takes str,
  int, float, bool, list and dict only: None inside a list, `...`) or writes unusable IR (`1e309`
  becomes the Python name `inf` in the DSL module), and defaults that contradict the declared type
  (a bool parameter defaulting to text);
- code nested too deeply: libcst's parser overflows the C stack (a segmentation fault) on a few
  thousand nested brackets and takes minutes on a sum of 10,000 terms.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")


def pipeline_file(folder: Path, decorator: str = "@step", parameters: str = "", module_code: str = "",
                  step_code: str = "print(1)") -> Path:
    source = folder / "p.py"
    source.write_text(textwrap.dedent(f"""\
        from kale_like import pipeline, step
        {module_code}

        {decorator}
        def use():
            {step_code}


        @pipeline(name="p")
        def p({parameters}):
            use()
        """), encoding="utf-8")
    return source


def refused(run_cli, source: Path, out: Path):
    result = run_cli(source, "--kfp", "-o", out)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err and "internal error" not in result.err, result.err
    assert not out.exists() and not out.with_name(out.stem + "_kfp.py").exists()
    return result


SETTINGS = {
    'labels="team"': "labels='team' is not a dict",
    "labels=None": "labels=None is not a dict",
    "packages=True": "packages=True is not a package name",
    "packages=-1": "packages=-1 is not a package name",
    'env={"MODE": None}': "env['MODE'] is None",
    'tolerations="gpu"': "tolerations='gpu' is not a dict or a list of dicts",
    "retries=True": "retries=True is not a whole number",
    'cache="no"': "cache='no' is not True or False",
}


DEFAULTS = {
    "x: list = [1, None]": "None (item 1) is not a value KFP can store inside a list or dict",
    'x: dict = {"a": {"b": None}}': "None (under 'b') is not a value KFP can store",
    "x: int = ...": "... is a placeholder, not a value",
    "x: float = 1e309": "inf is not a finite number",
    'x: bool = "yes"': "'yes' is a str, and the parameter is declared bool",
    "x: int = 1.5": "1.5 is a float, and the parameter is declared int",
    "x: dict = {1: 2}": "the key 1 is not text",
}

REFUSED = [*(("decorator", f"@step({code})", f"p.py:5:1: @step setting {why}") for code, why in SETTINGS.items()),
           *(("parameters", code, f"p.py:10:1: pipeline parameter 'x' has a default KFP cannot take: {why}")
             for code, why in DEFAULTS.items())]


@pytest.mark.parametrize("field, code, message", REFUSED, ids=[code for _, code, _ in REFUSED])
def test_settings_and_defaults_kfp_cannot_take_are_refused_before_kfp_runs(tmp_path, run_cli, field, code, message):
    result = refused(run_cli, pipeline_file(tmp_path, **{field: code}), tmp_path / "p.yaml")
    assert message in result.err
    assert "hint: e.g. " in result.err or "hint: give a JSON value of the declared type" in result.err


@pytest.mark.parametrize("parameter", ["x: str = None", "x: float = 1", 'x: dict = {"a": [1, {"b": 2.5}]}',
                                       "x: list = [[1, 2], []]", "x: bool = False"])
def test_defaults_kfp_takes_still_compile(tmp_path, run_cli, parameter):
    assert run_cli(pipeline_file(tmp_path, parameters=parameter), "--kfp", "-o", tmp_path / "p.yaml", "-q").code == 0


DEEP = {
    "parentheses": "(" * 5000 + "1" + ")" * 5000,
    "lists": "[" * 3000 + "]" * 3000,
    "sum": " + ".join("1" for _ in range(10_000)),
    "strings": " ".join('"a"' for _ in range(5000)),
    "calls": "str" + "()" * 3000,
}


@pytest.mark.parametrize("shape", DEEP, ids=list(DEEP))
def test_deeply_nested_module_code_is_refused_with_its_line(tmp_path, run_cli, shape):
    result = refused(run_cli, pipeline_file(tmp_path, module_code=f"X = {DEEP[shape]}"), tmp_path / "p.yaml")
    assert "p.py:2:" in result.err and "too deeply nested" in result.err, result.err
    assert "split it into smaller statements" in result.err


@pytest.mark.parametrize("shape", ["parentheses", "sum"])
def test_deeply_nested_step_code_is_refused_with_its_line(tmp_path, run_cli, shape):
    result = refused(run_cli, pipeline_file(tmp_path, step_code=f"y = {DEEP[shape]}"), tmp_path / "p.yaml")
    assert "p.py:6:5:" in result.err and "too deeply nested" in result.err, result.err


@pytest.mark.parametrize("tag", ["step:work", "pipeline-metrics", "pipeline-parameters", "imports", "functions"])
def test_deeply_nested_notebook_cells_are_refused_with_their_cell(tmp_path, run_cli, tag):
    notebook = nbformat.v4.new_notebook()
    first = nbformat.v4.new_code_cell("a = 1", metadata={"tags": ["step:first"]})
    deep = nbformat.v4.new_code_cell(f"b = 2\nprint({DEEP['sum']})" if tag == "pipeline-metrics"
                                     else f"b = {DEEP['parentheses']}", metadata={"tags": [tag]})
    notebook.cells = [first, deep] if tag != "pipeline-parameters" else [deep, first]
    path = tmp_path / "deep.ipynb"
    nbformat.write(notebook, path)
    result = refused(run_cli, path, tmp_path / "deep.yaml")
    assert "deep.ipynb:cell" in result.err and "too deeply nested" in result.err, result.err
    assert "syntax error" not in result.err and "hint: split it into smaller statements" in result.err, result.err


def test_nesting_real_code_uses_still_compiles(tmp_path, run_cli):
    nested = "(" * 40 + "1" + ")" * 40 + " + " + " + ".join("2" for _ in range(60))
    source = pipeline_file(tmp_path, module_code=f"X = {nested}; Y = " + "[" * 30 + "]" * 30)
    assert run_cli(source, "--kfp", "-o", tmp_path / "p.yaml", "-q").code == 0
