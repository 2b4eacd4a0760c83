"""Loop items of unknown type keep their Python values on a cluster.

kfp declares the item of a loop over a list without an element type (a `-> list` result, a `list`
parameter with no typed default, a dict's `.values()`) as STRING in the loop's DAG. The KFP driver
then converts each item to text when it starts an iteration (kubeflow/pipelines 2.14-2.17,
`backend/src/v2/driver/resolve.go`, `resolveInputs` -> `handleParamTypeValidationAndConversion`,
`metadata.PbValueToText`): `1` arrives as `"1"`, `True` as `"true"`; and a step declaring `x: int`
fails, because a string never matches a NUMBER_INTEGER input. Python passes the item as it is.

The same holds for each field of a loop over records (`for i, x in enumerate(xs)`, `for k, v in
d.items()`): the driver selects a field of a struct item and hands it over as text.

The pass puts a generated step before such a loop that turns each item (each field of a record) into
its JSON text, loops over those texts (strings stay strings through the driver), and declares the
inputs that read the item as `json` (`json:int`, ... with the step's declared type): the step runtime
decodes them, so the step sees exactly the value Python would (`1`, `True`, `"1"`, `{"a": [1]}`).
Where the list is made by an expression of the user's read by nothing else (`enumerate(xs)`), the
encoding is added to that expression's step instead of a step of its own. Loops over typed lists
(`List[int]`, a literal list) are left alone: kfp declares their items with the element type and the
driver keeps them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from kale_like.graph.model import ANY, Input, Loop, Node, Output, Ref, Step, StepGraph, unique_name
from kale_like.graph.types import JSON, json_of
from kale_like.graph.model import all_refs
from kale_like.lowering.graph_edit import (
    generated_step, map_refs, name_part, rewrite_bodies, rewrite_body, rewrite_loops, task_names,
)

# (not a list only in a loop's filler iteration, lowering/empty_loops.py: then nothing to loop over)
ENCODE = "import json\nitems = [json.dumps(item) for item in (items if isinstance(items, list) else [])]\n"
ENCODE_FIELDS = ("import json\nitems = [{name: json.dumps(value) for name, value in item.items()}\n"
                 "         for item in (items if isinstance(items, list) else [])]\n")


def encode_untyped_loop_items(graph: StepGraph) -> StepGraph:
    """Every loop over items (or record fields) of unknown type runs over their JSON texts instead."""
    before = task_names(graph)
    taken = set(before)

    def rewrite(loop: Loop) -> list[Node] | None:
        if _untyped(loop):
            encoder = generated_step(unique_name(f"{_base(loop.items)}_items", taken), ENCODE,
                                     (Input("items", loop.items, "list"),), (Output("items", "list:str"),),
                                     loop.location)
            encoded = replace(loop, items=Ref("task", encoder.name, "items"), item_type=JSON)
            return [encoder, _reading_json(encoded, {"": JSON})]
        if _untyped_fields(loop):
            encoder = generated_step(unique_name(f"{_base(loop.items)}_items", taken), ENCODE_FIELDS,
                                     (Input("items", loop.items, "list"),), (Output("items", "list"),), loop.location)
            fields = tuple(replace(f, type=JSON) if f.type == ANY else f for f in loop.fields)
            encoded = replace(loop, items=Ref("task", encoder.name, "items"), fields=fields)
            return [encoder, _reading_json(encoded, {f.name: JSON for f in loop.fields})]
        return None

    return _fused(rewrite_loops(graph, rewrite), before)


def _untyped(loop: Loop) -> bool:
    return loop.item_type == ANY and loop.items.kind in ("parameter", "task", "item")


def _untyped_fields(loop: Loop) -> bool:
    """A loop over records some of whose fields are of unknown type (then every field is encoded)."""
    return loop.items.kind in ("parameter", "task", "item") and any(f.type == ANY for f in loop.fields)


def _fused(graph: StepGraph, before: set[str]) -> StepGraph:
    """Each encoder this pass added right after the step of the user's expression that lists its items,
    where nothing else reads that list, folded into that step (one task, not two)."""
    readers = Counter(ref for ref in all_refs(graph))

    def joins(producer: Node | None, encoder: Node) -> bool:
        if not (isinstance(encoder, Step) and encoder.generated and encoder.name not in before
                and isinstance(producer, Step) and producer.from_expression):
            return False
        (source,) = encoder.inputs
        return (source.ref == Ref("task", producer.name, "items") and readers[source.ref] == 1
                and [o.name for o in producer.outputs] == ["items"])

    def fuse(body: tuple[Node, ...]) -> tuple[Node, ...]:
        nodes: list[Node] = []
        for node in body:
            producer = nodes[-1] if nodes else None
            if joins(producer, node):
                assert isinstance(producer, Step) and isinstance(node, Step)  # (joins checked it)
                code = replace(producer.code[-1], code=producer.code[-1].code + node.code[-1].code)
                nodes[-1] = replace(producer, code=producer.code[:-1] + (code,), outputs=node.outputs)
                renamed[Ref("task", node.name, "items")] = Ref("task", producer.name, "items")
            else:
                nodes.append(node)
        return tuple(nodes)

    renamed: dict[Ref, Ref] = {}  # the encoder's list -> the producer's, which now encodes it
    fused = rewrite_bodies(graph, fuse)
    return map_refs(fused, lambda ref: renamed.get(ref, ref) if ref.kind == "task" else ref)


def _base(items: Ref) -> str:
    text = "_".join(part for part in (items.source, items.output) if part)
    return name_part(text.lower()).strip("_") or "loop"


def _reading_json(loop: Loop, fields: dict[str, str]) -> Loop:
    """The loop with each step input that reads its item (`fields`: "" for the whole item, or the
    fields encoded) declared `json`."""
    read = {Ref("item", loop.id, name) for name in fields}

    def retype(body: tuple[Node, ...]) -> tuple[Node, ...]:
        return tuple(_retyped(node, read) for node in body)

    return replace(loop, body=rewrite_body(loop.body, retype))


def _retyped(node: Node, read: set[Ref]) -> Node:
    def reads(value: Input) -> bool:
        return value.ref.kind == "item" and value.ref in read  # (a constant's Ref may hold a list: unhashable)

    if not isinstance(node, Step) or not any(reads(value) for value in node.inputs):
        return node
    # `json:int`: decoded, then given the step's declared type as any parameter is (1 -> 1.0 for a float)
    return replace(node, inputs=tuple(replace(v, type=json_of(v.type)) if reads(v) else v for v in node.inputs))

