"""A loop over an empty list collects `[]`, as in Python.

On a KFP cluster, a loop whose list turns out empty runs no iteration, and a task that reads what
the loop collected then fails: its driver looks for the producer inside an iteration that never ran
(kubeflow/pipelines 2.14-2.17, `backend/src/v2/driver/resolve.go`, `resolveUpstreamParameters` /
`resolveUpstreamArtifacts`: with 0 iterations they fall through to `GetProducerTask`, "... not in
tasks"). Only the outermost loop the reader is outside of matters: an empty loop nested in an
iteration that runs adds nothing to `CollectInputs` and is fine.

Branching around the loop does not help before KFP 2.17: a branch that holds a loop is never marked
complete, so a `OneOf` over it finds no branch that ran (kubeflow/pipelines#13322), and a branch
that only reads the collected list resolves that input before it tests its condition
(driver/dag.go, `DAG`). So the loop always runs at least once instead: a generated step hands the
loop its list, or one filler item when the list is empty, and another says which (`has_items`). Every task
of the loop's body that runs the user's code (their steps, and the steps computing their expressions:
`10 // x` must never see the filler 0) receives that flag (`_kl_run_if`) and, when it is false, runs
none of it and returns empty values; every task that reads what the loop collected receives it too
(`_kl_empty_unless__<name>`) and then reads `[]`. The step runtime does both (step_runtime.py).

A nested pipeline called in the loop's body takes the flag as a parameter (`kl_caller_runs`, true by
default) and hands it to each of its tasks. Loops over literal lists are never empty and are left
alone; so are loops whose collected values a nested pipeline reads or returns (the flag cannot follow
the list there): an empty list still fails on a cluster, compiling warns, and the local run fails the
same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from kale_like.graph.model import (
    Input, Loop, Node, Output, Parameter, PipelineCall, Ref, Step, StepGraph, unique_name, walk,
)
from kale_like.graph.types import JSON, is_json, is_list, list_of
from kale_like.graph.model import all_bodies
from kale_like.lowering.graph_edit import (
    generated_step, name_part, rewrite_bodies, rewrite_body, rewrite_loops, task_names, Types,
)

RUN_IF = "_kl_run_if"  # the step's code runs only when every input named so is true (see _kl_run_step)
CALLER_RUNS = "kl_caller_runs"  # the parameter a nested pipeline called in a guarded loop passes on as RUN_IF
EMPTY_UNLESS = "_kl_empty_unless__"  # + a variable: the variable is [] unless this input is true
FILLERS = {"int": 0, "float": 0.0, "str": "", "bool": False, JSON: "null"}
HAS_ITEMS = "has_items = isinstance(items, list) and len(items) > 0\n"


@dataclass
class _Plan:
    """Per guarded loop (by id): the collected values read outside it, and who reads each."""

    reads: dict[str, dict[Ref, set[str]]] = field(default_factory=dict)
    flags: dict[str, Ref] = field(default_factory=dict)  # loop id -> its generated step's has_items
    refused: dict[str, tuple[Loop, str]] = field(default_factory=dict)  # loop id -> (loop, why not guarded)
    told_pipelines: set[str] = field(default_factory=set)  # nested pipelines called in a guarded loop


def guard_empty_loops(graph: StepGraph) -> StepGraph:
    """Loops over lists known only at run time, whose collected values are read, run at least once."""
    plan = _plan(graph)
    if not plan.reads:
        return graph
    taken = task_names(graph)
    types = Types(graph)
    guarded = rewrite_loops(graph, lambda loop: _run_at_least_once(types, loop, plan, taken)
                            if loop.id in plan.reads else None)
    guarded = _tell_nested(guarded, plan.told_pipelines)
    return rewrite_bodies(guarded, lambda body: tuple(_flagged_reader(node, plan) for node in body))


def _plan(graph: StepGraph) -> _Plan:
    """For each collected value a step reads: the outermost loop around its producer and not around
    the step, if that loop can be guarded (else why not, in `refused`)."""
    plan = _Plan()
    loops = {node.id: node for body in all_bodies(graph) for node in walk(body) if isinstance(node, Loop)}
    for body in all_bodies(graph):
        around = _loops_around(body)
        for node in walk(body):
            if not isinstance(node, (Step, PipelineCall)):
                continue
            for value in node.inputs:
                if value.ref.kind != "collected":
                    continue
                outside = [loop for loop in around.get(value.ref.source, ()) if loop not in around[node.name]]
                if not outside or loops[outside[0]].items.kind == "constant":
                    continue
                loop = loops[outside[0]]
                if isinstance(node, PipelineCall):
                    why = f"nested pipeline '{node.pipeline}' reads what it collects"
                    plan.refused.setdefault(loop.id, (loop, why))
                elif (reason := _unguardable(loop)) is not None:
                    plan.refused.setdefault(loop.id, (loop, reason))
                plan.reads.setdefault(loop.id, {}).setdefault(value.ref, set()).add(node.name)
    for sub in graph.subpipelines:  # a returned collected list is read by the caller: not guarded
        if sub.returns is not None and sub.returns.kind == "collected":
            for loop in loops.values():
                if any(getattr(n, "name", None) == sub.returns.source for n in walk(loop.body)):
                    plan.refused.setdefault(loop.id, (loop, f"nested pipeline '{sub.name}' returns what it collects"))
                    break
    for loop_id in plan.refused:
        plan.reads.pop(loop_id, None)
    return plan


def unguarded_loops(graph: StepGraph) -> list[str]:
    """Warnings for the loops whose collected values fail their reader on a cluster when the list is
    empty, and that this pass cannot guard."""
    return [f"{loop.location.render()}: what this loop collects is read after it; if its list is empty when the "
            "pipeline runs, the reader fails on a KFP cluster (the driver finds no task to collect from: "
            f"driver/resolve.go resolveUpstreamParameters), and kale_like cannot make it read [] here: {reason}\n"
            "  hint: make sure the list is never empty, or read the collected values in a step of the same pipeline"
            for loop, reason in _plan(graph).refused.values()]


def _unguardable(loop: Loop) -> str | None:
    """Why the loop cannot run on a filler item (None: it can)."""
    if _filler(loop) is None:
        return f"its items' type ({loop.item_type}) has no filler value"
    return None


def _filler(loop: Loop) -> object:
    """An item of the loop's type that no step will read (None: there is none)."""
    if loop.item_type == "dict":  # a field the body reads is selected from it, so it must be there
        fields = {value.ref.output: value.type for n in walk(loop.body) if isinstance(n, Step) for value in n.inputs
                  if value.ref.kind == "item" and value.ref.source == loop.id and value.ref.output}
        # a field read as a JSON text (`json`, `json:int`) gets one: a step that runs decodes it
        return {name: FILLERS[JSON] if is_json(kind) else "" for name, kind in sorted(fields.items())}
    return FILLERS.get(loop.item_type)


def _loops_around(body: tuple[Node, ...], enclosing: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """Task name -> the ids of the loops around it, outermost first."""
    found: dict[str, tuple[str, ...]] = {}
    for node in body:
        if isinstance(node, (Step, PipelineCall)):
            found[node.name] = enclosing
        elif isinstance(node, Loop):
            found.update(_loops_around(node.body, enclosing + (node.id,)))
        else:
            for branch in getattr(node, "branches", ()):
                found.update(_loops_around(branch.body, enclosing))
    return found


def _run_at_least_once(types: Types, loop: Loop, plan: _Plan, taken: set[str]) -> list[Node]:
    """Two generated steps (one output each: kfp.local cannot loop over one of several outputs) and the
    loop over the first one's list, each task of its body told whether the items are real."""
    kind = types.of(loop.items)
    kind = kind if is_list(kind) else list_of(loop.item_type)
    base = name_part(loop.id)
    filler = _filler(loop)
    # `items` is not a list only in the filler iteration of a loop around this one: run once, as filler
    code = f"looped = list(items) if isinstance(items, list) and items else [{filler!r}]\n"
    looped = generated_step(unique_name(f"{base}_items_or_filler", taken), code,
                            (Input("items", loop.items, kind),), (Output("looped", kind),), loop.location)
    test = generated_step(unique_name(f"{base}_has_items", taken), HAS_ITEMS,
                          (Input("items", loop.items, kind),), (Output("has_items", "bool"),), loop.location)
    flag = plan.flags[loop.id] = Ref("task", test.name, "has_items")

    def told(body: tuple[Node, ...]) -> tuple[Node, ...]:
        for node in body:
            if isinstance(node, PipelineCall):
                plan.told_pipelines.add(node.pipeline)
        return tuple(_told(node, flag) for node in body)

    return [looped, test, replace(loop, items=Ref("task", looped.name, "looped"), body=rewrite_body(loop.body, told))]


def _told(node: Node, flag: Ref) -> Node:
    """A task that also runs only when `flag` is true (a step by its runtime, a nested pipeline by
    passing the flag to its own steps); a task inside several guarded loops gets one flag each."""
    if isinstance(node, Step) and (not node.generated or node.from_expression):  # lowering's own run on a filler too
        taken = sum(1 for value in node.inputs if value.name.startswith(RUN_IF))
        return replace(node, inputs=node.inputs + (Input(RUN_IF + (f"__{taken + 1}" if taken else ""), flag, "bool"),))
    if isinstance(node, PipelineCall):
        return replace(node, inputs=node.inputs + (Input(CALLER_RUNS, flag, "bool"),))
    return node


def _tell_nested(graph: StepGraph, told: set[str]) -> StepGraph:
    """The nested pipelines called in a guarded loop (and those they call) take the flag as a parameter
    (true by default, for their other callers) and pass it to every task of theirs."""
    pending, done = set(told), set()
    while pending:
        name = pending.pop()
        done.add(name)
        sub = next(s for s in graph.subpipelines if s.name == name)
        pending |= {n.pipeline for n in walk(sub.body) if isinstance(n, PipelineCall)} - done
    parameter = Ref("parameter", CALLER_RUNS)
    subpipelines = []
    for sub in graph.subpipelines:
        if sub.name in done and all(p.name != CALLER_RUNS for p in sub.parameters):
            body = rewrite_body(sub.body, lambda nodes: tuple(_passed_on(n, parameter) for n in nodes))
            sub = replace(sub, parameters=sub.parameters + (Parameter(CALLER_RUNS, "bool", True),), body=body)
        subpipelines.append(sub)
    return replace(graph, subpipelines=tuple(subpipelines))


def _passed_on(node: Node, parameter: Ref) -> Node:
    if isinstance(node, PipelineCall) and any(v.name == CALLER_RUNS for v in node.inputs):
        return node  # already told by a loop of this pipeline; its own flag goes on
    return _told(node, parameter)


def _flagged_reader(node: Node, plan: _Plan) -> Node:
    """A step reading a guarded loop's collected values also reads the loop's flag, per variable."""
    if not isinstance(node, Step):
        return node
    extra = []
    for value in node.inputs:
        if value.ref.kind != "collected":  # (other refs may hold unhashable constants)
            continue
        for loop, reads in plan.reads.items():
            if node.name in reads.get(value.ref, ()):
                extra.append(Input(EMPTY_UNLESS + value.name, plan.flags[loop], "bool"))
    return replace(node, inputs=node.inputs + tuple(extra)) if extra else node

