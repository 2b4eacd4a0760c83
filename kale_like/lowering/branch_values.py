"""A value every branch of an if assigns is handed on by a step of the branch that ran.

In Python, `mode` after `if fast: mode = "quick" else: mode = default` is whichever value the branch
that ran assigned: a constant, a parameter, a loop item, a result made before the if. A frontend
says so with a `oneof` Ref naming the condition (`source`), the name (`output`) and each branch's
value (`options`, in branch order). KFP's `dsl.OneOf` chooses between outputs of tasks of the
branches of one If/Elif/Else, the one that ran (kubeflow/pipelines `backend/src/v2/driver/resolve.go`,
`GetProducerTask` for a OneOf). So each branch whose value is not a task of its own ends with a
generated step `<name>_value` that outputs it, and the OneOf chooses between those outputs.
"""

from __future__ import annotations

from dataclasses import replace

from kale_like.graph.model import (
    Branch, Condition, Expression, Input, Node, Output, Ref, StepGraph, unique_name, walk,
)
from kale_like.lowering.expressions import as_step
from kale_like.graph.model import all_bodies, all_refs
from kale_like.lowering.graph_edit import Types, map_refs, rewrite_bodies, task_names


def branch_values_handed_on(graph: StepGraph) -> StepGraph:
    """Every OneOf reads a task of each branch: values not made there are handed on by a generated step."""
    # (keyed by condition and name: an option may be a constant list, which does not hash)
    chosen = {(ref.source, ref.output): ref for ref in all_refs(graph) if ref.kind == "oneof" and ref.source}
    if not chosen:
        return graph
    taken = task_names(graph)
    types = Types(graph)
    added: dict[str, list[list[Node]]] = {}  # condition id -> steps to add at the end of each branch
    replaced: dict[tuple[str, str], Ref] = {}
    conditions = {node.id: node for body in all_bodies(graph) for node in walk(body) if isinstance(node, Condition)}
    for key, ref in sorted(chosen.items()):
        condition = conditions[ref.source]
        steps = added.setdefault(condition.id, [[] for _ in condition.branches])
        options = []
        for index, (option, branch) in enumerate(zip(ref.options, condition.branches)):
            if _made_in(option, branch):
                options.append(option)
                continue
            name = unique_name(f"{ref.output}_value", taken)
            made = Expression(name, f"{ref.output} = value\n", (Input("value", option, types.value(option)),),
                              (Output(ref.output, types.value(option)),), condition.location)
            steps[index].append(as_step(made))
            options.append(Ref("task", name, ref.output))
        replaced[key] = replace(ref, options=tuple(options))

    def extend(body: tuple[Node, ...]) -> tuple[Node, ...]:
        return tuple(replace(node, branches=tuple(Branch(b.test, b.body + tuple(extra))
                                                  for b, extra in zip(node.branches, added[node.id])))
                     if isinstance(node, Condition) and node.id in added else node for node in body)

    return map_refs(rewrite_bodies(graph, extend),
                    lambda ref: replaced.get((ref.source, ref.output), ref) if ref.kind == "oneof" else ref)


def _made_in(option: Ref, branch: Branch) -> bool:
    return option.kind == "task" and any(getattr(node, "name", None) == option.source for node in walk(branch.body))
