"""Constant arguments KFP cannot carry, and pipelines returning a parameter or a constant.

`show(None)` in a pipeline body used to stop the compile with an internal error (kfp's compiler
refuses a None constant: `pipeline_spec_builder.to_protobuf_value`), and so did a tuple or a list
holding None; an int beyond 2**53 arrived rounded (the IR's constants are protobuf Values, numbers are
doubles). `return threshold` (a parameter) as the last statement of a pipeline stopped kfp with
"'NoneType' object has no attribute 'parent_task_group'": a KFP pipeline's output must be a task's
(`dagOutputs` name a producer task; kubeflow/pipelines `backend/src/v2/driver/resolve.go`,
`resolveUpstreamParameters`, resolves a nested pipeline's output through it).
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import replace
from pathlib import Path

import pytest

import kale_like
from kale_like.graph.model import Output, Parameter, Ref
from kale_like.lowering import lower
from kale_like.lowering.constant_arguments import constants_made_by_steps, kfp_constant
from kale_like.lowering.returned_values import returned_values_from_tasks
from tiny_graphs import call, const, generated, graph, param, reads, run_code, step, sub, task, without_code

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "values"


def plain(path: Path, pipeline: str, **params):
    spec = importlib.util.spec_from_file_location(f"_kl_plain_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, pipeline)(**params)


# --- constants_made_by_steps (lowering/constant_arguments.py) ----------------------------------------


@pytest.mark.parametrize("value", ["a", 1, -2**53, 2.5, True, [1, "a", [2.0]], {"a": [1, {"b": False}]}, [], {}])
def test_constants_kfp_carries_stay_constants(value):
    g = graph(step("show", reads("x", const(value))))
    assert kfp_constant(value)
    assert constants_made_by_steps(g) == g


@pytest.mark.parametrize("value", [None, [1, None], {"a": None}, (1, 2), [(1, 2)], {1: "one"}, 2**53 + 1,
                                   -2**60, float("nan"), float("inf"), {1, 2}, b"x"])
def test_a_constant_kfp_cannot_carry_is_made_by_a_step_handing_on_exactly_it(value):
    g = graph(step("show", reads("x", const(value), "list"), reads("y", param("y"), "int")),
              parameters=(Parameter("y", "int", 1),))

    made, show = constants_made_by_steps(g).body

    assert without_code(made) == generated("show_x", makes=(Output("value"),))
    # untyped: the value travels as a pickled artifact, and the step reads it as such
    assert show == step("show", reads("x", task("show_x", "value")), reads("y", param("y"), "int"))
    handed = run_code(made)["value"]
    assert type(handed) is type(value)
    assert handed == value or (isinstance(value, float) and math.isnan(handed))


def test_constants_of_steps_in_nested_pipelines_are_made_there():
    g = graph(call("inner", "inner"), subpipelines=(sub("inner", step("show", reads("x", const(None)))),))
    lowered = constants_made_by_steps(g)
    assert [node.name for node in lowered.subpipelines[0].body] == ["show_x", "show"]
    assert lowered.body == g.body


def test_constant_arguments_the_user_sees_are_what_python_passes(tmp_path, run_cli):
    source = FIXTURES / "constant_arguments.py"
    result = kale_like.run(source, store=tmp_path / "store", echo=False)
    assert result.succeeded, result.error
    assert result.outputs == {"Output": plain(source, "main")}
    assert result.outputs["Output"][:5] == ["None", "[1, None]", "(1, 2)", "{1: 'one'}", str(2**60 + 1)]

    compiled = run_cli(source, "--kfp", "-o", tmp_path / "out.yaml")
    assert compiled.code == 0, compiled.err
    assert (tmp_path / "out.yaml").is_file()


def test_none_given_to_a_nested_pipeline_is_refused_with_its_line(tmp_path, run_cli):
    source = tmp_path / "nested_none.py"
    source.write_text(
        "from kale_like import step, pipeline\n\n@step\ndef show(x):\n    print(x)\n\n"
        "@pipeline(name='inner')\ndef inner(v: str = ''):\n    show(v)\n\n"
        "@pipeline(name='m')\ndef main():\n    inner(None)\n")
    result = run_cli(source, "--kfp", "-o", tmp_path / "out.yaml")
    assert result.code == 2
    assert "nested_none.py:13:5" in result.err and "Traceback" not in result.err


# --- returned_values_from_tasks (lowering/returned_values.py) ---------------------------------------


def test_returned_task_outputs_stay_as_they_are():
    g = graph(step("make", makes=("result",)), returns=task("make"))
    assert returned_values_from_tasks(g) == g


def test_a_returned_parameter_is_handed_on_by_a_step():
    g = graph(step("show", reads("x", param("t"), "float")), parameters=(Parameter("t", "float", 0.3),),
              returns=param("t"))
    g = replace(g, return_type="float")

    lowered = returned_values_from_tasks(g)

    show, result = lowered.body
    assert without_code(result) == generated("tiny_result", reads("value", param("t"), "float"),
                                             makes=(Output("value", "float"),))
    assert lowered.returns == Ref("task", "tiny_result", "value")
    assert run_code(result, value=0.7) == {"value": 0.7}


def test_a_nested_pipeline_returning_a_constant_returns_a_steps_output():
    inner = sub("inner-constant", step("show"), returns=const(None))
    g = graph(call("inner", "inner-constant", makes=("Output",)), subpipelines=(inner,))

    lowered = returned_values_from_tasks(g).subpipelines[0]

    assert [node.name for node in lowered.body] == ["show", "inner_constant_result"]
    assert lowered.returns == Ref("task", "inner_constant_result", "value")
    assert run_code(lowered.body[-1]) == {"value": None}


@pytest.mark.parametrize(("pipeline", "params"), [("main", {}), ("main", {"threshold": 0.9}), ("nested", {}),
                                                  ("constant", {"t": 1.0})])
def test_pipelines_returning_parameters_give_what_python_returns(tmp_path, pipeline, params):
    source = FIXTURES / "returned_parameters.py"
    result = kale_like.run(source, params, pipeline=pipeline, store=tmp_path / "store", echo=False)
    assert result.succeeded, result.error
    assert result.outputs == {"Output": plain(source, pipeline, **params)}


@pytest.mark.parametrize("pipeline", ["main", "nested", "constant"])
def test_a_pipeline_returning_its_parameter_compiles(tmp_path, run_cli, pipeline):
    result = run_cli(FIXTURES / "returned_parameters.py", "--pipeline", pipeline, "--kfp", "-o", tmp_path / "out.yaml")
    assert result.code == 0, result.err


def test_lower_runs_both_passes():
    g = graph(step("show", reads("x", const(None))), parameters=(Parameter("t", "float", 0.3),), returns=param("t"))
    names = [node.name for node in lower(g).body]
    assert names[:3] == ["show_x", "show", "tiny_result"]
