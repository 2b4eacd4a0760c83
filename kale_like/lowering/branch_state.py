"""A value chosen by an if/else is still found when the branch's steps come from the cache.

`x = a()` in the `if` and `x = b()` in the `else`, `x` used after: KFP reads `x` through a `OneOf`,
whose driver takes the first branch whose group ML Metadata marks COMPLETE or CACHED
(kubeflow/pipelines 2.14-2.17, `backend/src/v2/driver/resolve.go`, `GetProducerTask`). Only the
launcher of a step that ran marks its group (`backend/src/v2/metadata/client.go`,
`UpdateDAGExecutionsState`); a cache hit starts none (`driver/container.go`). So on a re-run whose
branch steps all come from the cache, the reader fails with "processing OneOf: No successful task
found" -- on every release.

The pass ends each branch whose value is read after the if with a generated step that is never
cached and runs after the branch's last steps: its launcher marks the branch complete.
"""

from __future__ import annotations

from dataclasses import replace

from kale_like.graph.model import Branch, Condition, Node, PipelineCall, Step, StepGraph, unique_name
from kale_like.graph.model import all_refs
from kale_like.lowering.graph_edit import (
    generated_step, name_part, rewrite_bodies, task_names,
)

DONE = "pass\n"


def mark_chosen_branches(graph: StepGraph) -> StepGraph:
    """Branches whose tasks a OneOf reads end with an uncached generated step."""
    chosen = _chosen(graph)
    if not chosen:
        return graph
    taken = task_names(graph)

    def rewrite(body: tuple[Node, ...]) -> tuple[Node, ...]:
        return tuple(_marked(node, chosen, taken) if isinstance(node, Condition) else node for node in body)

    return rewrite_bodies(graph, rewrite)


def _chosen(graph: StepGraph) -> set[str]:
    """Names of the tasks a OneOf reads (wherever it is read: the run's own output reads it too)."""
    return {option.source for ref in all_refs(graph) if ref.kind == "oneof" for option in ref.options}


def _marked(condition: Condition, chosen: set[str], taken: set[str]) -> Condition:
    branches = []
    for index, branch in enumerate(condition.branches):
        tasks = [node for node in branch.body if isinstance(node, (Step, PipelineCall))]
        if not any(node.name in chosen for node in tasks):
            branches.append(branch)
            continue
        read = {p for node in tasks for p in node.upstream}
        sinks = tuple(node.name for node in tasks if node.name not in read)
        base = name_part(condition.id)
        done = generated_step(unique_name(f"{base}_branch_{index + 1}_done", taken), DONE, (), (),
                              condition.location, cache=False)
        branches.append(Branch(branch.test, branch.body + (replace(done, after=sinks),)))
    return replace(condition, branches=tuple(branches))
