"""Pipeline parameter defaults KFP would change or cannot pass are refused when compiling.

- an int beyond 2**53 (`n: int = 9007199254740993`): KFP keeps parameter values as protobuf
  `Value`s, whose numbers are doubles; the YAML held 9007199254740992.0 and the run got that;
- `tag: str = None`: kfp declares the parameter optional without a default, the step reading it
  declares a required input, and the KFP driver fails the task ("neither value nor default value
  provided for non-optional parameter", kubeflow/pipelines backend/src/v2/driver/resolve.go,
  resolveInputs), where Python passes None.
"""

from __future__ import annotations

import pytest

from kale_like.errors import KaleLikeError
from kale_like.graph.checks import check_graph
from kale_like.graph.model import Parameter
from tiny_graphs import graph, param, reads, step

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

SOURCE = """from kale_like import step, pipeline

@step
def show(x):
    print("OUT show", repr(x))

@pipeline(name="m")
def p({parameter}):
    show({name})
"""


@pytest.mark.parametrize(("parameter", "said", "hint"), [
    ("n: int = 9007199254740993", "has the default 9007199254740993, beyond 2**53: KFP stores numbers as doubles "
     "and would round it to 9007199254740992", "n: str = '9007199254740993', then int(n)"),
    ("n: list = [1, -1152921504606846977]", "a default holding -1152921504606846977, beyond 2**53", "pass such numbers as text (str)"),
    ("n: str = None", "has the default None, which KFP cannot pass to a step", "n: str = '' (then `if not n:`)"),
    ("n: int = None", "has the default None", "n: int = 0"),
])
def test_a_default_kfp_would_change_is_refused_where_it_stands(tmp_path, run_cli, parameter, said, hint):
    source = tmp_path / "defaults.py"
    source.write_text(SOURCE.format(parameter=parameter, name="n"))
    for mode in ("--kfp", "--run"):
        result = run_cli(source, mode, "-o", tmp_path / "out.yaml", "--store", tmp_path / "store") \
            if mode == "--run" else run_cli(source, mode, "-o", tmp_path / "out.yaml")
        assert result.code == 2, result.err
        assert "defaults.py:8:1: pipeline parameter 'n'" in result.err
        assert said in result.err and hint in result.err
        assert "Traceback" not in result.err
    assert not (tmp_path / "out.yaml").exists()


@pytest.mark.parametrize("default", [2**53, -2**53, [2**53, 1], "9007199254740993"])
def test_defaults_a_double_holds_pass(default):
    kind = {int: "int", list: "list", str: "str"}[type(default)]
    g = graph(step("show", reads("x", param("n"), kind)), parameters=(Parameter("n", kind, default),))
    assert check_graph(g) == []


def test_a_required_parameter_has_no_default_to_check():
    g = graph(step("show", reads("x", param("n"), "str")), parameters=(Parameter("n", "str", None, required=True),))
    assert check_graph(g) == []


def test_a_nested_pipelines_none_default_is_refused_too():
    from tiny_graphs import call, sub
    inner = sub("inner", step("show", reads("x", param("v"), "str")), parameters=(Parameter("v", "str", None),))
    g = graph(call("inner", "inner"), subpipelines=(inner,))
    with pytest.raises(KaleLikeError, match="'v' has the default None"):
        check_graph(g)
