"""Lowering: passes from the step graph the frontends build to the graph KFP's backend can run as meant.

A frontend's graph says what the user's Python means. Some of it, compiled as it stands, would mean
something else on a KFP cluster, because the backend's driver converts and drops values in ways
Python never does (kubeflow/pipelines `backend/src/v2/driver/resolve.go`). Each pass here is a
pure function `StepGraph -> StepGraph` that rewrites one such shape into one whose cluster meaning
is the Python meaning, usually by adding a small generated step. The KFP backend applies them all
(`lower`) before it writes the DSL module; the graph the panel draws is the frontend's.
"""

from __future__ import annotations

from kale_like.graph.model import StepGraph
from kale_like.lowering.branch_state import mark_chosen_branches
from kale_like.lowering.branch_values import branch_values_handed_on
from kale_like.lowering.constant_arguments import constants_made_by_steps
from kale_like.lowering.empty_loops import guard_empty_loops, unguarded_loops
from kale_like.lowering.exit_state import mark_the_end
from kale_like.lowering.expressions import expressions_as_steps
from kale_like.lowering.kfp_conditions import conditions_kfp_states
from kale_like.lowering.loop_items import encode_untyped_loop_items
from kale_like.lowering.nested_collected import collected_arguments_handed_on, plain_nested_results
from kale_like.lowering.own_list import loops_keep_their_list
from kale_like.lowering.returned_values import returned_values_from_tasks

# expressions_as_steps first: every later pass sees tasks only; then every OneOf chooses between tasks
# (branch_values_handed_on). conditions_kfp_states before the loop passes: the steps it makes read loop
# items and collected lists like any other reader.
# plain_nested_results before guard_empty_loops: the step that hands a nested pipeline's collected list
# on is a reader of that list, which guard_empty_loops then tells when the list was empty
# constants_made_by_steps after every pass that makes steps of values (expressions, branch values, tests): their
# constant arguments are arguments too. returned_values_from_tasks before the nested-pipeline passes, which then
# see a task's output returned
PASSES = (expressions_as_steps, branch_values_handed_on, conditions_kfp_states, constants_made_by_steps,
          returned_values_from_tasks, encode_untyped_loop_items, loops_keep_their_list, plain_nested_results,
          collected_arguments_handed_on, guard_empty_loops, mark_chosen_branches, mark_the_end)


def lower(graph: StepGraph) -> StepGraph:
    """The graph with every pass applied, in order."""
    for lowering_pass in PASSES:
        graph = lowering_pass(graph)
    return graph


def lowering_warnings(graph: StepGraph) -> list[str]:
    """What the passes could not rewrite and a cluster may run otherwise than Python (one line each)."""
    for lowering_pass in PASSES[:PASSES.index(guard_empty_loops)]:  # the graph that pass guards
        graph = lowering_pass(graph)
    return unguarded_loops(graph)
