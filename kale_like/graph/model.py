"""The step graph: the one model every frontend produces and every backend consumes.

Frontends (notebook cells, decorated functions) build a `StepGraph`; backends (the KFP compiler,
the local executor) read it and never look at user source again. Nodes are frozen dataclasses:
a graph is a value, changed only by building a new one (`dataclasses.replace`), so a backend can
never see a half-updated graph. `to_json` gives the shape the JupyterLab panel draws.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from kale_like.errors import SourceLocation

PARAMETER_TYPES = ("int", "float", "str", "bool", "list", "dict")


@dataclass(frozen=True, slots=True)
class CodeBlock:
    """A piece of user code and where it came from (a cell, or a function body)."""

    code: str
    location: SourceLocation


@dataclass(frozen=True, slots=True)
class Parameter:
    """A pipeline parameter: a typed, overridable value with a default."""

    name: str
    type: str
    default: Any
    location: SourceLocation | None = None


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
    secrets: tuple[Secret, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    extra_packages: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Step:
    """One unit of work: code run in its own container, with named values in and out.

    `inputs` maps each variable the step reads from another step to that producer step;
    `outputs` are the variables this step hands on (only those some later step or metric needs).
    `prelude` is the imports/functions code this step needs, already pruned to what it uses.
    """

    name: str
    code: tuple[CodeBlock, ...]
    location: SourceLocation
    prelude: tuple[CodeBlock, ...] = ()
    inputs: tuple[tuple[str, str], ...] = ()
    outputs: tuple[str, ...] = ()
    parameters: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    settings: StepSettings = field(default_factory=StepSettings)

    @property
    def code_hash(self) -> str:
        """Identity of what the step runs: its code and the prelude it carries."""
        digest = hashlib.sha256()
        for block in self.prelude + self.code:
            digest.update(block.code.encode())
            digest.update(b"\0")
        return digest.hexdigest()

    @property
    def upstream(self) -> tuple[str, ...]:
        """Every step this one waits for: data producers and explicit `prev:` parents."""
        names = dict.fromkeys(producer for _, producer in self.inputs)
        names.update(dict.fromkeys(self.after))
        return tuple(names)


@dataclass(frozen=True, slots=True)
class Edge:
    """A dependency between two steps; `names` lists the variables it carries (may be empty)."""

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


@dataclass(frozen=True, slots=True)
class StepGraph:
    """Steps in a valid execution order (notebook order where there is a choice)."""

    source: str
    settings: PipelineSettings
    steps: tuple[Step, ...]
    parameters: tuple[Parameter, ...] = ()
    metrics: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def step(self, name: str) -> Step:
        """The step called `name` (KeyError if there is none)."""
        for candidate in self.steps:
            if candidate.name == name:
                return candidate
        raise KeyError(name)

    @property
    def edges(self) -> tuple[Edge, ...]:
        """Edges derived from the steps, so they can never disagree with them."""
        result = []
        for target in self.steps:
            carried: dict[str, list[str]] = {}
            for variable, producer in target.inputs:
                carried.setdefault(producer, []).append(variable)
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
            "steps": [asdict(s) | {"code_hash": s.code_hash} for s in self.steps],
            "edges": [asdict(e) for e in self.edges],
            "warnings": list(self.warnings),
        }
        return json.dumps(document, indent=2, sort_keys=True, default=str)
