"""Command-line (or API) overrides applied to a built graph: a new graph, never a mutation."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import replace

from kale_like.errors import KaleLikeError, SourceLocation
from kale_like.graph.model import Parameter, StepGraph

_PIPELINE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,126}[a-z0-9])?$")


def apply_overrides(
    graph: StepGraph,
    *,
    name: str | None = None,
    experiment: str | None = None,
    image: str | None = None,
    params: dict[str, str] | None = None,
    pip_index_urls: list[str] | None = None,
    cache: bool | None = None,
) -> StepGraph:
    """Return `graph` with the given settings replaced; only what is given changes."""
    where = SourceLocation(graph.source)
    settings = graph.settings
    if name is not None:
        settings = replace(settings, name=name)
    if experiment is not None:
        settings = replace(settings, experiment=experiment)
    if image is not None:
        settings = replace(settings, image=image)
    if pip_index_urls:
        settings = replace(settings, pip_index_urls=tuple(pip_index_urls))
    if cache is not None:
        settings = replace(settings, cache=cache)
    if not _PIPELINE_NAME.match(settings.name):
        raise KaleLikeError(
            f"pipeline name '{settings.name}' is not valid for Kubeflow Pipelines",
            where,
            "use lowercase letters, digits and '-', starting and ending with a letter or digit",
        )
    parameters = list(graph.parameters)
    by_name = {p.name: i for i, p in enumerate(parameters)}
    for key, text in (params or {}).items():
        if key not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            raise KaleLikeError(f"--param {key}: the pipeline has no such parameter", where, f"parameters: {known}")
        index = by_name[key]
        parameters[index] = replace(parameters[index], default=parse_value(parameters[index], text, where))
    return replace(graph, settings=settings, parameters=tuple(parameters))


def parse_value(parameter: Parameter, text: str, where: SourceLocation) -> object:
    """Read `text` as a value of the parameter's declared type."""
    kind = parameter.type
    try:
        if kind == "str":
            return text
        if kind == "bool":
            lowered = text.strip().lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise ValueError(text)
        if kind == "int":
            return int(text)
        if kind == "float":
            number = float(text)
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError(text)  # KFP parameters are JSON: no NaN or infinity
            return number
        value = _literal(text)
        expected = {"list": list, "dict": dict}[kind.partition(":")[0]]
        if isinstance(value, tuple) and kind == "list":
            value = list(value)
        if not isinstance(value, expected):
            raise ValueError(text)
        return value
    except (ValueError, SyntaxError):
        raise KaleLikeError(
            f"--param {parameter.name}={text}: not a valid {kind}",
            where,
            f"parameter '{parameter.name}' is declared {kind} (default {parameter.default!r})",
        ) from None


def _literal(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return ast.literal_eval(text)
