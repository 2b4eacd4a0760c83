"""Data dependencies between steps: who produces each name a step reads.

Rules (documented in the README):
- A step reads a name that it does not bind before reading it: that is an input.
- The producer is the nearest earlier step (in notebook order) that holds the name: one that binds
  it, or that received it and may have changed it in place (`df["a"] = ...`, `model.fit(...)`).
  When the step has `prev:` parents, their ancestors are searched first, so parallel branches
  declared with `prev:` stay parallel.
- A name no step, import, function or parameter provides is an error at the place it is read.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence, Set as AbstractSet
from dataclasses import dataclass, field

from kale_like.errors import KaleLikeError, SourceLocation, did_you_mean


@dataclass
class StepSource:
    """What the dependency pass needs to know about one step (frontend-internal, mutable)."""

    name: str
    order: int
    location: SourceLocation
    reads: dict[str, SourceLocation]
    defines: frozenset[str]
    touches: frozenset[str]
    prev: list[tuple[str, SourceLocation]] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    parameters: set[str] = field(default_factory=set)
    outputs: set[str] = field(default_factory=set)
    tag_reads: dict[str, str] = field(default_factory=dict)  # a name a flow tag reads -> that tag

    @property
    def exports(self) -> set[str]:
        """Names a later step could take from this one."""
        return set(self.defines) | (set(self.touches) & set(self.inputs))

    def holds(self, name: str) -> bool:
        return name in self.defines or name in self.inputs or name in self.parameters


def resolve(steps: list[StepSource], parameters: set[str], allow_unknown: bool) -> list[KaleLikeError]:
    """Fill each step's inputs/parameters and its producers' outputs; return the problems.

    Linear in the steps and the names they read: each name's holders are listed as the steps are
    resolved in notebook order (a step's exports are final once it is resolved), and a step's
    ancestors are walked only for a step with `prev:` parents, which is the only one that needs them.
    """
    errors: list[KaleLikeError] = []
    by_name = {step.name: step for step in steps}
    holders: dict[str, list[StepSource]] = {}  # name -> the steps resolved so far that export it, in order
    links: dict[str, list[str]] = {}  # step -> its prev: parents and the producers of its inputs
    for step in sorted(steps, key=lambda s: s.order):
        parents = _check_prev(step, by_name, errors)
        links[step.name] = list(parents)
        lineage: set[str] = set()
        for parent in parents:
            _add_ancestry(parent, links, lineage)
        for name, where in step.reads.items():
            producer = _producer(holders.get(name, ()), lineage) if parents else _latest(holders.get(name, ()))
            if producer is not None:
                step.inputs[name] = producer.name
                producer.outputs.add(name)
                links[step.name].append(producer.name)
                if parents:
                    _add_ancestry(producer.name, links, lineage)
            elif name in parameters:
                step.parameters.add(name)
            elif not allow_unknown:
                errors.append(_undefined(name, where, steps, step, set(holders) | parameters))
        for name in step.exports:
            holders.setdefault(name, []).append(step)
    return errors


def _add_ancestry(name: str, links: dict[str, list[str]], lineage: set[str]) -> None:
    """Add `name` and its ancestors to `lineage` (which holds the ancestors of each step in it)."""
    stack = [name]
    while stack:
        current = stack.pop()
        if current not in lineage:
            lineage.add(current)
            stack.extend(links.get(current, ()))


def assign_metrics(
    metrics: list[tuple[str, SourceLocation]], steps: list[StepSource], conditional: frozenset[str] = frozenset()
) -> tuple[dict[str, list[str]], list[KaleLikeError]]:
    """Which steps log each metric: the value the name has at the end of a top-to-bottom run.

    That is the value of the last step that binds it (assigns it, or changes in place a value it
    received) and always runs; a later step that binds it only under a `when:` condition (the steps in
    `conditional`) logs it too, since when it runs its value is the one at the end (the run's metric is
    then the latest step's that ran). A step that only reads the name never logs it: it may be skipped
    where its producer ran. A name no step binds (a parameter a step reads) is logged by the last step
    holding it."""
    logged: dict[str, list[str]] = {}
    errors = []
    ordered = sorted(steps, key=lambda s: s.order)
    for name, where in metrics:
        binders = [s for s in ordered if name in s.exports]
        holders = [s for s in ordered if s.holds(name)]
        if not holders:
            errors.append(
                KaleLikeError(
                    f"metric '{name}' is not a variable any step defines",
                    where,
                    "list in pipeline-metrics only names that step cells assign",
                )
            )
            continue
        always = [s for s in binders if s.name not in conditional]
        if always:
            owners = [always[-1]] + [s for s in binders if s.order > always[-1].order]
        else:
            owners = binders or [holders[-1]]
        for owner in owners:
            logged.setdefault(owner.name, []).append(name)
    return logged, errors


def execution_order(steps: list[StepSource]) -> tuple[list[str], list[KaleLikeError]]:
    """Topological order, notebook order among ready steps; a cycle is an error naming it."""
    upstream = {s.name: (set(s.inputs.values()) | {p for p, _ in s.prev}) - {s.name} for s in steps}
    order_of = {s.name: s.order for s in steps}
    waiting = {name: len(parents & upstream.keys()) for name, parents in upstream.items()}
    children: dict[str, list[str]] = {}
    for name, parents in upstream.items():
        for parent in parents & upstream.keys():
            children.setdefault(parent, []).append(name)
    ready = [(order_of[n], n) for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    result = []
    while ready:
        _, name = heapq.heappop(ready)
        result.append(name)
        for other in children.get(name, ()):
            waiting[other] -= 1
            if waiting[other] == 0:
                heapq.heappush(ready, (order_of[other], other))
    if len(result) == len(steps):
        return result, []
    stuck = {s.name: s for s in steps if s.name not in result}
    cycle = _cycle(stuck, upstream)
    links = []
    where = stuck[cycle[0]].location
    for parent, child in zip(cycle, cycle[1:]):
        prev = [at for name, at in stuck[child].prev if name == parent]
        if prev:
            links.append(f"{child} has prev:{parent}")
            if stuck[parent].order > stuck[child].order:
                where = prev[0]  # the tag that closes the loop
        else:
            carried = sorted(name for name, source in stuck[child].inputs.items() if source == parent)
            links.append(f"{child} reads {', '.join(carried)} from {parent}")
    return result, [
        KaleLikeError(
            f"the steps {' -> '.join(cycle)} depend on each other in a cycle ({'; '.join(links)})",
            where,
            "a prev: tag must name a step that runs earlier; remove the one that closes the loop",
        )
    ]


def _cycle(stuck: dict[str, StepSource], upstream: dict[str, set[str]]) -> list[str]:
    """One cycle among steps that never became ready, in the order they wait on each other, closed.

    Steps downstream of a cycle are stuck too; following each one's earliest stuck parent leads into
    a real cycle, so the message names only the steps on it (starting at the earliest in the notebook)."""
    node = min(stuck.values(), key=lambda s: s.order).name
    path: list[str] = []
    while node not in path:
        path.append(node)
        node = min((p for p in upstream[node] if p in stuck), key=lambda p: stuck[p].order)
    loop = path[path.index(node):][::-1]  # parents first
    start = min(range(len(loop)), key=lambda i: stuck[loop[i]].order)
    loop = loop[start:] + loop[:start]
    return loop + loop[:1]


def _check_prev(step: StepSource, by_name: dict[str, StepSource], errors: list) -> list[str]:
    parents = []
    for parent, where in step.prev:
        if parent == step.name:
            errors.append(KaleLikeError(f"step '{step.name}' lists itself in prev:", where,
                                        f"remove the tag prev:{parent}"))
        elif parent not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            guess = did_you_mean(parent, set(by_name) - {step.name})
            errors.append(
                KaleLikeError(
                    f"prev:{parent} names a step that does not exist",
                    where,
                    (f"did you mean 'prev:{guess}'? " if guess else "") + f"steps in this notebook: {known}",
                )
            )
        else:
            parents.append(parent)
    return parents


def _producer(holders: Sequence[StepSource], lineage: set[str]) -> StepSource | None:
    """Nearest ancestor holding the name; any earlier step when no ancestor does."""
    return next((s for s in reversed(holders) if s.name in lineage), None) or _latest(holders)


def _latest(holders: Sequence[StepSource]) -> StepSource | None:
    return holders[-1] if holders else None


def _provider(name: str, steps: list[StepSource], reader: StepSource) -> str:
    """Where a name comes from, for a hint: the step that assigns it, else a pipeline parameter."""
    step = next((s for s in sorted(steps, key=lambda s: -s.order) if s.order < reader.order and name in s.exports), None)
    return f"assigned in step '{step.name}'" if step else "a pipeline parameter"


def _undefined(name: str, where: SourceLocation, steps: list[StepSource], reader: StepSource,
               known: AbstractSet[str] = frozenset()) -> KaleLikeError:
    """`known`: the names an earlier step or a parameter provides, the closest of which a typo meant."""
    later = [s for s in steps if s.order > reader.order and name in s.defines]
    guess = did_you_mean(name, known)
    if later:
        hint = f"it is only assigned later, in step '{later[0].name}'; move that code above this step"
    elif guess and name in reader.tag_reads:
        tag = reader.tag_reads[name]
        kind, _, rest = tag.partition(":")
        fields = rest.split(":")
        fields[1 if kind == "foreach" else 0] = guess
        hint = f"did you mean '{kind}:{':'.join(fields)}'? ('{guess}' is {_provider(guess, steps, reader)})"
    elif guess:
        hint = f"did you mean '{guess}'? Else assign it in an earlier step, import it in an 'imports' cell, or add it to 'pipeline-parameters'"
    else:
        hint = "assign it in an earlier step, import it in an 'imports' cell, or add it to 'pipeline-parameters'"
    return KaleLikeError(f"name '{name}' is not defined by any earlier step, import, function or parameter", where, hint)
