"""Loop items of unknown type keep their Python values on a cluster.

kfp declares the item of a loop over a list without an element type (a `-> list` result, a `list`
parameter with no typed default, a dict's `.values()`) as STRING in the loop's DAG. The KFP driver
then converts each item to text when it starts an iteration (kubeflow/pipelines 2.14-2.17,
`backend/src/v2/driver/resolve.go`, `resolveInputs` -> `handleParamTypeValidationAndConversion`,
`metadata.PbValueToText`): `1` arrives as `"1"`, `True` as `"true"`; and a step declaring `x: int`
fails, because a string never matches a NUMBER_INTEGER input. Python passes the item as it is.

The pass puts a generated step before such a loop that turns each item into its JSON text, loops over
those texts (strings stay strings through the driver), and declares the inputs that read the item as
`json` (`json:int`, ... with the step's declared type): the step runtime decodes them, so the step
sees exactly the value Python would (`1`, `True`, `"1"`, `{"a": [1]}`). Loops over typed lists
(`List[int]`, a literal list) are left alone: kfp declares their items with the element type and the
driver keeps them.
"""

from __future__ import annotations

from dataclasses import replace

from kale_like.graph.model import ANY, Input, JSON, Loop, Node, Output, Ref, Step, StepGraph, unique_name
from kale_like.lowering.graph_edit import (
    generated_step, name_part, rewrite_body, rewrite_loops, task_names,
)

# (not a list only in a loop's filler iteration, lowering/empty_loops.py: then nothing to loop over)
ENCODE = "import json\nitems = [json.dumps(item) for item in (items if isinstance(items, list) else [])]\n"


def encode_untyped_loop_items(graph: StepGraph) -> StepGraph:
    """Every loop over items of unknown type runs over their JSON texts instead."""
    taken = task_names(graph)

    def rewrite(loop: Loop) -> list[Node] | None:
        if not _untyped(loop):
            return None
        encoder = generated_step(unique_name(f"{_base(loop.items)}_items", taken), ENCODE,
                                 (Input("items", loop.items, "list"),), (Output("items", "list:str"),), loop.location)
        return [encoder, _reading_json(replace(loop, items=Ref("task", encoder.name, "items"), item_type=JSON))]

    return rewrite_loops(graph, rewrite)


def _untyped(loop: Loop) -> bool:
    return loop.item_type == ANY and loop.items.kind in ("parameter", "task", "item")


def _base(items: Ref) -> str:
    text = "_".join(part for part in (items.source, items.output) if part)
    return name_part(text.lower()).strip("_") or "loop"


def _reading_json(loop: Loop) -> Loop:
    """The loop with each step input that reads its item (the whole item) declared `json`."""
    item = Ref("item", loop.id)

    def retype(body: tuple[Node, ...]) -> tuple[Node, ...]:
        return tuple(_retyped(node, item) for node in body)

    return replace(loop, body=rewrite_body(loop.body, retype))


def _retyped(node: Node, item: Ref) -> Node:
    if not isinstance(node, Step) or not any(value.ref == item for value in node.inputs):
        return node
    return replace(node, inputs=tuple(replace(v, type=_json(v.type)) if v.ref == item else v for v in node.inputs))


def _json(declared: str) -> str:
    """`json:int`: decoded, then given the step's declared type as any parameter is (1 -> 1.0 for a float)."""
    return JSON if declared in (ANY, JSON) else f"{JSON}:{declared}"

