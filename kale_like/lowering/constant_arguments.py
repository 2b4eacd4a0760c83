"""A constant KFP cannot carry as a constant reaches the step as Python passes it.

A constant argument of a task is written into the IR as a `google.protobuf.Value` (kfp's
`pipeline_spec_builder.to_protobuf_value`): a str, a bool, a number (a double), a list or a dict with
str keys of those. Anything else is refused by kfp's compiler (`show(None)`, `show((1, 2))`,
`show([1, None])`: "Constant argument inputs must be one of type ...") or would arrive changed: an int
beyond 2**53 as the nearest double, `float("nan")` as what the spec's JSON makes of it
(kubeflow/pipelines 2.14-2.17, `backend/src/v2/driver/resolve.go` reads the constant from the task
spec's `runtimeValue.constant`, a `structpb.Value`).

The pass makes such a constant the output of a generated step whose code holds the value exactly; that
output is untyped, so it travels as a pickled artifact, and the step the user called receives exactly
the value Python would have passed.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import replace

from kale_like.graph.model import ANY, Input, Node, Output, Ref, Step, StepGraph, unique_name
from kale_like.lowering.expressions import writable
from kale_like.lowering.graph_edit import generated_step, name_part, rewrite_bodies, task_names

LARGEST_EXACT_INT = 2**53  # a double holds every int up to this, and not all beyond it


def constants_made_by_steps(graph: StepGraph) -> StepGraph:
    """Every constant argument of a step that KFP cannot pass unchanged is made by a generated step."""
    taken = task_names(graph)

    def rewrite(body: tuple[Node, ...]) -> tuple[Node, ...]:
        nodes: list[Node] = []
        for node in body:
            if isinstance(node, Step) and any(_needs_a_step(value) for value in node.inputs):
                inputs = []
                for value in node.inputs:
                    if not _needs_a_step(value):
                        inputs.append(value)
                        continue
                    made = generated_step(unique_name(f"{name_part(node.name)}_{value.name}", taken),
                                          value_code(value.ref.value), (), (Output("value", ANY),), node.location)
                    nodes.append(made)
                    inputs.append(Input(value.name, Ref("task", made.name, "value"), ANY))
                node = replace(node, inputs=tuple(inputs))
            nodes.append(node)
        return tuple(nodes)

    return rewrite_bodies(graph, rewrite)


def _needs_a_step(value: Input) -> bool:
    return value.ref.kind == "constant" and not kfp_constant(value.ref.value)


def kfp_constant(value: object) -> bool:
    """Whether KFP carries `value` as a constant argument and hands the step the same value."""
    if isinstance(value, (bool, str)):
        return True
    if isinstance(value, int):
        return abs(value) <= LARGEST_EXACT_INT
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(kfp_constant(element) for element in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and kfp_constant(element) for key, element in value.items())
    return False


def value_code(value: object) -> str:
    """Python binding `value` to exactly `value` (its repr where that is Python source for it)."""
    if writable(value):
        return f"value = {value!r}\n"
    return f"value = __import__('pickle').loads({pickle.dumps(value, protocol=4)!r})\n"
