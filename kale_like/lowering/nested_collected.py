"""A list a nested pipeline returns stays one value when a loop collects it.

In Python, `results.append(sub(x))` in a loop, where `sub` returns a list it collected in a loop of
its own, makes a list of lists. The KFP driver collects outputs breadth first through every loop and
nested DAG below the one collected and appends each container's value to ONE flat list
(kubeflow/pipelines 2.14-2.17, `backend/src/v2/driver/resolve.go`, `CollectInputs`): the caller would
get the inner items, flattened.

The pass ends such a nested pipeline with a generated step that receives the collected list and
returns it as one value (a list parameter, or one artifact holding the list of untyped values): the
driver then collects one value per call, as Python does. Pipelines never called inside a loop are
left alone (there, the driver's collected list is already the value returned).
"""

from __future__ import annotations

from dataclasses import replace

from kale_like.errors import SourceLocation
from kale_like.graph.model import Input, Loop, Output, PipelineCall, Ref, StepGraph, SubPipeline, walk
from kale_like.lowering.graph_edit import generated_step, task_names, unique_name

GATHER = "values = list(values)\n"


def keep_nested_collected(graph: StepGraph) -> StepGraph:
    """Nested pipelines that return a collected list and are called in a loop return it whole."""
    if not _calls_in_loops(graph):
        return graph
    taken = task_names(graph)
    subpipelines = tuple(_gathered(sub, graph, taken) if _returns_collected_parameters(sub) else sub
                         for sub in graph.subpipelines)
    return replace(graph, subpipelines=subpipelines)


def _returns_collected_parameters(sub: SubPipeline) -> bool:
    """A collected list of typed values (parameters). Untyped values travel as artifacts, and a
    nested pipeline's artifact output is not rewritten here: see the README's list of gaps."""
    return sub.returns is not None and sub.returns.kind == "collected" and sub.return_type.startswith("list")


def _calls_in_loops(graph: StepGraph) -> bool:
    bodies = [graph.body] + [sub.body for sub in graph.subpipelines]
    loops = [node for body in bodies for node in walk(body) if isinstance(node, Loop)]
    return any(isinstance(node, PipelineCall) for loop in loops for node in walk(loop.body))


def _gathered(sub: SubPipeline, graph: StepGraph, taken: set[str]) -> SubPipeline:
    assert sub.returns is not None
    location = next((n.location for n in walk(sub.body) if isinstance(n, Loop)), SourceLocation(graph.source))
    step = generated_step(unique_name(f"{sub.name.replace('-', '_')}_result", taken), GATHER,
                          (Input("values", sub.returns, sub.return_type),), (Output("values", sub.return_type),),
                          location)
    return replace(sub, body=sub.body + (step,), returns=Ref("task", step.name, "values"))
