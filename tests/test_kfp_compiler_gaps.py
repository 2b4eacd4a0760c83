"""Shapes kfp's own compiler gets wrong, compiled right and run to the values Python gives.

tests/fixtures/local/kfp_gaps.py holds one pipeline per kfp (2.17) defect: a loop body that never
reads its item, nested in a loop or branch; pipeline parameters whose names are part of kfp's loop
variable names (`a`, `t`, `p`) read two levels below a loop; a loop's own list passed deeper into
it, or a task's list and a parameter read four levels down; if/elif chains without else before an
outer else or a returned value; a nested pipeline whose loops and conditions are numbered like its
caller's (kfp merged both DAGs' tasks into one), and one called from three places; loops and
branches that run no step (left out rather than written as empty DAGs); tests on untyped results
and on an int against a float beyond 2**53 (made by a generated step). Each is compiled to IR,
checked, and the IR is run by the local executor with the cache off; every step notes what it ran
with, and the plain-Python run of the same file is the oracle.

The first three and the nested pipeline are repaired on the IR kfp builds (kale_like/backends/kfp/
ir_repair.py, embedded in the generated module): the same module under plain `dsl.pipeline` still
writes IR that cannot run, which these tests show, so they say when kfp has fixed its compiler.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import kale_like
from kale_like.backends.kfp.validate import check_pipeline_documents, check_pipeline_spec
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
    ("called_thrice", {}),
    ("called_thrice", {"a": 0, "p": [1]}),
    ("deep_list", {}),
    ("deep_list", {"n": 3, "t": 2}),
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


@pytest.mark.parametrize("pipeline", ["short_names", "dag_names"])
def test_the_dsl_module_writes_the_same_yaml(tmp_path, pipeline):
    output = tmp_path / "out" / "gaps.yaml"
    assert main([str(GAPS), "--pipeline", pipeline, "--kfp", "-o", str(output), "-q"]) == 0
    written = output.read_bytes()
    module = output.with_name("gaps_kfp.py")
    assert "@_kl_pipeline(" in module.read_text(encoding="utf-8")
    output.unlink()
    subprocess.run([sys.executable, str(module)], check=True, cwd=tmp_path)
    assert output.read_bytes() == written


@pytest.mark.parametrize(("pipeline", "problem"), [
    ("short-names", "componentInputParameter 'pipelinechannel--a' not in"),
    ("item-unused", "componentInputParameter 'pipelinechannel--make-Output' not in"),
    ("dag-names", "neither an executor nor a DAG with tasks"),
    ("called-thrice", "componentInputParameter 'pipelinechannel--a' not in"),
    ("deep-list", "componentInputParameter 'pipelinechannel--make-Output' not in"),
])
def test_kfp_alone_writes_ir_that_cannot_run_for_these_shapes(tmp_path, pipeline, problem):
    """Why the repairs exist: the same DSL module under plain `dsl.pipeline` gives IR that cannot run.

    When this fails, kfp has fixed its compiler and the repair can go.
    """
    output = tmp_path / "gaps.yaml"
    # --pipeline takes the function name or the pipeline's name=
    assert main([str(GAPS), "--pipeline", pipeline, "--kfp", "-o", str(output), "-q"]) == 0
    module = output.with_name("gaps_kfp.py")
    source = module.read_text(encoding="utf-8")
    source = source.replace("@_kl_pipeline(", "@dsl.pipeline(").replace("@_kl_subpipeline(", "@dsl.pipeline(")
    module.write_text(source, encoding="utf-8")
    output.unlink()
    subprocess.run([sys.executable, str(module)], check=True, cwd=tmp_path)
    problems = check_pipeline_spec(output.read_text(encoding="utf-8"))
    assert any(problem in line for line in problems), problems


def _kfp_alone(tmp_path: Path, pipeline: str):
    """The pipeline object of the generated module with the repairs left out (kfp's IR as it is)."""
    output = tmp_path / f"{pipeline}.yaml"
    assert main([str(GAPS), "--pipeline", pipeline, "--kfp", "-o", str(output), "-q"]) == 0
    module_path = output.with_name(f"{pipeline}_kfp.py")
    source = module_path.read_text(encoding="utf-8")
    source = source.replace("@_kl_pipeline(", "@dsl.pipeline(").replace("@_kl_subpipeline(", "@dsl.pipeline(")
    module_path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"_kl_alone_{pipeline}", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("pipeline", ["short_names", "item_unused", "open_elif", "untyped_tests"])
def test_passing_inputs_adds_only_what_kfp_left_out_and_then_nothing(tmp_path, pipeline):
    """The repair of kfp's IR is a fixed point: a second pass changes nothing, and on IR kfp gets
    right (open_elif, untyped_tests: loops whose bodies read nothing kfp forgets) neither does the
    first."""
    from google.protobuf import json_format

    from kale_like.backends.kfp.ir_repair import _kl_pass_inputs

    spec = _kfp_alone(tmp_path, pipeline).pipeline.pipeline_spec
    before = json_format.MessageToDict(spec)
    broken = check_pipeline_documents([before])
    _kl_pass_inputs(spec)
    once = json_format.MessageToDict(spec)
    assert check_pipeline_documents([once]) == []
    assert (once == before) == (broken == [])
    _kl_pass_inputs(spec)
    assert json_format.MessageToDict(spec) == once


def test_a_value_made_by_a_task_reaches_the_loop_after_its_producer(tmp_path):
    """A loop whose nested loop iterates over a task's list gets the list and waits for the task,
    as kfp writes it when the nested body reads its item (`dependentTasks`: the KFP backend starts
    a DAG task when its dependencies are done, not when its inputs are)."""
    from kale_like.backends.kfp.ir_repair import _kl_pass_inputs

    spec = _kfp_alone(tmp_path, "item_unused").pipeline.pipeline_spec
    _kl_pass_inputs(spec)
    outer = [task for task in spec.root.dag.tasks.values()
             if "pipelinechannel--make-Output" in task.inputs.parameters]
    assert len(outer) == 1 and list(outer[0].dependent_tasks) == ["make"]
    assert outer[0].inputs.parameters["pipelinechannel--make-Output"].task_output_parameter.producer_task == "make"


def test_nested_pipelines_name_their_groups_after_themselves():
    yaml_text = kale_like.compile(GAPS, "dag_names")
    spec = yaml.safe_load(yaml_text)
    dags = {name for name, component in spec["components"].items() if "dag" in component}
    assert {name for name in dags if name.startswith("comp-inner-groups-")} == {
        "comp-inner-groups-for-loop-2", "comp-inner-groups-for-loop-4", "comp-inner-groups-condition-5",
        "comp-inner-groups-condition-6"}
    assert all(spec["components"][name]["dag"]["tasks"] for name in dags)


def test_generated_code_never_assigns_to_another_librarys_modules(tmp_path):
    """The standard: nothing patches another library's internals at run time. What kale_like runs
    while compiling (compile.py and the code every generated module embeds) binds no attribute of
    an imported module."""
    from kale_like.backends.kfp import compile as compile_module
    from kale_like.backends.kfp.dsl_codegen import embedded_source

    output = tmp_path / "gaps.yaml"
    assert main([str(GAPS), "--pipeline", "dag_names", "--kfp", "-o", str(output), "-q"]) == 0
    sources = {"generated module": output.with_name("gaps_kfp.py").read_text(encoding="utf-8"),
               "compile.py": Path(compile_module.__file__).read_text(encoding="utf-8")}
    sources |= {name: embedded_source(name) for name in ("ir_repair.py", "sharing.py", "yaml_writer.py")}
    for where, source in sources.items():
        assert _module_attribute_writes(source) == [], where


def _module_attribute_writes(source: str) -> list[str]:
    tree = ast.parse(source)
    modules = {alias.asname or alias.name.split(".")[0] for node in ast.walk(tree)
               if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    writes = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            targets = node.args[:1]
        for target in targets:
            while isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute):
                target = target.value
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                    and target.value.id in modules:
                writes.append(f"line {node.lineno}: {ast.unparse(target)}")
            elif isinstance(target, ast.Name) and node.__class__ is ast.Call and target.id in modules:
                writes.append(f"line {node.lineno}: {node.func.id}({target.id}, ...)")
    return writes
