"""The exit handler reads SUCCEEDED after a run whose steps all came from the cache.

The KFP driver gives the exit step the state ML Metadata holds for the group the exit handler
watches (kubeflow/pipelines 2.14-2.17, `backend/src/v2/driver/resolve.go`, the `TaskFinalStatus`
case of `resolveInputParameter`). That state is set only by the launcher of a step that ran, when it
finishes (`backend/src/v2/metadata/client.go`, `UpdateDAGExecutionsState`); a cache hit never starts
a launcher (`driver/container.go`). So when every step of the group is a cache hit -- a plain re-run
-- the group stays RUNNING and `pipeline_status["state"] != "SUCCEEDED"` alerts on a run that
succeeded.

The pass ends the group with a generated step that is never cached and runs after every task at the
group's top level: its launcher then counts the group's tasks and marks it COMPLETE (or FAILED).
A loop or nested pipeline at the top level is a group of its own whose state only its own steps set
(and, before KFP 2.17, never reaches the group around it: kubeflow/pipelines#13322); a task outside a
loop cannot wait for the tasks inside it in KFP, so such a group can still read RUNNING after a cached
re-run (the README says so).
"""

from __future__ import annotations

from dataclasses import replace

from kale_like.graph.model import PipelineCall, Step, StepGraph, unique_name
from kale_like.lowering.graph_edit import generated_step, task_names

DONE = "pass\n"


def mark_the_end(graph: StepGraph) -> StepGraph:
    """With an exit handler: one more uncached step after every top-level task of the main body."""
    tasks = [node for node in graph.body if isinstance(node, (Step, PipelineCall))]
    if graph.exit_step is None or not tasks:
        return graph
    read = {p for node in tasks for p in node.upstream}
    sinks = tuple(node.name for node in tasks if node.name not in read)
    step = generated_step(unique_name("all_done", task_names(graph)), DONE, (), (), graph.exit_step.location,
                          cache=False)
    return replace(graph, body=graph.body + (replace(step, after=sinks),))
