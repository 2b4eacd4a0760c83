"""Branch tests KFP cannot state the way Python means them are computed by a generated step.

A frontend writes an if's test as the user meant it: comparisons, truth tests, `not`, `and`, `or`
over parameters, step results, loop items, collected lists and values chosen by an earlier if. A KFP
condition is narrower (`kale_like/graph/conditions.py` reduces a test to what KFP 2.14-2.17
evaluates correctly), and the backend's driver reads some values otherwise than Python:

- a loop item's field, or an item of a loop over untyped values, reaches a condition as text
  (`backend/src/v2/driver/resolve.go`, `resolveInputs` -> `metadata.PbValueToText`);
- a step result of no declared type is an artifact, which a condition cannot read at all;
- a collected list or a OneOf in a condition is refused by kfp's compiler;
- `int` against `float` is compiled as `double(int(a)) > double(b)` (wrong beyond 2**53);
- KFP's `OneOf` needs an If/Elif/Else chain of single comparisons: `and`/`or` become nested Ifs
  (`exclusive_paths`), which a OneOf cannot read from.

Such a test is computed in Python by a generated step placed before the if, and the branch tests
that step's bool. An `elif`'s step computes `not earlier and this`, so it evaluates the test only
when Python would (`if n == 0: ... elif 10 // n > 1:` never divides by zero).
"""

from __future__ import annotations

from dataclasses import replace

from kale_like.graph.conditions import COMPARISONS, ConditionError, is_atom, normalize, operand_name, python_text
from kale_like.graph.model import (
    Branch, Condition, Input, Node, Output, Ref, Step, StepGraph, Test, unique_name,
)
from kale_like.graph.types import SCALARS
from kale_like.lowering.expressions import writable
from kale_like.graph.model import all_refs
from kale_like.lowering.graph_edit import Types, generated_step, rewrite_bodies, task_names

RESULT = "result"


def conditions_kfp_states(graph: StepGraph) -> StepGraph:
    """Each branch test KFP cannot state exactly becomes a generated step's bool, tested by the branch."""
    taken = task_names(graph)
    chosen = _oneof_sources(graph)
    types = Types(graph)

    def visit(body: tuple[Node, ...]) -> tuple[Node, ...]:
        nodes: list[Node] = []
        for node in body:
            if isinstance(node, Condition):
                nodes += _stated(types, node, taken, _feeds_oneof(node, chosen))
            else:
                nodes.append(node)
        return tuple(nodes)

    return rewrite_bodies(graph, visit)


def kfp_states(types: Types, test: Test, single: bool = False) -> bool:
    """KFP's condition evaluates `test` as Python does (`single`: as one comparison, for a OneOf)."""
    for atom in _atoms(test):
        for ref in atom.operands:
            if ref.kind in ("collected", "oneof"):
                return False
            if ref.kind == "item" and (ref.output or types.of(ref) not in SCALARS):
                return False
            if ref.kind in ("task", "parameter") and types.of(ref) not in SCALARS:
                return False
        kinds = {types.of(ref) for ref in atom.operands if ref.kind != "constant"}
        if kinds == {"int", "float"}:
            return False
    try:
        normalized = normalize(test, types.of)
    except ConditionError:
        return False
    return is_atom(normalized) or not single


def _stated(types: Types, condition: Condition, taken: set[str], single: bool) -> list[Node]:
    helpers: list[Node] = []
    branches: list[Branch] = []
    for index, branch in enumerate(condition.branches):
        if branch.test is None or kfp_states(types, branch.test, single):
            branches.append(branch)
            continue
        earlier = tuple(b.test for b in condition.branches[:index] if b.test is not None)
        step = _test_step(types, branch.test, earlier, unique_name("test", taken), condition)
        helpers.append(step)
        branches.append(replace(branch, test=Test("==", (Ref("task", step.name, RESULT), Ref("constant", value=True)))))
    return helpers + [replace(condition, branches=tuple(branches))]


def _test_step(types: Types, test: Test, earlier: tuple[Test, ...], name: str, condition: Condition) -> Step:
    """The step computing `test` in Python, when no earlier test of its chain holds."""
    inputs: dict[str, Input] = {}

    def operand(ref: Ref) -> str:
        if ref.kind == "constant" and writable(ref.value):
            return repr(ref.value)
        for known in inputs.values():
            if known.ref == ref:
                return known.name
        named = unique_name(operand_name(ref), set(inputs) | {RESULT, "bool"})
        inputs[named] = Input(named, ref, types.value(ref))
        return named

    guards = [f"not ({python_text(t, operand)})" for t in earlier]
    code = f"{RESULT} = {' and '.join(guards + [python_text(test, operand)])}\n"
    step = generated_step(name, code, tuple(inputs.values()), (Output(RESULT, "bool"),), condition.location)
    return replace(step, from_expression=True)  # the user's own test: it runs where the user's steps would


def _atoms(test: Test) -> list[Test]:
    if test.op in COMPARISONS or test.op == "truth":
        return [test]
    return [atom for inner in test.tests for atom in _atoms(inner)]


def _oneof_sources(graph: StepGraph) -> set[str]:
    """The conditions whose branches a OneOf chooses between (a OneOf's `source`), anywhere in the graph."""
    return {ref.source for ref in all_refs(graph) if ref.kind == "oneof"}


def _feeds_oneof(condition: Condition, chosen: set[str]) -> bool:
    return condition.id in chosen
