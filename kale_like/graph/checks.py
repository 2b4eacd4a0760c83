"""Checks on a built graph for KFP's known failure modes, before anything is compiled.

- A pipeline parameter that looks like a credential (by name or value) is refused: parameter
  values are stored in the KFP database and shown in its UI. Secrets belong in Kubernetes secrets
  (`secrets=` on `@step`, or the `secret:SECRET:KEY:ENV` tag). `allow_secret_like` overrides.
- A loop without `parallelism` over a step that asks for a GPU gets a warning: every iteration
  asks for a GPU at once.
"""

from __future__ import annotations

import re

from kale_like.errors import KaleLikeError, SourceLocation
from kale_like.graph.model import Loop, Step, StepGraph, walk

_SECRET_WORDS = {"password", "passwd", "passphrase", "secret", "secrets", "token", "tokens", "apikey", "credential",
                 "credentials", "privatekey", "accesskey", "secretkey", "authtoken", "bearer"}
_SECRET_PAIRS = {("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key"), ("auth", "token"),
                 ("client", "secret")}
_SECRET_VALUE = re.compile(
    r"^(sk-[A-Za-z0-9_-]{16,}|sk_(live|test)_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,}|"
    r"AKIA[0-9A-Z]{16}|xox[abpr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"
    r"\..*|-----BEGIN [A-Z ]*PRIVATE KEY-----.*)$", re.DOTALL)


_MODULE_NAMES = {"dsl", "compiler", "kubernetes", "os", "List", "NamedTuple", "Dataset", "Input", "Output",
                 "Metrics", "pipeline"}


def check_graph(graph: StepGraph, allow_secret_like: bool = False) -> list[str]:
    """Raise for refused parameters; return warnings."""
    clashes = [p for p in _all_parameters(graph) if p.name in _MODULE_NAMES]
    if clashes:
        parameter = clashes[0]
        raise KaleLikeError(f"pipeline parameter '{parameter.name}' has a name the generated KFP module needs",
                            parameter.location or SourceLocation(graph.source), "rename the parameter")
    if not allow_secret_like:
        problems = [_secret_problem(graph, p) for p in _all_parameters(graph)]
        errors = [p for p in problems if p is not None]
        if errors:
            from kale_like.errors import raise_collected

            raise_collected(errors)
    return _gpu_loop_warnings(graph)


def _all_parameters(graph: StepGraph):
    yield from graph.parameters
    for sub in graph.subpipelines:
        yield from sub.parameters


def secret_like_name(name: str) -> str:
    """The word of `name` that reads like a credential ('' if none): api_key, dbPassword, TOKEN."""
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", name.replace("-", "_"))]
    for word in words:
        if word in _SECRET_WORDS:
            return word
    for pair in zip(words, words[1:]):
        if pair in _SECRET_PAIRS:
            return "_".join(pair)
    return ""


def secret_like_value(value: object, depth: int = 0) -> bool:
    """A string that looks like a credential, anywhere inside the value."""
    if depth > 20:
        return False
    if isinstance(value, str):
        return bool(_SECRET_VALUE.match(value.strip()))
    if isinstance(value, dict):
        return any(secret_like_value(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(secret_like_value(v, depth + 1) for v in value)
    return False


def _secret_problem(graph: StepGraph, parameter) -> KaleLikeError | None:
    # only text can be a credential: an int named max_tokens is not one
    by_name = secret_like_name(parameter.name) if parameter.type == "str" else ""
    by_value = secret_like_value(parameter.default)
    if not (by_name or by_value):
        return None
    why = f"its name contains '{by_name}'" if by_name else "its default value looks like a credential"
    return KaleLikeError(
        f"pipeline parameter '{parameter.name}' looks like a secret ({why}); KFP stores and shows parameter values",
        parameter.location or SourceLocation(graph.source),
        "read it from a Kubernetes secret instead: @step(secrets={'ENV_NAME': 'secret-name/key'}) or the tag "
        "secret:SECRET:KEY:ENV (use --allow-secret-like-params if it is not a secret)",
    )


def _gpu_loop_warnings(graph: StepGraph) -> list[str]:
    warnings = []
    bodies = [graph.body] + [sub.body for sub in graph.subpipelines]
    for body in bodies:
        for node in walk(body):
            if isinstance(node, Loop) and not node.parallelism:
                gpu_steps = [s.name for s in walk(node.body) if isinstance(s, Step) and _asks_gpu(s)]
                if gpu_steps:
                    warnings.append(
                        f"{node.location.render()}: the loop runs step(s) {', '.join(gpu_steps)} that ask for a GPU "
                        "with no parallelism limit: every iteration asks for a GPU at once; set parallelism")
    return warnings


def _asks_gpu(step: Step) -> bool:
    return any(resource not in ("cpu", "memory") for resource, _ in step.settings.limits)
