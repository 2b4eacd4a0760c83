"""The conditions pass (kale_like/lowering/kfp_conditions.py) on tiny graphs: a branch test KFP cannot
state as Python means it is computed by a generated step before the if, and the branch tests its bool.

What KFP cannot state, per backend source: a loop item's field, or an item of an untyped loop, reaches
a condition as text (backend/src/v2/driver/resolve.go, resolveInputs -> metadata.PbValueToText); an
untyped step result is an artifact; kfp compiles int against float as double(int(a)) > double(b);
a OneOf needs an If/Elif/Else chain of single comparisons (GetProducerTask reads the branch that ran).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from tiny_graphs import branch, collected, condition, const, graph, item, loop, param, reads, run_code, step
from tiny_graphs import task, truth

from kale_like.graph.model import Output, Parameter, Ref, Step
from kale_like.graph.types import JSON
from kale_like.graph.model import Test as BranchTest
from kale_like.lowering import PASSES
from kale_like.lowering.branch_values import branch_values_handed_on
from kale_like.lowering.expressions import expressions_as_steps
from kale_like.lowering.kfp_conditions import conditions_kfp_states

N = Parameter("n", "int", 0)
M = Parameter("m", "float", 0.0)
NAME = Parameter("name", "str", "")


def compare(op: str, left: Ref, right: Ref) -> BranchTest:
    return BranchTest(op, (left, right))


def chosen(step_name: str) -> BranchTest:
    return compare("==", task(step_name, "result"), const(True))


def test_tests_kfp_states_are_left_as_they_are():
    g = graph(condition("if-1", branch(BranchTest("and", tests=(compare(">", param("n"), const(0)),
                                                          compare("==", param("name"), const("a")))), step("a")),
                        branch(truth(param("n")), step("b")), branch(None, step("c"))),
              parameters=(N, NAME))
    assert conditions_kfp_states(g) == g


@pytest.mark.parametrize("left, right, parameters, values, expected", [
    # int against float: KFP's double(int(n)) loses 2**53 + 1
    (param("n"), param("m"), (N, M), {"n": 2 ** 53 + 1, "m": float(2 ** 53)}, True),
    # an untyped step result (an artifact) compared with a number
    (task("score"), const(0.5), (), {"score": 0.75}, True),  # (the input is named after the step)
], ids=["int-vs-float", "untyped-result"])
def test_a_comparison_kfp_cannot_state_is_computed_by_a_step(left, right, parameters, values, expected):
    g = graph(step("score", makes=("result",)), condition("if-1", branch(compare(">", left, right), step("a"))),
              parameters=parameters)
    score, made, lowered = conditions_kfp_states(g).body
    assert score == g.body[0]
    assert isinstance(made, Step) and made.generated and made.from_expression and made.name == "test"
    assert lowered.branches[0].test == chosen("test") and lowered.branches[0].body == (step("a"),)
    assert run_code(made, **values) == {"result": expected}


def test_a_loop_items_field_is_compared_in_python():
    # for i, x in enumerate(xs): if x == "b": ... -- the field reaches KFP's condition as a JSON text
    inner = condition("if-1", branch(compare("==", item("for-1", "field_x"), const("b")), step("a")))
    fields = (Output("field_i", JSON), Output("field_x", JSON))
    g = graph(replace(loop("for-1", task("xs_items", "items"), inner, item_type="dict"), fields=fields),
              step("xs_items", makes=(Output("items", "list"),)))
    made, lowered = conditions_kfp_states(g).body[0].body
    assert [(value.name, value.ref, value.type) for value in made.inputs] == [("x", item("for-1", "field_x"), JSON)]
    assert run_code(made, x="b") == {"result": True} and run_code(made, x="c") == {"result": False}


def test_an_elifs_step_evaluates_its_test_only_when_no_earlier_test_holds():
    # if n == 0: ... elif total > 1 (total: an untyped result) -- the elif's step reads n too
    g = graph(step("total", makes=("result",)),
              condition("if-1", branch(compare("==", param("n"), const(0)), step("a")),
                        branch(compare(">", task("total"), const(1)), step("b")), branch(None, step("c"))),
              parameters=(N,))
    _, made, lowered = conditions_kfp_states(g).body
    assert [b.test for b in lowered.branches] == [g.body[1].branches[0].test, chosen("test"), None]
    assert run_code(made, n=0, total=object()) == {"result": False}  # `total > 1` is never evaluated
    assert run_code(made, n=1, total=5) == {"result": True}


def test_a_condition_whose_branches_feed_a_oneof_has_single_comparisons():
    # KFP's OneOf reads the branch of an If/Elif/Else chain that ran; `and` would make nested Ifs
    both = BranchTest("and", tests=(compare(">", param("n"), const(0)), compare("<", param("n"), const(9))))
    g = graph(condition("if-1", branch(both, step("a", makes=("result",))),
                        branch(None, step("b", makes=("result",)))),
              step("use", reads("v", Ref("oneof", "if-1", "v", options=(task("a"), task("b"))), "int")),
              parameters=(N,))
    made, lowered, use = conditions_kfp_states(g).body
    assert lowered.branches[0].test == chosen("test") and use == g.body[1]
    assert run_code(made, n=3) == {"result": True} and run_code(made, n=9) == {"result": False}
    without_oneof = graph(g.body[0], parameters=(N,))
    assert conditions_kfp_states(without_oneof) == without_oneof  # nested Ifs state it exactly


def test_collected_values_and_oneofs_are_read_by_the_step():
    g = graph(loop("for-1", param("xs"), step("score", makes=(Output("result", "float"),))),
              condition("if-1", branch(truth(collected("score")), step("a"))),
              parameters=(Parameter("xs", "list:int", [1]),))
    _, made, _ = conditions_kfp_states(g).body
    assert [(value.name, value.type) for value in made.inputs] == [("score", "list:float")]
    assert run_code(made, score=[]) == {"result": False}


def test_the_pass_runs_after_expressions_and_before_the_loop_passes():
    assert PASSES[:3] == (expressions_as_steps, branch_values_handed_on, conditions_kfp_states)
