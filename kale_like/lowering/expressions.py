"""Expressions of a pipeline body become small generated steps.

A frontend keeps the plain Python a body computes between the user's steps as `Expression` nodes
(`path = f"s3://{bucket}"`, a loop's items listed from `enumerate(xs)`, a branch test's bool): what
the code means, over named values. A KFP pipeline computes nothing outside a task, so each becomes a
task of its own: a generated step running that code. Constants whose `repr` is Python source for
the same value are written into the step's code (a task input would make each one a pipeline-level
constant of the IR); any other value is an input of the step.
"""

from __future__ import annotations

import ast
from dataclasses import replace

from kale_like.graph.model import Expression, Node, Step, StepGraph
from kale_like.lowering.graph_edit import generated_step, rewrite_bodies


def expressions_as_steps(graph: StepGraph) -> StepGraph:
    """The graph with every expression replaced, where it stands, by the generated step that computes it."""

    def visit(body: tuple[Node, ...]) -> tuple[Node, ...]:
        return tuple(as_step(node) if isinstance(node, Expression) else node for node in body)

    return rewrite_bodies(graph, visit)


def as_step(expression: Expression) -> Step:
    """The generated step computing `expression`, under the expression's name."""
    written = [value for value in expression.inputs
               if value.ref.kind == "constant" and writable(value.ref.value)]
    lines = "".join(f"{value.name} = {value.ref.value!r}\n" for value in written)
    inputs = tuple(value for value in expression.inputs if value not in written)
    made = generated_step(expression.name, lines + expression.code, inputs, expression.outputs, expression.location)
    return replace(made, from_expression=True)


def writable(value: object) -> bool:
    """`repr(value)` is Python source for the same value."""
    try:
        return bool(ast.literal_eval(repr(value)) == value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
