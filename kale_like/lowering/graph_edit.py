"""Small tools the lowering passes share: rewriting every body of a graph, naming new steps."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from kale_like.errors import SourceLocation
from kale_like.graph.model import (
    ANY, CodeBlock, Condition, Expression, Input, Loop, Node, Output, PipelineCall, Ref, Step, StepGraph,
    StepSettings, TakenNames, Test, all_bodies, walk,
)
from kale_like.graph.types import PARAMETER_TYPES, TypeName, list_of, type_name

BodyRewrite = Callable[[tuple[Node, ...]], tuple[Node, ...]]


def rewrite_body(body: tuple[Node, ...], rewrite: BodyRewrite) -> tuple[Node, ...]:
    """`body` with `rewrite` applied to it and to every body inside it, innermost first."""
    nodes: list[Node] = []
    for node in body:
        if isinstance(node, Loop):
            node = replace(node, body=rewrite_body(node.body, rewrite))
        elif isinstance(node, Condition):
            node = replace(node, branches=tuple(replace(b, body=rewrite_body(b.body, rewrite))
                                                for b in node.branches))
        nodes.append(node)
    return rewrite(tuple(nodes))


def rewrite_bodies(graph: StepGraph, rewrite: BodyRewrite) -> StepGraph:
    """The graph with `rewrite` applied to every body: loop and branch bodies, the main body, each
    nested pipeline's body."""
    subpipelines = tuple(replace(sub, body=rewrite_body(sub.body, rewrite)) for sub in graph.subpipelines)
    return replace(graph, body=rewrite_body(graph.body, rewrite), subpipelines=subpipelines)


def rewrite_loops(graph: StepGraph, rewrite: Callable[[Loop], list[Node] | None]) -> StepGraph:
    """The graph with each loop (innermost first) replaced by what `rewrite` returns for it (the
    loop is kept where it returns None)."""

    def visit(body: tuple[Node, ...]) -> tuple[Node, ...]:
        nodes: list[Node] = []
        for node in body:
            replaced = rewrite(node) if isinstance(node, Loop) else None
            nodes.extend([node] if replaced is None else replaced)
        return tuple(nodes)

    return rewrite_bodies(graph, visit)


def task_names(graph: StepGraph) -> TakenNames:
    """Every step and nested-pipeline call name in the graph (a new step must not take one)."""
    bodies = [graph.body] + [sub.body for sub in graph.subpipelines]
    names = TakenNames(node.name for body in bodies for node in walk(body) if isinstance(node, (Step, PipelineCall)))
    if graph.exit_step is not None:
        names.add(graph.exit_step.name)
    return names


def name_part(text: str) -> str:
    """`text` as part of a step name: letters and digits kept, anything else `_` (`for-2` -> `for_2`)."""
    return "".join(c if c.isalnum() else "_" for c in text)


def generated_step(name: str, code: str, inputs: tuple[Input, ...], outputs: tuple[Output, ...],
                   location: SourceLocation, cache: bool | None = None) -> Step:
    """A step kale_like writes itself: plain Python over its inputs, no packages.

    `location` is the user's code it stands for, so errors point there; `cache` False keeps KFP from
    reusing an earlier run's result (None: the pipeline's default). Such a step must give a sensible
    result for any value of its inputs' types, and for a loop's filler item (see empty_loops.py): it
    runs in a loop's filler iteration while the user's steps stand still."""
    return Step(name=name, code=(CodeBlock(code, location),), location=location, inputs=inputs, outputs=outputs,
                settings=StepSettings(cache=cache), generated=True)


def map_refs(graph: StepGraph, change: Callable[[Ref], Ref]) -> StepGraph:
    """The graph with every value it reads (`all_refs`: task inputs, loop lists, tests' operands,
    returned values) replaced by `change(ref)`."""

    def inputs(values: tuple[Input, ...]) -> tuple[Input, ...]:
        return tuple(replace(value, ref=change(value.ref)) for value in values)

    def test(tested: Test) -> Test:
        return replace(tested, operands=tuple(change(ref) for ref in tested.operands),
                       tests=tuple(test(inner) for inner in tested.tests))

    def node(item: Node) -> Node:
        if isinstance(item, (Step, PipelineCall, Expression)):
            return replace(item, inputs=inputs(item.inputs))
        if isinstance(item, Loop):
            return replace(item, items=change(item.items))
        if isinstance(item, Condition):
            return replace(item, branches=tuple(replace(b, test=None if b.test is None else test(b.test))
                                                for b in item.branches))
        return item

    def returned(ref: Ref | None) -> Ref | None:
        return None if ref is None else change(ref)

    changed = rewrite_bodies(graph, lambda body: tuple(node(item) for item in body))
    subpipelines = tuple(replace(sub, returns=returned(sub.returns)) for sub in changed.subpipelines)
    exit_step = None if graph.exit_step is None else replace(graph.exit_step, inputs=inputs(graph.exit_step.inputs))
    return replace(changed, subpipelines=subpipelines, returns=returned(changed.returns), exit_step=exit_step)


class Types:
    """The declared types of a graph's values, indexed once: a pass asking for many types walks the
    graph once, not once a question (that made lowering quadratic in the size of the graph)."""

    def __init__(self, graph: StepGraph) -> None:
        self.parameters: dict[str, TypeName] = {}
        for parameter in list(graph.parameters) + [p for sub in graph.subpipelines for p in sub.parameters]:
            self.parameters.setdefault(parameter.name, parameter.type)
        self.loops: dict[str, Loop] = {}
        self.outputs: dict[str, dict[str, TypeName]] = {}  # task -> its outputs' types
        for body in all_bodies(graph):
            for node in walk(body):
                if isinstance(node, Loop):
                    self.loops.setdefault(node.id, node)
                elif isinstance(node, (Step, PipelineCall)):
                    self.outputs.setdefault(node.name, {o.name: o.type for o in node.outputs})

    def of(self, ref: Ref) -> TypeName:
        """The declared type of the value `ref` names (ANY where the graph does not say)."""
        if ref.kind == "parameter":
            return self.parameters.get(ref.source, ANY)
        if ref.kind == "item" and ref.source in self.loops:
            loop = self.loops[ref.source]
            return loop.item_type if not ref.output else next((f.type for f in loop.fields if f.name == ref.output), ANY)
        if ref.kind == "task":
            return self.outputs.get(ref.source, {}).get(ref.output, ANY)
        return ANY

    def value(self, ref: Ref) -> TypeName:
        """The type of the value `ref` names, for a step that receives it (`of`, and a constant's own
        type, a collected list's, a OneOf's when its options agree)."""
        if ref.kind == "constant":
            named = type(ref.value).__name__
            return type_name(named) if named in PARAMETER_TYPES else ANY
        if ref.kind == "collected":
            return list_of(self.of(replace(ref, kind="task")))
        if ref.kind == "oneof":
            kinds = {self.value(option) for option in ref.options}
            return kinds.pop() if len(kinds) == 1 else ANY
        return self.of(ref)
