"""Small tools the lowering passes share: rewriting every body of a graph, naming new steps."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from kale_like.graph.model import CodeBlock, Condition, Input, Loop, Node, Output, PipelineCall, Step, StepGraph, walk
from kale_like.errors import SourceLocation

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


def task_names(graph: StepGraph) -> set[str]:
    """Every step and nested-pipeline call name in the graph (a new step must not take one)."""
    bodies = [graph.body] + [sub.body for sub in graph.subpipelines]
    names = {node.name for body in bodies for node in walk(body) if isinstance(node, (Step, PipelineCall))}
    if graph.exit_step is not None:
        names.add(graph.exit_step.name)
    return names


def unique_name(base: str, taken: set[str]) -> str:
    """`base`, or `base_2`, `base_3`, ... whichever is free; the name is then taken."""
    candidate, number = base, 2
    while candidate in taken:
        candidate, number = f"{base}_{number}", number + 1
    taken.add(candidate)
    return candidate


def generated_step(name: str, code: str, inputs: tuple[Input, ...], outputs: tuple[Output, ...],
                   location: SourceLocation) -> Step:
    """A step kale_like writes itself: plain Python over its inputs, no packages, cached like any step.

    `location` is the user's code it stands for, so errors and the panel point there."""
    return Step(name=name, code=(CodeBlock(code, location),), location=location, inputs=inputs, outputs=outputs)
