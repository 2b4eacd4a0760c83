"""Shapes kfp's own compiler gets wrong, compiled right and run to the values Python gives.

tests/fixtures/local/kfp_gaps.py holds one pipeline per kfp (2.17) defect: a loop body that never
reads its item, nested in a loop or branch; pipeline parameters whose names are part of kfp's loop
variable names (`a`, `t`, `p`) read two levels below a loop; a loop's own list passed deeper into
it; if/elif chains without else before an outer else or a returned value; a nested pipeline whose
loops and conditions are numbered like its caller's (kfp merged both DAGs' tasks into one); loops and
branches that run no step (left out rather than written as empty DAGs); tests on untyped results
and on an int against a float beyond 2**53 (made by a generated step). Each is compiled to IR,
checked, and the IR is run by the local executor with the cache off; every step notes what it ran
with, and the plain-Python run of the same file is the oracle.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import kale_like
from kale_like.backends.kfp.validate import check_pipeline_spec
from kale_like.surfaces.cli import main

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

GAPS = Path(__file__).resolve().parent / "fixtures" / "local" / "kfp_gaps.py"
CASES = [
    ("item_unused", {}),
    ("item_unused", {"ys": [], "go": False, "n": 3}),
    ("short_names", {}),
    ("short_names", {"a": 0, "t": "b", "p": [9]}),
    ("own_list", {}),
    ("own_list", {"xs": [4]}),
    ("open_elif", {}),
    ("open_elif", {"n": 1}),
    ("open_elif", {"n": 7, "go": False}),
    ("dag_names", {}),
    ("dag_names", {"xs": [5], "n": 4}),
    ("empty_bodies", {}),
    ("empty_bodies", {"n": 1}),
    ("empty_bodies", {"n": 0}),
    ("untyped_tests", {}),
    ("untyped_tests", {"a": 0, "b": 0.5}),
    ("untyped_tests", {"a": 2 ** 53 + 1, "b": float(2 ** 53)}),
    ("untyped_tests", {"a": 2 ** 53, "b": float(2 ** 53)}),
]


def plain_module():
    spec = importlib.util.spec_from_file_location("_kl_plain_kfp_gaps", GAPS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def notes(path: Path) -> list[str]:
    return sorted(path.read_text(encoding="utf-8").splitlines()) if path.exists() else []


@pytest.mark.parametrize(("pipeline", "params"), CASES)
def test_compiled_ir_runs_like_python(tmp_path, pipeline, params):
    yaml_text = kale_like.compile(GAPS, pipeline)
    assert check_pipeline_spec(yaml_text) == []
    compiled = tmp_path / "pipeline.yaml"
    compiled.write_text(yaml_text, encoding="utf-8")

    expected_log, log = tmp_path / "python.jsonl", tmp_path / "local.jsonl"
    returned = getattr(plain_module(), pipeline)(log=str(expected_log), **params)
    result = kale_like.run(compiled, {**params, "log": str(log)}, store=tmp_path / "store", echo=False, cache=False)

    assert result.status == "SUCCEEDED", result.error
    assert notes(log) == notes(expected_log)
    assert notes(log), "the case runs no step at all: it tests nothing"
    if returned is not None:
        assert result.outputs == {"Output": returned}


def test_the_dsl_module_writes_the_same_yaml_and_leaves_kfp_unpatched(tmp_path):
    from kfp.compiler import compiler_utils

    before = compiler_utils.get_inputs_for_all_groups
    output = tmp_path / "out" / "gaps.yaml"
    assert main([str(GAPS), "--pipeline", "short_names", "--kfp", "-o", str(output), "-q"]) == 0
    assert compiler_utils.get_inputs_for_all_groups is before
    written = output.read_bytes()
    module = output.with_name("gaps_kfp.py")
    assert "@_kl_pipeline(" in module.read_text(encoding="utf-8")
    output.unlink()
    subprocess.run([sys.executable, str(module)], check=True, cwd=tmp_path)
    assert output.read_bytes() == written


@pytest.mark.parametrize(("pipeline", "problem"), [
    ("short-names", "componentInputParameter 'pipelinechannel--a' not in"),
    ("dag-names", "neither an executor nor a DAG with tasks"),
])
def test_kfp_alone_writes_ir_that_cannot_run_for_these_shapes(tmp_path, pipeline, problem):
    """Why the fixes exist: the same DSL module under plain `dsl.pipeline` gives IR that cannot run.

    When this fails, kfp has fixed its compiler and the workaround can go.
    """
    output = tmp_path / "gaps.yaml"
    # --pipeline takes the function name or the pipeline's name=
    assert main([str(GAPS), "--pipeline", pipeline, "--kfp", "-o", str(output), "-q"]) == 0
    module = output.with_name("gaps_kfp.py")
    source = module.read_text(encoding="utf-8").replace("@_kl_pipeline(", "@dsl.pipeline(")
    module.write_text(source, encoding="utf-8")
    output.unlink()
    subprocess.run([sys.executable, str(module)], check=True, cwd=tmp_path)
    problems = check_pipeline_spec(output.read_text(encoding="utf-8"))
    assert any(problem in line for line in problems), problems


def test_a_kfp_without_the_patched_internals_builds_unrepaired(monkeypatch):
    """The repairs touch kfp internals; a kfp laid out differently gets no patch rather than a crash."""
    import contextlib

    from kfp.compiler import pipeline_spec_builder

    from kale_like.backends.kfp.kfp_fixes import _kl_kfp_fixes

    monkeypatch.delattr(pipeline_spec_builder, "_merge_component_spec")
    assert isinstance(_kl_kfp_fixes(), contextlib.nullcontext)
