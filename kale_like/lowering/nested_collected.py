"""A nested pipeline returns the value of one task, so the driver reads it as Python means it.

Two shapes of a nested pipeline's returned value mean something else on a KFP cluster:

- a list it collected in a loop, when the caller calls it inside a loop and collects its results:
  Python makes a list of lists, but the driver collects breadth first through every loop and nested
  DAG below the one collected and appends each container's value to ONE flat list
  (kubeflow/pipelines 2.14-2.17, `backend/src/v2/driver/resolve.go`, `CollectInputs`);
- a value chosen by an if/else (a OneOf): before KFP 2.17 the state of the chosen branch does not
  reach the calling pipeline and the caller's driver finds no branch that ran
  (kubeflow/pipelines#13322); that is also what `empty_loops.py` makes of a collected list.

The pass ends such a nested pipeline with a generated step that receives the value and returns it:
the pipeline's result is then one task's output, which every supported server reads right.
"""

from __future__ import annotations

from dataclasses import replace

from kale_like.errors import SourceLocation
from kale_like.graph.model import (
    ANY, Input, Loop, Node, Output, PipelineCall, Ref, StepGraph, SubPipeline, unique_name, walk,
)
from kale_like.graph.model import all_bodies
from kale_like.lowering.graph_edit import generated_step, name_part, rewrite_bodies, task_names

HAND_ON = "value = value\n"


def plain_nested_results(graph: StepGraph) -> StepGraph:
    """Nested pipelines whose result the driver would misread return it through a generated step."""
    in_loops = _called_in_loops(graph)
    taken = task_names(graph)
    subpipelines = tuple(_handed_on(sub, graph, taken) if _misread(sub, sub.name in in_loops) else sub
                         for sub in graph.subpipelines)
    return replace(graph, subpipelines=subpipelines)


def _misread(sub: SubPipeline, called_in_loop: bool) -> bool:
    if sub.returns is None:
        return False
    if sub.returns.kind == "oneof":
        return True
    # a collected list of untyped values travels as artifacts; the caller declares its inputs from the
    # pipeline's return type, so that shape is left as it is (see the README's notes on nesting)
    return sub.returns.kind == "collected" and sub.return_type != ANY and (called_in_loop or _may_be_empty(sub))


def _may_be_empty(sub: SubPipeline) -> bool:
    """The loop that collects the returned list runs over a list known only at run time: when it is
    empty the caller's reader finds no task to collect from (resolve.go resolveUpstreamParameters).
    Handed on by a step of the nested pipeline, the list is read there, where empty_loops.py makes
    the loop run once on a filler item and tells the reader it was empty."""
    assert sub.returns is not None
    for loop in (node for node in walk(sub.body) if isinstance(node, Loop)):
        if any(getattr(node, "name", None) == sub.returns.source for node in walk(loop.body)):
            return loop.items.kind != "constant"
    return False


def _called_in_loops(graph: StepGraph) -> set[str]:
    """Names of the nested pipelines called inside a loop (of any pipeline)."""
    loops = [node for body in all_bodies(graph) for node in walk(body) if isinstance(node, Loop)]
    return {node.pipeline for loop in loops for node in walk(loop.body) if isinstance(node, PipelineCall)}


def _handed_on(sub: SubPipeline, graph: StepGraph, taken: set[str]) -> SubPipeline:
    assert sub.returns is not None
    location = next((getattr(n, "location") for n in walk(sub.body)), SourceLocation(graph.source))
    step = generated_step(unique_name(f"{sub.name.replace('-', '_')}_result", taken), HAND_ON,
                          (Input("value", sub.returns, sub.return_type),), (Output("value", sub.return_type),),
                          location, cache=False)
    return replace(sub, body=sub.body + (step,), returns=Ref("task", step.name, "value"))


def collected_arguments_handed_on(graph: StepGraph) -> StepGraph:
    """A collected list passed to a nested pipeline is first read by a generated step of the caller,
    which hands it on: the nested pipeline receives one task's output, and when the loop's list may
    be empty, empty_loops.py guards the loop and tells that step (a nested pipeline's input could not
    be told)."""
    taken = task_names(graph)

    def rewrite(body: tuple[Node, ...]) -> tuple[Node, ...]:
        nodes: list[Node] = []
        for node in body:
            if isinstance(node, PipelineCall) and any(value.ref.kind == "collected" for value in node.inputs):
                inputs = []
                for value in node.inputs:
                    if value.ref.kind != "collected":
                        inputs.append(value)
                        continue
                    step = generated_step(unique_name(f"{name_part(node.name)}_{value.name}", taken), HAND_ON,
                                          (Input("value", value.ref, value.type),),
                                          (Output("value", value.type),), node.location)
                    nodes.append(step)
                    inputs.append(replace(value, ref=Ref("task", step.name, "value")))
                node = replace(node, inputs=tuple(inputs))
            nodes.append(node)
        return tuple(nodes)

    return rewrite_bodies(graph, rewrite)
