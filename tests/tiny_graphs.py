"""Tiny step graphs built by hand, for unit tests of the lowering passes (kale_like/lowering/).

A test writes the few nodes a pass cares about and nothing else: `graph(loop("for-1", param("xs"),
step("score", reads("x", item("for-1"), "int"), makes=("result",))), step("total", ...))`. Names
follow the graph model (kale_like/graph/model.py); every node sits at `HERE` unless told otherwise.
`run_code` executes a step's code with plain Python, its inputs bound, and returns its outputs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from kale_like.errors import SourceLocation
from kale_like.graph.model import (
    ANY, Branch, CodeBlock, Condition, Input, Loop, Node, Output, Parameter, PipelineCall, PipelineSettings, Ref,
    Step, StepGraph, StepSettings, SubPipeline, Test,
)

HERE = SourceLocation("tiny.py", line=1)


def task(source: str, output: str = "result") -> Ref:
    return Ref("task", source, output)


def param(name: str) -> Ref:
    return Ref("parameter", name)


def item(loop_id: str, field: str = "") -> Ref:
    return Ref("item", loop_id, field)


def const(value: Any) -> Ref:
    return Ref("constant", value=value)


def collected(source: str, output: str = "result") -> Ref:
    return Ref("collected", source, output)


def oneof(*options: Ref) -> Ref:
    return Ref("oneof", options=options)


def reads(name: str, ref: Ref, type: str = ANY) -> Input:  # noqa: A002 - the field's name
    return Input(name, ref, type)


def step(name: str, *inputs: Input, makes: tuple[str | Output, ...] = (), after: tuple[str, ...] = (),
         code: str = "pass\n", generated: bool = False, location: SourceLocation = HERE) -> Step:
    """A step reading `inputs` and handing on `makes` (names, or Outputs for typed ones)."""
    outputs = tuple(o if isinstance(o, Output) else Output(o) for o in makes)
    return Step(name=name, code=(CodeBlock(code, location),), location=location, inputs=inputs, outputs=outputs,
                after=after, generated=generated)


def loop(loop_id: str, items: Ref, *body: Node, item_type: str = ANY, location: SourceLocation = HERE) -> Loop:
    return Loop(id=loop_id, items=items, item_type=item_type, body=body, location=location)


def branch(test: Test | None, *body: Node) -> Branch:
    return Branch(test, body)


def condition(condition_id: str, *branches: Branch, location: SourceLocation = HERE) -> Condition:
    return Condition(id=condition_id, branches=branches, location=location)


def truth(ref: Ref) -> Test:
    return Test("truth", (ref,))


def call(name: str, pipeline: str, *inputs: Input, makes: tuple[str | Output, ...] = (),
         location: SourceLocation = HERE) -> PipelineCall:
    outputs = tuple(o if isinstance(o, Output) else Output(o) for o in makes)
    return PipelineCall(name=name, pipeline=pipeline, inputs=inputs, location=location, outputs=outputs)


def sub(name: str, *body: Node, parameters: tuple[Parameter, ...] = (), returns: Ref | None = None,
        return_type: str = ANY) -> SubPipeline:
    return SubPipeline(name=name, parameters=parameters, body=body, returns=returns, return_type=return_type)


def graph(*body: Node, parameters: tuple[Parameter, ...] = (), subpipelines: tuple[SubPipeline, ...] = (),
          returns: Ref | None = None, exit_step: Step | None = None) -> StepGraph:
    return StepGraph(source="tiny.py", settings=PipelineSettings(name="tiny"), body=body, parameters=parameters,
                     subpipelines=subpipelines, returns=returns, exit_step=exit_step)


def generated(name: str, *inputs: Input, makes: tuple[Output, ...] = (), after: tuple[str, ...] = (),
              cache: bool | None = None, location: SourceLocation = HERE) -> Step:
    """What a pass's generated step must look like, but for its code (which a test runs instead of
    reading): compare with `without_code(actual)`."""
    return Step(name=name, code=(), location=location, inputs=inputs, outputs=makes, after=after,
                settings=StepSettings(cache=cache), generated=True)


def without_code(node: Step) -> Step:
    return replace(node, code=())


def run_code(node: Step, **values: Any) -> dict[str, Any]:
    """Run the step's code as plain Python with `values` bound to its inputs; its outputs by name."""
    assert set(values) == {value.name for value in node.inputs}, "bind exactly the step's inputs"
    namespace = dict(values)
    for block in node.prelude + node.code:
        exec(compile(block.code, f"<{node.name}>", "exec"), namespace)  # noqa: S102 - the step's own code
    return {output.name: namespace[output.name] for output in node.outputs}
