"""The branch-values pass (kale_like/lowering/branch_values.py) on tiny graphs: a OneOf reads a task of
each branch of its if/elif/else, so a value no task of the branch made is handed on by a generated
step at the end of that branch. KFP's driver resolves a OneOf to the output of the branch that ran
(backend/src/v2/driver/resolve.go, GetProducerTask: "processing OneOf"): only task outputs qualify.
"""

from __future__ import annotations

from tiny_graphs import branch, condition, const, graph, param, reads, run_code, step, task, truth

from kale_like.graph.model import Output, Parameter, Ref, Step
from kale_like.lowering.branch_values import branch_values_handed_on

FAST = Parameter("fast", "bool", True)
MODE = Parameter("mode", "str", "safe")


def chosen(*options: Ref) -> Ref:
    """`mode` after the if `if-1`: whichever value its branch that ran gave it."""
    return Ref("oneof", "if-1", "mode", options=options)


def test_a_oneof_of_results_made_in_their_branches_is_left_as_it_is():
    g = graph(condition("if-1", branch(truth(param("fast")), step("a", makes=("result",))),
                        branch(None, step("b", makes=("result",)))),
              step("use", reads("mode", chosen(task("a"), task("b")))), parameters=(FAST,))
    assert branch_values_handed_on(g) == g


def test_values_no_task_of_the_branch_made_are_handed_on_at_its_end():
    # if fast: mode = "quick"  elif ...: mode = mode_param  else: mode = prepare's result (made before the if)
    prepare = step("prepare", makes=(Output("result", "str"),))
    g = graph(prepare,
              condition("if-1", branch(truth(param("fast")), step("a")),
                        branch(truth(param("mode")), step("b")),
                        branch(None, step("c"))),
              step("use", reads("mode", chosen(const("quick"), param("mode"), task("prepare")), "str")),
              parameters=(FAST, MODE), returns=chosen(const("quick"), param("mode"), task("prepare")))
    _, lowered, use = branch_values_handed_on(g).body
    ends = [b.body[-1] for b in lowered.branches]
    assert [s.name for s in ends] == ["mode_value", "mode_value_2", "mode_value_3"]
    assert all(isinstance(s, Step) and s.generated and s.outputs == (Output("mode", "str"),) for s in ends)
    assert [b.body[:-1] for b in lowered.branches] == [b.body for b in g.body[1].branches]
    handed = chosen(task("mode_value", "mode"), task("mode_value_2", "mode"), task("mode_value_3", "mode"))
    assert use.inputs[0].ref == handed and branch_values_handed_on(g).returns == handed  # every reader
    assert run_code(ends[0]) == {"mode": "quick"}  # the constant is written into the code
    assert run_code(ends[1], value="fast") == {"mode": "fast"}
    assert [value.ref for value in ends[2].inputs] == [task("prepare")]


def test_a_constant_list_is_handed_on_too():
    g = graph(condition("if-1", branch(truth(param("fast")), step("a")), branch(None, step("b", makes=("result",)))),
              step("use", reads("mode", chosen(const([1, 2]), task("b")), "list")), parameters=(FAST,))
    lowered, use = branch_values_handed_on(g).body
    assert run_code(lowered.branches[0].body[-1]) == {"mode": [1, 2]}
    assert lowered.branches[1].body == g.body[0].branches[1].body  # b's result is its own task's
    assert use.inputs[0].ref.options == (task("mode_value", "mode"), task("b"))
