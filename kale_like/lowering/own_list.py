"""A loop's body can read the list the loop runs over, as in Python.

When the KFP driver starts one iteration of a loop, it deletes the loop's list from the inputs the
iteration's tasks can read (kubeflow/pipelines 2.14-2.17, `backend/src/v2/driver/resolve.go`,
`resolveInputs`: the iteration driver removes the iterator's items input before setting the item):
`for x in xs: scale(x, xs)` would fail with "parent DAG does not have input parameter".

The pass gives such a loop a list of its own to run over: a generated step hands the list on, the
loop runs over that step's output, and the body keeps reading the original, which the driver leaves
alone. Loops whose items are already made by a generated step (`loop_items.py`) need nothing.
"""

from __future__ import annotations

from dataclasses import replace

from kale_like.graph.model import (
    ANY, Condition, Input, Loop, Node, Output, PipelineCall, Ref, Step, StepGraph, Test, unique_name, walk,
)
from kale_like.lowering.graph_edit import Types, generated_step, name_part, rewrite_loops, task_names

HAND_ON = "items = items if isinstance(items, list) else []\n"  # not a list only in a filler iteration


def loops_keep_their_list(graph: StepGraph) -> StepGraph:
    """Every loop whose body reads the loop's own list runs over a copy of it."""
    taken = task_names(graph)
    types = Types(graph)

    def rewrite(loop: Loop) -> list[Node] | None:
        if loop.items.kind not in ("parameter", "task", "item") or not _reads(loop.body, loop.items):
            return None
        kind = types.of(loop.items)
        kind = kind if kind != ANY else "list"
        base = name_part(loop.id)
        copy = generated_step(unique_name(f"{base}_items", taken), HAND_ON, (Input("items", loop.items, kind),),
                              (Output("items", kind),), loop.location)
        return [copy, replace(loop, items=Ref("task", copy.name, "items"))]

    return rewrite_loops(graph, rewrite)


def _reads(body: tuple[Node, ...], items: Ref) -> bool:
    """Whether a task or a condition in `body` reads `items`."""
    for node in walk(body):
        if isinstance(node, (Step, PipelineCall)) and any(value.ref == items for value in node.inputs):
            return True
        if isinstance(node, Loop) and node.items == items:
            return True
        if isinstance(node, Condition) and any(b.test is not None and items in _operands(b.test)
                                               for b in node.branches):
            return True
    return False


def _operands(test: Test) -> list[Ref]:
    return list(test.operands) + [ref for inner in test.tests for ref in _operands(inner)]
