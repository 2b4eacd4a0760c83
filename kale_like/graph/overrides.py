"""Command-line (or API) overrides applied to a built graph: a new graph, never a mutation."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import replace

from kale_like.errors import KaleLikeError, SourceLocation
from kale_like.graph.model import Parameter, StepGraph
from kale_like.kfp_server import ServerVersion
from kale_like.graph.types import outer

_PIPELINE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,126}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SERVICE_ACCOUNT_PER_RUN = (
    "KFP sets the service account per run (or recurring run), for every step of it: it cannot be set per step",
    "set it for the whole pipeline: notebook metadata kubeflow_notebook.service_account, "
    "@pipeline(service_account=...), or --service-account on the command line",
)


def checked_service_account(value: object, origin: str, where: SourceLocation | None) -> str:
    """A Kubernetes service account name (stripped), or a KaleLikeError naming `origin`."""
    text = str(value).strip() if isinstance(value, str) else None
    if text is None or (text and (len(text) > 253 or not _DNS_SUBDOMAIN.match(text))):
        raise KaleLikeError(
            f"{origin} {value!r} is not a Kubernetes service account name",
            where,
            "lowercase letters, digits, '-' and '.', e.g. 'pipeline-runner'",
        )
    return text


def apply_overrides(
    graph: StepGraph,
    *,
    name: str | None = None,
    experiment: str | None = None,
    image: str | None = None,
    params: dict[str, str] | None = None,
    pip_index_urls: list[str] | None = None,
    cache: bool | None = None,
    service_account: str | None = None,
    kfp_version: str | None = None,
    kfp_version_origin: str = "--kfp-version",
    max_workflow_bytes: int | None = None,
) -> StepGraph:
    """Return `graph` with the given settings replaced; only what is given changes.

    `kfp_version_origin` names where a bad `kfp_version` came from (the flag, the panel's setting)."""
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
    if service_account is not None:
        settings = replace(settings, service_account=checked_service_account(service_account, "--service-account",
                                                                             None))
    if kfp_version is not None:
        settings = replace(settings, kfp_version=str(ServerVersion.parse(kfp_version, kfp_version_origin)))
    if max_workflow_bytes is not None:
        settings = replace(settings, max_workflow_bytes=max_workflow_bytes)
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
        expected = {"list": list, "dict": dict}[outer(kind)]
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
