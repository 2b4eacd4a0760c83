"""The step graph: the one model every frontend produces and every backend consumes.

Frontends (notebook cells, decorated functions) build a `StepGraph`; backends (the KFP compiler,
the local executor) read it and never look at user source again. Nodes are frozen dataclasses:
a graph is a value, changed only by building a new one (`dataclasses.replace`), so a backend can
never see a half-updated graph. `to_json` gives the shape the JupyterLab panel draws.

A pipeline body is a tree: `Step`s (one task each), `Loop`s (KFP ParallelFor) and `Condition`s
(KFP If/Elif/Else) holding bodies of their own, `PipelineCall`s of nested pipelines, and
`Expression`s: plain Python the body computes between steps (`path = f"s3://{bucket}"`), which
lowering (`kale_like/lowering/expressions.py`) turns into small generated steps. Every value a task
reads is an `Input` whose `Ref` says where it comes from.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from collections.abc import Iterable, Iterator
from typing import Any, Literal, Union

from kale_like.errors import SourceLocation
from kale_like.graph.types import TypeName
from kale_like.graph.types import ANY as ANY  # a value of unknown type (the type names: graph/types.py)
from kale_like.kfp_server import DEFAULT as DEFAULT_KFP_SERVER


@dataclass(frozen=True, slots=True)
class CodeBlock:
    """A piece of user code and where it came from (a cell, or a function body)."""

    code: str
    location: SourceLocation


@dataclass(frozen=True, slots=True)
class Parameter:
    """A pipeline parameter: a typed, overridable value with a default."""

    name: str
    type: TypeName
    default: Any
    location: SourceLocation | None = None
    required: bool = False  # no default: every run must give a value


RefKind = Literal["task", "parameter", "item", "constant", "collected", "oneof", "final_status"]


@dataclass(frozen=True, slots=True)
class Ref:
    """Where a value comes from.

    kind: `task` (output `output` of step/call `source`), `parameter` (pipeline parameter
    `source`), `item` (the current item of loop `source`, or its field `output`), `constant`
    (`value`), `collected` (every iteration's output `output` of `source`, as a list), `oneof`
    (the value the name `output` has after the if/elif/else `source`: whichever of `options`, one per
    branch in order, the branch that ran gave it), `final_status` (the pipeline's outcome, for an exit
    step).
    """

    kind: RefKind
    source: str = ""
    output: str = ""
    value: Any = None
    options: tuple[Ref, ...] = ()


@dataclass(frozen=True, slots=True)
class Input:
    """A named value a step (or nested pipeline) receives, and its type (`any`: an artifact)."""

    name: str
    ref: Ref
    type: TypeName = ANY


@dataclass(frozen=True, slots=True)
class Output:
    """A named value a step hands on; a typed output travels as a KFP parameter."""

    name: str
    type: TypeName = ANY


@dataclass(frozen=True, slots=True)
class Secret:
    """A Kubernetes secret key exposed to a step as an environment variable."""

    secret: str
    key: str
    env: str


@dataclass(frozen=True, slots=True)
class StepSettings:
    """How a step runs on the cluster. `None` means: use the pipeline default."""

    image: str | None = None
    limits: tuple[tuple[str, str], ...] = ()
    requests: tuple[tuple[str, str], ...] = ()
    cache: bool | None = None
    retries: int | None = None
    retry_backoff: str | None = None  # e.g. "30s": wait before the first retry (doubling after)
    secrets: tuple[Secret, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    extra_packages: tuple[str, ...] = ()
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[tuple[str, str, str], ...] = ()  # (key, value or "", effect)
    display_name: str | None = None
    timeout: int | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One task: code run in its own container, with named values in and out.

    The code runs top to bottom in one namespace holding the inputs (a notebook step's cells; or a
    function definition followed by its call, whose result is bound to `result`). `outputs` are
    the names it hands on; `prelude` is the imports/functions code it needs, pruned to what it uses.
    """

    name: str
    code: tuple[CodeBlock, ...]
    location: SourceLocation
    prelude: tuple[CodeBlock, ...] = ()
    inputs: tuple[Input, ...] = ()
    outputs: tuple[Output, ...] = ()
    result: str = ""
    metrics: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    settings: StepSettings = field(default_factory=StepSettings)
    function: str = ""  # the Python function a function step runs (empty for notebook steps)
    generated: bool = False  # written by kale_like (kale_like/lowering/), not by the user
    # generated to compute the user's own expression (lowering/expressions.py): it runs where and when a
    # step of the user's would (not in a guarded loop's filler iteration, lowering/empty_loops.py)
    from_expression: bool = False

    @property
    def code_hash(self) -> str:
        """Identity of what the step runs: its code and the prelude it carries."""
        digest = hashlib.sha256()
        for block in self.prelude + self.code:
            digest.update(block.code.encode())
            digest.update(b"\0")
        return digest.hexdigest()

    @property
    def parameters(self) -> tuple[str, ...]:
        """Names of the pipeline parameters the step reads."""
        return tuple(i.name for i in self.inputs if i.ref.kind == "parameter")

    @property
    def upstream(self) -> tuple[str, ...]:
        """Every task this one waits for: producers of its inputs and explicit `prev:` parents."""
        names = dict.fromkeys(p for i in self.inputs for p in producers(i.ref))
        names.update(dict.fromkeys(self.after))
        return tuple(names)

    def output(self, name: str) -> Output:
        for candidate in self.outputs:
            if candidate.name == name:
                return candidate
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Loop:
    """A fan-out: `body` runs once per item of `items` (KFP ParallelFor)."""

    id: str
    items: Ref
    item_type: TypeName
    body: tuple[Node, ...]
    location: SourceLocation
    parallelism: int | None = None
    # a loop unpacking its items (`for i, x in enumerate(xs)`) runs over records: each field's name and type
    fields: tuple[Output, ...] = ()
    header: str = ""  # the loop as the user wrote it (`for i, x in enumerate(xs)`), for whoever shows the graph


Comparison = Literal["==", "!=", "<", "<=", ">", ">="]
TestOp = Literal["==", "!=", "<", "<=", ">", ">=", "truth", "not", "and", "or"]


@dataclass(frozen=True, slots=True)
class Test:
    """A branch condition: `op` over `operands`.

    op: a comparison (`==`, `!=`, `<`, `<=`, `>`, `>=`) of two Refs, `truth` of one Ref,
    `not` / `and` / `or` over nested Tests (in `tests`).
    """

    op: TestOp
    operands: tuple[Ref, ...] = ()
    tests: tuple[Test, ...] = ()


@dataclass(frozen=True, slots=True)
class Branch:
    """One arm of an if/elif/else chain; `test` is None for `else`."""

    test: Test | None
    body: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Condition:
    """An if/elif/else chain (KFP If/Elif/Else)."""

    id: str
    branches: tuple[Branch, ...]
    location: SourceLocation


@dataclass(frozen=True, slots=True)
class PipelineCall:
    """A nested pipeline used as one task."""

    name: str
    pipeline: str
    inputs: tuple[Input, ...]
    location: SourceLocation
    outputs: tuple[Output, ...] = ()
    after: tuple[str, ...] = ()

    @property
    def upstream(self) -> tuple[str, ...]:
        names = dict.fromkeys(p for i in self.inputs for p in producers(i.ref))
        names.update(dict.fromkeys(self.after))
        return tuple(names)


@dataclass(frozen=True, slots=True)
class Expression:
    """Plain Python the pipeline body computes from its values, not a step the user wrote.

    `code` binds each of `outputs` by name from `inputs` (`path = f"s3://{bucket}/{version}"`,
    `lo, hi = bounds`, `test = bool(metrics["auc"] > 0.9)`). Constants are inputs like any other
    value: how each input reaches the code, and what runs it, is the lowering's choice (a KFP task of
    its own). `location` is the user's code it stands for, so errors point there.
    """

    name: str
    code: str
    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]
    location: SourceLocation

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for i in self.inputs for p in producers(i.ref)))


Node = Union[Step, Loop, Condition, PipelineCall, Expression]


@dataclass(frozen=True, slots=True)
class SubPipeline:
    """A pipeline called from another one: its own parameters, body and returned value."""

    name: str
    parameters: tuple[Parameter, ...]
    body: tuple[Node, ...]
    returns: Ref | None = None
    return_type: TypeName = ANY


@dataclass(frozen=True, slots=True)
class Edge:
    """A dependency between two tasks; `names` lists the values it carries (may be empty)."""

    source: str
    target: str
    names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    """Pipeline-wide defaults and identity."""

    name: str
    description: str = ""
    experiment: str = ""
    image: str = "python:3.11"
    cache: bool = True
    pip_index_urls: tuple[str, ...] = ()
    service_account: str = ""  # the run's pods' Kubernetes service account ("": the namespace's default)
    kfp_version: str = str(DEFAULT_KFP_SERVER)  # the KFP server release line targeted (ServerVersion, parsed)
    # the largest Argo Workflow object the cluster stores (etcd's default request limit, 1.5 MiB); 0: not checked
    max_workflow_bytes: int = 1_572_864


@dataclass(frozen=True, slots=True)
class StepGraph:
    """A pipeline: its body in execution order (notebook order where there is a choice)."""

    source: str
    settings: PipelineSettings
    body: tuple[Node, ...]
    parameters: tuple[Parameter, ...] = ()
    metrics: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    subpipelines: tuple[SubPipeline, ...] = ()
    returns: Ref | None = None
    return_type: TypeName = ANY
    provenance: tuple[tuple[str, str], ...] = ()  # source file, git commit, ... (set by the surfaces)
    exit_step: Step | None = None  # runs after the body whatever happened (KFP ExitHandler)

    @property
    def steps(self) -> tuple[Step, ...]:
        """Every step of the main body, loops and branches included, in body order."""
        return tuple(node for node in walk(self.body) if isinstance(node, Step))

    @property
    def all_steps(self) -> tuple[Step, ...]:
        """Every step, nested pipelines and the exit step included."""
        nested = tuple(n for sub in self.subpipelines for n in walk(sub.body) if isinstance(n, Step))
        return self.steps + nested + ((self.exit_step,) if self.exit_step else ())

    @property
    def expressions(self) -> tuple[Expression, ...]:
        """Every expression of the main body, loops and branches included, in body order."""
        return tuple(node for node in walk(self.body) if isinstance(node, Expression))

    def step(self, name: str) -> Step:
        """The step called `name` (KeyError if there is none)."""
        for candidate in self.steps:
            if candidate.name == name:
                return candidate
        raise KeyError(name)

    @property
    def edges(self) -> tuple[Edge, ...]:
        """Edges derived from the tasks, so they can never disagree with them."""
        result = []
        for target in walk(self.body):
            if not isinstance(target, (Step, PipelineCall, Expression)):
                continue
            carried: dict[str, list[str]] = {}
            for value in target.inputs:
                for producer in producers(value.ref):
                    carried.setdefault(producer, []).append(value.name)
            for source in target.upstream:
                result.append(Edge(source, target.name, tuple(carried.get(source, ()))))
        return tuple(result)

    def to_json(self) -> str:
        """A stable JSON document of the graph (for the panel and for golden tests)."""
        document = {
            "source": self.source,
            "settings": asdict(self.settings),
            "parameters": [asdict(p) for p in self.parameters],
            "metrics": list(self.metrics),
            "body": [_node_json(node) for node in self.body],
            # expressions after the steps, drawn as the small generated steps lowering makes of them
            "steps": [asdict(s) | {"code_hash": s.code_hash, "parameters": list(s.parameters)} for s in self.steps]
            + [asdict(e) | {"kind": "expression", "generated": True, "upstream": list(e.upstream)}
               for e in self.expressions],
            "edges": [asdict(e) for e in self.edges],
            "subpipelines": [asdict(p) for p in self.subpipelines],
            "exit_step": None if self.exit_step is None else asdict(self.exit_step) | {
                "code_hash": self.exit_step.code_hash, "parameters": list(self.exit_step.parameters)},
            "warnings": list(self.warnings),
        }
        return json.dumps(document, indent=2, sort_keys=True, default=str)


class TakenNames(set[str]):
    """Names in use, remembering per base the number `unique_name` tries next: names are only ever
    added, so the numbers below it stay taken, and naming n steps alike costs n tries, not n²/2."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        super().__init__(names)
        self.next_number: dict[str, int] = {}


def unique_name(base: str, taken: set[str]) -> str:
    """`base`, or `base_2`, `base_3`, ... whichever is free; the name is then taken."""
    number = taken.next_number.get(base, 1) if isinstance(taken, TakenNames) else 1  # 1: `base` itself
    while (candidate := base if number == 1 else f"{base}_{number}") in taken:
        number += 1
    if isinstance(taken, TakenNames):
        taken.next_number[base] = number + 1
    taken.add(candidate)
    return candidate


def all_bodies(graph: StepGraph) -> list[tuple[Node, ...]]:
    """The main body and each nested pipeline's body."""
    return [graph.body] + [sub.body for sub in graph.subpipelines]


def all_refs(graph: StepGraph) -> list[Ref]:
    """Every value read anywhere in the graph: task and expression inputs, loop lists, branch tests' operands, and
    returned values (a `Ref` of a constant list is unhashable: constants are left out)."""
    found: list[Ref] = []

    def tested(test: Test) -> None:
        found.extend(test.operands)
        for inner in test.tests:
            tested(inner)

    steps = [graph.exit_step] if graph.exit_step is not None else []
    for body in all_bodies(graph):
        for node in list(walk(body)) + steps:
            if isinstance(node, (Step, PipelineCall, Expression)):
                found.extend(value.ref for value in node.inputs)
            elif isinstance(node, Loop):
                found.append(node.items)
            elif isinstance(node, Condition):
                for branch in node.branches:
                    if branch.test is not None:
                        tested(branch.test)
        steps = []
    found += [ref for ref in [graph.returns] + [sub.returns for sub in graph.subpipelines] if ref is not None]
    return [ref for ref in found if ref.kind != "constant"]


def producers(ref: Ref) -> tuple[str, ...]:
    """Tasks a value comes from."""
    if ref.kind in ("task", "collected"):
        return (ref.source,)
    if ref.kind == "oneof":
        return tuple(p for option in ref.options for p in producers(option))
    return ()


def walk(body: tuple[Node, ...]) -> Iterator[Node]:
    """Every node of a body, depth first, in order."""
    for node in body:
        yield node
        if isinstance(node, Loop):
            yield from walk(node.body)
        elif isinstance(node, Condition):
            for branch in node.branches:
                yield from walk(branch.body)


def _node_json(node: Node) -> dict[str, Any]:
    kind = type(node).__name__.lower()
    if isinstance(node, (Step, Expression)):
        return {"kind": kind, "name": node.name}
    if isinstance(node, Loop):
        return {"kind": kind, "id": node.id, "items": asdict(node.items), "parallelism": node.parallelism,
                "header": node.header, "body": [_node_json(n) for n in node.body]}
    if isinstance(node, Condition):
        return {"kind": kind, "id": node.id, "branches": [
            {"test": asdict(b.test) if b.test else None, "body": [_node_json(n) for n in b.body]}
            for b in node.branches]}
    return {"kind": kind, "name": node.name, "pipeline": node.pipeline}


