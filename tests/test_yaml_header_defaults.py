"""A text default holding a line break, a carriage return or quotes: the YAML written still parses.

kfp writes the pipeline's inputs into the comment block at the top of the YAML
(`pipeline_spec_builder.extract_comments_from_pipeline_spec`), a text default as `'` + value + `'`:
a newline in `name: str = "x\\ny"` ended the comment and `y']` became YAML, so `--kfp` exited 0 and
wrote a file no YAML reader (nor the KFP server) accepts. The header now writes each text default as
Python's repr writes it between single quotes.
"""

from __future__ import annotations

import ast

import pytest
import yaml

import kale_like
from kale_like.backends.kfp import yaml_writer
from kale_like.backends.kfp.dsl_codegen import generate_module
from kale_like.surfaces.api import load_graph
from test_yaml_writer import pipeline_of

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

DEFAULTS = ["x\ny", "a\rb", "it's", 'say "hi"', "both ' and \"", "back\\slash\\n", "tab\there", "x\x85y",
            "x\u2028y", "line\r\n", "a: b", "{braces}", "plain"]

SOURCE = '''from kale_like import step, pipeline

@step
def echo(x: str) -> str:
    return x

@pipeline(name="m")
def main(name: str = {default!r}):
    return echo(name)
'''


def header(text: str) -> list[str]:
    lines = text.split("\n")
    return lines[:next(i for i, line in enumerate(lines) if not line.startswith("#"))]


@pytest.mark.parametrize("libyaml", [True, False], ids=["libyaml", "pyyaml"])
@pytest.mark.parametrize("default", DEFAULTS, ids=repr)
def test_the_yaml_parses_and_holds_the_ir(tmp_path, monkeypatch, default, libyaml):
    source = tmp_path / "defaults.py"
    source.write_text(SOURCE.format(default=default), encoding="utf-8")
    pipeline = pipeline_of(generate_module(load_graph(source)), tmp_path)
    if not libyaml:
        monkeypatch.setattr(yaml, "__with_libyaml__", False)
    text, documents = yaml_writer._kl_yaml_text(pipeline, str(tmp_path / "scratch.yaml"))

    assert [d for d in yaml.safe_load_all(text) if d] == documents
    parameters = documents[0]["root"]["inputDefinitions"]["parameters"]
    assert parameters["name"]["defaultValue"] == default
    (line,) = [line for line in header(text) if line.startswith("#    name: str")]
    assert ast.literal_eval(line.partition(" [Default: ")[2][:-1]) == default  # Python's repr of the default
    assert text.split("\n")[len(header(text))] == "components:"  # the comment block ends where kfp's does


@pytest.mark.parametrize("default", ["x\ny", "a\rb", "it's", 'say "hi"'], ids=repr)
def test_the_cli_writes_yaml_that_loads_and_the_step_gets_the_default(tmp_path, run_cli, default):
    source = tmp_path / "defaults.py"
    source.write_text(SOURCE.format(default=default), encoding="utf-8")
    result = run_cli(source, "--kfp", "-o", tmp_path / "out.yaml")
    assert result.code == 0, result.err
    loaded = list(yaml.safe_load_all((tmp_path / "out.yaml").read_text(encoding="utf-8")))
    assert loaded[0]["root"]["inputDefinitions"]["parameters"]["name"]["defaultValue"] == default

    run = kale_like.run(source, store=tmp_path / "store", echo=False)
    assert run.succeeded, run.error
    assert run.outputs == {"Output": default}
