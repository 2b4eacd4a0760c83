"""The cell-tag grammar, defined once.

Tags are ordinary Jupyter cell tags, compatible with Kubeflow Kale (2.x and the older `block:`
dialect). `TAG_GRAMMAR` is the single definition: the parser below reads it, and `grammar_json`
exports it for the JupyterLab panel so the two sides can never drift apart.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from kale_like.errors import KaleLikeError, SourceLocation, did_you_mean
from kale_like.graph.overrides import SERVICE_ACCOUNT_PER_RUN

NAME = r"[a-z_][a-z0-9_]*"
KEY = r"[A-Za-z0-9_./-]+"
VARIABLE = r"[A-Za-z_][A-Za-z0-9_]*"

# kind -> (regex with named groups, what it means). Order matters only for documentation.
TAG_GRAMMAR: dict[str, tuple[str, str]] = {
    "imports": (r"imports", "imports prepended to every step that uses them"),
    "functions": (r"functions", "functions and classes available to every step"),
    "pipeline-parameters": (r"pipeline-parameters", "NAME = literal lines become parameters"),
    "pipeline-metrics": (r"pipeline-metrics", "print(name) lines become KFP metrics"),
    "skip": (r"skip", "the cell is left out of the pipeline"),
    "exit-handler": (
        r"exit-handler",
        "the cell runs last, whether the pipeline succeeded or failed (KFP ExitHandler); "
        "it reads the outcome as pipeline_status",
    ),
    "step": (rf"(?:step|block):(?P<name>{NAME})", "the cell starts (or continues) a step"),
    "prev": (rf"prev:(?P<name>{NAME})", "the step runs after that earlier step"),
    "image": (r"image:(?P<image>\S+)", "container image for the step"),
    "limit": (rf"limit:(?P<resource>{KEY}):(?P<value>\S+)", "resource limit (cpu, memory, GPU)"),
    "request": (rf"request:(?P<resource>{KEY}):(?P<value>\S+)", "resource request"),
    "cache": (r"cache:(?P<state>enabled|disabled)", "KFP caching for the step"),
    "retries": (r"retries:(?P<count>[0-9]+)(?::(?P<backoff>[0-9]+[smh]))?",
                "retry a failed step up to N times, waiting BACKOFF (e.g. 30s) before the first retry"),
    "secret": (
        rf"secret:(?P<secret>{KEY}):(?P<key>{KEY}):(?P<env>[A-Za-z_][A-Za-z0-9_]*)",
        "expose a Kubernetes secret key as an environment variable",
    ),
    "annotation": (rf"annotation:(?P<key>{KEY}):(?P<value>.*)", "pod annotation"),
    "label": (rf"label:(?P<key>{KEY}):(?P<value>.*)", "pod label"),
    "env": (r"env:(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<value>.*)", "environment variable"),
    "packages": (r"packages:(?P<packages>\S+)", "comma-separated extra pip packages"),
    "report": (r"report:(?P<state>enabled|disabled)", "Kale's HTML report switch (ignored)"),
    "node": (rf"node:(?P<key>{KEY}):(?P<value>\S+)", "schedule the step on nodes with this label"),
    "toleration": (
        rf"toleration:(?P<key>{KEY}):(?P<value>[^:]*):(?P<effect>NoSchedule|PreferNoSchedule|NoExecute)",
        "tolerate a node taint (empty VALUE: any value)",
    ),
    "display": (r"display:(?P<name>\S+)", "the step's name in the KFP UI"),
    "timeout": (r"timeout:(?P<seconds>[1-9][0-9]*)", "stop the step after N seconds"),
    "foreach": (
        rf"foreach:(?P<item>{VARIABLE}):(?P<items>{VARIABLE})",
        "run the step once per element of a list (KFP ParallelFor); its outputs reach later steps as lists",
    ),
    "parallelism": (r"parallelism:(?P<count>[1-9][0-9]*)", "at most N iterations of a foreach step at a time"),
    "when": (
        rf"when:(?P<name>{VARIABLE})(?::(?P<op>==|!=|<=|>=|<|>):(?P<value>.+))?",
        "run the step only if the condition holds (KFP If), e.g. when:accuracy:>=:0.9",
    ),
}

CELL_KINDS = ("imports", "functions", "pipeline-parameters", "pipeline-metrics", "skip", "step", "exit-handler")
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
KNOWN_RESOURCES = ("cpu", "memory") + GPU_RESOURCES

_COMPILED = {kind: re.compile(rf"^{pattern}$") for kind, (pattern, _) in TAG_GRAMMAR.items()}


@dataclass(frozen=True, slots=True)
class Tag:
    """One parsed tag: its kind and the named fields of its grammar row."""

    raw: str
    kind: str
    fields: tuple[tuple[str, str], ...] = ()

    def get(self, field: str) -> str | None:
        """A field of the tag; None for an optional part that is absent."""
        return dict(self.fields).get(field)

    def required(self, field: str) -> str:
        """A field its grammar row always has (a KeyError for any other name)."""
        return dict(self.fields)[field]


def parse_tag(raw: str) -> Tag | None:
    """Parse one tag; None when it matches no grammar row."""
    text = raw.strip()
    for kind, pattern in _COMPILED.items():
        match = pattern.match(text)
        if match:
            fields = tuple(sorted((k, v) for k, v in match.groupdict().items() if v is not None))
            return Tag(text, kind, fields)
    return None


def unknown_tag_error(raw: str, where: SourceLocation, place: str = "") -> KaleLikeError:
    """The error for a tag that did not parse (`place`: e.g. " in notebook metadata steps_defaults")."""
    if raw.strip().split(":", 1)[0].replace("_", "-").lower() in ("service-account", "serviceaccount"):
        return KaleLikeError(f"'{raw}'{place}: {SERVICE_ACCOUNT_PER_RUN[0]}", where, SERVICE_ACCOUNT_PER_RUN[1])
    return KaleLikeError(f"unknown tag '{raw}'{place}", where, unknown_tag_hint(raw))


def unknown_tag_hint(raw: str) -> str:
    """A suggestion for a tag that did not parse, naming the closest valid form."""
    prefix = raw.split(":", 1)[0]
    if prefix in ("step", "block", "prev"):
        return f"step names are lowercase letters, digits and '_', e.g. '{prefix}:load_data'"
    if prefix == "notebook":
        return "notebook composition ('notebook:' cells) is not supported; call a @pipeline instead"
    for kind, (pattern, meaning) in TAG_GRAMMAR.items():
        if prefix == kind.split("-")[0] and ":" in pattern:
            fixed = _repaired(kind, raw.strip())
            if fixed:
                return f"did you mean '{fixed}'? ('{kind}' tags look like {pattern_example(kind)}: {meaning})"
            return f"'{kind}' tags look like {pattern_example(kind)} ({meaning})"
    guess = did_you_mean(prefix.lower(), [*TAG_GRAMMAR, "block"])
    if guess:
        fixed = guess + raw.strip()[len(prefix):]
        meaning = TAG_GRAMMAR.get(guess, TAG_GRAMMAR["step"])[1]
        if parse_tag(fixed) is not None:
            return f"did you mean '{fixed}'? ({meaning})"
        return f"did you mean a '{guess}' tag? It looks like {pattern_example(guess)} ({meaning})"
    return "known tags: " + ", ".join(pattern_example(k) for k in TAG_GRAMMAR)


_YES = ("true", "yes", "on", "1", "enable", "enabled", "y")
_NO = ("false", "no", "off", "0", "disable", "disabled", "n", "none")


def _repaired(kind: str, raw: str) -> str:
    """The tag of `kind` a mistyped `raw` most likely meant ('' when none is clear): `=` written for
    `:` (env:A=1), a boolean for enabled|disabled (cache:false), a close spelling of a choice."""
    rest = raw.split(":", 1)[1] if ":" in raw else ""
    candidates = [f"{kind}:{rest.replace('=', ':', 1)}", f"{kind}:{rest.replace('=', ':')}"]
    choices = re.findall(r"\(\?P<\w+>((?:\w+\|)+\w+)\)", TAG_GRAMMAR[kind][0])
    if choices and ":" not in rest:
        options = choices[0].split("|")
        word = rest.strip().lower()
        if set(options) == {"enabled", "disabled"} and word in _YES + _NO:
            candidates.append(f"{kind}:{'enabled' if word in _YES else 'disabled'}")
        guess = did_you_mean(word, options)
        if guess:
            candidates.append(f"{kind}:{guess}")
    candidates.append(f"{kind}:{rest.lower()}")
    return next((fixed for fixed in candidates if fixed != raw and parse_tag(fixed) is not None), "")


def pattern_example(kind: str) -> str:
    """A human example of each tag kind (used in messages and the README)."""
    return {
        "step": "step:NAME",
        "prev": "prev:NAME",
        "image": "image:REF",
        "limit": "limit:RESOURCE:VALUE",
        "request": "request:RESOURCE:VALUE",
        "cache": "cache:enabled|disabled",
        "retries": "retries:N[:BACKOFF]",
        "secret": "secret:SECRET:KEY:ENV",
        "annotation": "annotation:KEY:VALUE",
        "label": "label:KEY:VALUE",
        "env": "env:NAME:VALUE",
        "packages": "packages:PKG[,PKG...]",
        "report": "report:enabled|disabled",
        "node": "node:LABEL:VALUE",
        "toleration": "toleration:KEY:VALUE:EFFECT",
        "display": "display:NAME",
        "timeout": "timeout:SECONDS",
        "foreach": "foreach:ITEM:LIST",
        "parallelism": "parallelism:N",
        "when": "when:NAME[:OP:VALUE]",
    }.get(kind, kind)


def grammar_json() -> str:
    """The grammar as JSON, for the JupyterLab panel (generated, never hand-copied)."""
    rows = [
        {"kind": kind, "pattern": pattern, "example": pattern_example(kind), "meaning": meaning}
        for kind, (pattern, meaning) in TAG_GRAMMAR.items()
    ]
    return json.dumps({"name": NAME, "cellKinds": list(CELL_KINDS), "tags": rows}, indent=2)
