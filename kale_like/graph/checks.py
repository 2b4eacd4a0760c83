"""Checks on a built graph for KFP's known failure modes, before anything is compiled.

- A pipeline parameter or a step's environment variable (`env:` tag, `@step(env=...)`) that looks
  like a credential (by name or value, `credentials`) is refused: both are written in plain text
  into the YAML and the KFP module, and parameter values are stored in the KFP database and shown
  in its UI. Secrets belong in Kubernetes secrets (`secrets=` on `@step`, or the
  `secret:SECRET:KEY:ENV` tag). `allow_secret_like` overrides.
- A loop without `parallelism` over a step that asks for a GPU gets a warning: every iteration
  asks for a GPU at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from kale_like.errors import KaleLikeError, SourceLocation, raise_collected
from kale_like.graph.credentials import credential_name, credential_value
from kale_like.graph.model import Loop, Parameter, Step, StepGraph, all_refs, walk
from kale_like.graph.types import TypeName, outer


_MODULE_NAMES = {"dsl", "compiler", "kubernetes", "os", "List", "NamedTuple", "Dataset", "Input", "Output",
                 "Metrics", "pipeline"}


def check_graph(graph: StepGraph, allow_secret_like: bool = False) -> list[str]:
    """Raise for refused parameters; return warnings."""
    clashes = [p for p in _all_parameters(graph) if p.name in _MODULE_NAMES]
    if clashes:
        parameter = clashes[0]
        raise KaleLikeError(f"pipeline parameter '{parameter.name}' has a name the generated KFP module needs",
                            parameter.location or SourceLocation(graph.source), "rename the parameter")
    read = _parameters_read(graph)
    raise_collected([e for e in (_default_problem(graph, p, p.name in read) for p in _all_parameters(graph))
                     if e is not None])
    if not allow_secret_like:
        problems = [_secret_problem(graph, p) for p in _all_parameters(graph)]
        problems += [_secret_env_problem(step, name, value) for step in graph.all_steps
                     for name, value in step.settings.env]
        raise_collected([p for p in problems if p is not None])
    return _gpu_loop_warnings(graph)


def _all_parameters(graph: StepGraph) -> Iterator[Parameter]:
    yield from graph.parameters
    for sub in graph.subpipelines:
        yield from sub.parameters


def _secret_problem(graph: StepGraph, parameter: Parameter) -> KaleLikeError | None:
    # only text can be a credential: an int named max_tokens is not one
    by_name = credential_name(parameter.name) if parameter.type == "str" else ""
    by_value = credential_value(parameter.default)
    if not (by_name or by_value):
        return None
    why = f"its name contains '{by_name}'" if by_name else f"its default value looks like a credential ({by_value})"
    return KaleLikeError(
        f"pipeline parameter '{parameter.name}' looks like a secret ({why}); KFP stores and shows parameter values",
        parameter.location or SourceLocation(graph.source),
        "read it from a Kubernetes secret instead: @step(secrets={'ENV_NAME': 'secret-name/key'}) or the tag "
        "secret:SECRET:KEY:ENV (use --allow-secret-like-params if it is not a secret)",
    )


def _parameters_read(graph: StepGraph) -> set[str]:
    """The names of the parameters some task, loop, test or `return` reads (of any pipeline: a nested
    pipeline's parameter and the main one's alike), a value chosen by an `if` included."""
    pending, names = all_refs(graph), set()
    while pending:
        ref = pending.pop()
        if ref.kind == "parameter":
            names.add(ref.source)
        pending.extend(ref.options)
    return names


def _default_problem(graph: StepGraph, parameter: Parameter, read: bool = True) -> KaleLikeError | None:
    """A default the kfp compiler or the KFP server cannot take, or that contradicts the declared type."""
    where = parameter.location or SourceLocation(graph.source)
    if parameter.required:
        return None
    if parameter.default is None:
        if not read:  # an optional input nothing reads: KFP runs the pipeline without it
            return None
        # kfp declares the parameter optional without a default; the step reading it declares a required input,
        # and the KFP driver fails that task: "neither value nor default value provided for non-optional
        # parameter" (kubeflow/pipelines backend/src/v2/driver/resolve.go, resolveInputs), where Python passes None
        empty = _EMPTY.get(outer(parameter.type), "''")
        return KaleLikeError(
            f"pipeline parameter '{parameter.name}' has the default None, which KFP cannot pass to a step: a run "
            "without a value for it fails", where,
            f"give a default of its type and test for it in the step, e.g. {parameter.name}: {outer(parameter.type)} = "
            f"{empty} (then `if not {parameter.name}:`), or make it required (no default)")
    big = _inexact_int(parameter.default)
    if big is not None:
        whole = big is parameter.default
        fix = (f"declare it a str and convert it in the step: {parameter.name}: str = {str(big)!r}, then "
               f"int({parameter.name})") if whole else "pass such numbers as text (str), converted in the step by int()"
        return KaleLikeError(
            f"pipeline parameter '{parameter.name}' has {'the default' if whole else 'a default holding'} {big}, "
            f"beyond 2**53: KFP stores numbers as doubles and would round it to {float(big):.0f}", where, fix)
    problem = default_value_problem(parameter.default) or _type_mismatch(parameter.type, parameter.default)
    if not problem:
        return None
    return KaleLikeError(f"pipeline parameter '{parameter.name}' has a default KFP cannot take: {problem}", where,
                         "give a JSON value of the declared type (text, a whole or finite number, true/false, "
                         "a list or a dict with text keys, without None inside)")


_EMPTY = {"str": "''", "int": "0", "float": "0.0", "bool": "False", "list": "[]", "dict": "{}"}
LARGEST_EXACT_INT = 2**53  # a double holds every int up to this, and not all beyond it


def _inexact_int(value: object) -> int | None:
    """An int inside `value` that a double cannot hold exactly (the first found), or None."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, int) and not isinstance(item, bool) and abs(item) > LARGEST_EXACT_INT:
            return item
        if depth < 50 and isinstance(item, dict):
            pending.extend((child, depth + 1) for child in item.values())
        elif depth < 50 and isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
    return None


_KFP_SCALARS = (str, int, float, bool)
_SCALAR_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "list": (list,),
                 "dict": (dict,)}


def default_value_problem(value: object) -> str:
    """What makes `value` impossible as a KFP parameter value ('' if nothing): kfp's compiler takes
    str, int, float, bool, list and dict, and protobuf's Struct takes finite numbers, text keys
    and at most 100 levels of nesting (kfp `pipeline_spec_builder`, protobuf `struct_pb2`)."""
    pending = [(value, 0, "")]
    while pending:
        item, depth, where = pending.pop()
        if depth > 50:
            return f"the value nests more than 50 levels deep{where}"
        if isinstance(item, float) and not math.isfinite(item):
            return f"{item!r}{where} is not a finite number (JSON has no infinity or NaN)"
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return f"the key {key!r}{where} is not text (JSON object keys are text)"
                pending.append((child, depth + 1, f" (under {key!r})"))
        elif isinstance(item, list):
            pending.extend((child, depth + 1, f" (item {index})") for index, child in enumerate(item))
        elif item is None:
            return f"None{where} is not a value KFP can store inside a list or dict"
        elif item is Ellipsis:
            return f"...{where} is a placeholder, not a value"
        elif not isinstance(item, _KFP_SCALARS):
            return f"the {type(item).__name__} {item!r}{where} is not text, a number, true/false, a list or a dict"
    return ""


def _type_mismatch(declared: TypeName, value: object) -> str:
    kinds = _SCALAR_TYPES.get(outer(declared))
    if kinds is None:
        return ""
    if isinstance(value, bool) and bool not in kinds:
        return f"{value!r} is a bool, and the parameter is declared {declared}"
    if not isinstance(value, kinds):
        return f"{value!r} is a {type(value).__name__}, and the parameter is declared {declared}"
    return ""


_NOT_A_CREDENTIAL = {"", "true", "false", "yes", "no", "on", "off", "0", "1"}  # a switch named like one


def _secret_env_problem(step: Step, name: str, value: str) -> KaleLikeError | None:
    by_name = credential_name(name) if value.strip().lower() not in _NOT_A_CREDENTIAL else ""
    by_value = credential_value(value)
    if not (by_name or by_value):
        return None
    why = f"its name contains '{by_name}'" if by_name else f"its value looks like a credential ({by_value})"
    return KaleLikeError(
        f"environment variable '{name}' of step '{step.name}' looks like a secret ({why}); its value would be "
        "written in plain text into the pipeline YAML and the KFP module",
        step.location,
        f"put the value in a Kubernetes secret and expose it instead: the tag secret:SECRET:KEY:{name} or "
        f"@step(secrets={{'{name}': 'secret-name/key'}}) (kfp: kubernetes.use_secret_as_env) "
        "(use --allow-secret-like-params if it is not a secret)",
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
