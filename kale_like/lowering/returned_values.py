"""A pipeline returning one of its parameters, or a constant, returns it through a task.

A KFP pipeline's output is always some task's output: the IR's `dagOutputs` name a producer task
and its output (kfp's compiler looks for the task that made a returned value, and fails on a
parameter, which no task made), and the driver resolves a nested pipeline's output by that task
(kubeflow/pipelines 2.14-2.17, `backend/src/v2/driver/resolve.go`, `resolveUpstreamParameters`).
Python's `return threshold` or `return 3` has no such task, so the pass ends the pipeline (the main
one or a nested one) with a generated step that receives the parameter (or holds the constant) and
returns it.
"""

from __future__ import annotations

from dataclasses import replace

from kale_like.errors import SourceLocation
from kale_like.graph.model import ANY, Input, Node, Output, Ref, StepGraph, TakenNames, unique_name, walk
from kale_like.graph.types import TypeName
from kale_like.lowering.constant_arguments import kfp_constant, value_code
from kale_like.lowering.graph_edit import generated_step, name_part, task_names

HAND_ON = "value = value\n"


def returned_values_from_tasks(graph: StepGraph) -> StepGraph:
    """Every pipeline returning a parameter or a constant returns it through a generated step."""
    taken = task_names(graph)
    subpipelines = []
    for sub in graph.subpipelines:
        body, returns = _handed_on(sub.name, sub.body, sub.returns, sub.return_type, taken, graph.source)
        subpipelines.append(replace(sub, body=body, returns=returns))
    body, returns = _handed_on(graph.settings.name, graph.body, graph.returns, graph.return_type, taken, graph.source)
    return replace(graph, body=body, returns=returns, subpipelines=tuple(subpipelines))


def _handed_on(name: str, body: tuple[Node, ...], returns: Ref | None, return_type: TypeName, taken: TakenNames,
               source: str) -> tuple[tuple[Node, ...], Ref | None]:
    if returns is None or returns.kind not in ("parameter", "constant"):
        return body, returns
    location = next((getattr(node, "location") for node in reversed(list(walk(body)))), SourceLocation(source))
    step_name = unique_name(f"{name_part(name)}_result", taken)
    if returns.kind == "parameter":
        step = generated_step(step_name, HAND_ON, (Input("value", returns, return_type),),
                              (Output("value", return_type),), location)
    else:
        kind = return_type if kfp_constant(returns.value) else ANY
        step = generated_step(step_name, value_code(returns.value), (), (Output("value", kind),), location)
    return body + (step,), Ref("task", step.name, "value")
