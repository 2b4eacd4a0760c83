"""Pipeline identity and per-step run settings, from notebook metadata and cell tags.

Kale keeps pipeline settings in the notebook metadata `kubeflow_notebook`. Known keys are honoured;
keys Kale no longer reads (like `docker_image`) or that kale_like does not support produce a
warning, never a failure, so a Kale user's notebook works as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kale_like.errors import KaleLikeError, SourceLocation
from kale_like.frontends.setting_shapes import shape_problem
from kale_like.frontends.tags import GPU_RESOURCES, KNOWN_RESOURCES, Tag, parse_tag, unknown_tag_error
from kale_like.graph.model import PipelineSettings, Secret, StepSettings
from kale_like.graph.overrides import checked_service_account
from kale_like.kfp_server import ServerVersion

_HONOURED = {"pipeline_name", "experiment_name", "experiment", "pipeline_description", "base_image",
             "enable_caching", "steps_defaults", "pip_index_urls", "service_account", "kfp_version"}
_IGNORED_IF_EMPTY = {"docker_image", "volumes", "katib_run", "katib_metadata", "snapshot_volumes",
                     "autosnapshot", "storage_class_name", "volume_access_mode", "abs_working_dir"}


def pipeline_name_from(text: str) -> str:
    """A valid KFP pipeline name (lowercase letters, digits, dashes) made from any text."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (name or "pipeline")[:128]


def pipeline_settings(metadata: dict, source: str) -> tuple[PipelineSettings, list[str]]:
    """Pipeline identity and defaults from `kubeflow_notebook` metadata, with warnings.

    Raises KaleLikeError for a service account that is not a Kubernetes name (a run must not fall
    back to another account silently) and for a `kfp_version` kale_like does not model (the checks
    and the local run would otherwise describe a server nobody deploys to)."""
    stem = Path(source).stem
    meta = metadata.get("kubeflow_notebook") or {}
    warnings = []
    if not isinstance(meta, dict):
        return PipelineSettings(pipeline_name_from(stem)), ["notebook metadata 'kubeflow_notebook' is not an object; ignored"]
    experiment = meta.get("experiment_name") or ""
    if not experiment and isinstance(meta.get("experiment"), dict):
        experiment = meta["experiment"].get("name") or ""
    image = meta.get("base_image") or ""
    for key in sorted(set(meta) - _HONOURED):
        value = meta[key]
        if key == "docker_image" and value and not image:
            image = value
            warnings.append("notebook metadata 'docker_image' is Kale's old key; used as base_image")
        elif key in _IGNORED_IF_EMPTY and not value:
            warnings.append(f"notebook metadata '{key}' is not used by kale_like; ignored")
        else:
            warnings.append(f"notebook metadata '{key}' is not supported by kale_like; ignored")
    name = meta.get("pipeline_name") or pipeline_name_from(stem)
    description = str(meta.get("pipeline_description") or "")
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in description):
        description = "".join(ch for ch in description if ord(ch) >= 32 or ch in "\n\t")
        warnings.append("notebook metadata 'pipeline_description' held control characters; removed")
    settings = PipelineSettings(
        name=str(name),
        description=description,
        experiment=str(experiment),
        cache=bool(meta.get("enable_caching", True)),
    )
    if image:
        settings = replace(settings, image=str(image))
    if meta.get("service_account") is not None:
        account = checked_service_account(meta["service_account"], "notebook metadata 'service_account'",
                                          SourceLocation(source))
        settings = replace(settings, service_account=account)
    if meta.get("kfp_version") is not None:
        version = ServerVersion.parse(meta["kfp_version"], "notebook metadata 'kubeflow_notebook.kfp_version'",
                                      SourceLocation(source))
        settings = replace(settings, kfp_version=str(version))
    urls = meta.get("pip_index_urls") or []
    if isinstance(urls, list) and all(isinstance(u, str) for u in urls):
        settings = replace(settings, pip_index_urls=tuple(urls))
    else:
        warnings.append("notebook metadata 'pip_index_urls' must be a list of URLs; ignored")
    return settings, warnings


@dataclass(frozen=True, slots=True)
class SettingsBuilder:
    """Applies tags on top of defaults (the notebook's `steps_defaults`, then the step's tags)."""

    defaults: StepSettings

    @classmethod
    def from_metadata(cls, metadata: dict, source: str, errors: list) -> SettingsBuilder:
        meta = metadata.get("kubeflow_notebook") or {}
        raw = meta.get("steps_defaults") or [] if isinstance(meta, dict) else []
        where = SourceLocation(source)
        tags = []
        for text in raw if isinstance(raw, list) else []:
            tag = parse_tag(str(text))
            if tag is None:
                errors.append(unknown_tag_error(str(text), where, " in notebook metadata steps_defaults"))
            else:
                tags.append((tag, where))
        return cls(_apply(StepSettings(), tags, errors))

    def with_tags(self, tags: list[tuple[Tag, SourceLocation]], errors: list) -> StepSettings:
        return _apply(self.defaults, tags, errors)


def _apply(settings: StepSettings, tags: list[tuple[Tag, SourceLocation]], errors: list) -> StepSettings:
    for tag, where in tags:
        kind = tag.kind
        if kind == "image":
            settings = replace(settings, image=tag.get("image"))
        elif kind in ("limit", "request"):
            resource, value = tag.required("resource"), tag.required("value")
            if resource not in KNOWN_RESOURCES and not resource.endswith(("/gpu", "/tpu")):
                errors.append(
                    KaleLikeError(
                        f"unknown resource '{resource}' in '{tag.raw}'",
                        where,
                        "resources are " + ", ".join(KNOWN_RESOURCES),
                    )
                )
                continue
            if kind == "request" and resource not in ("cpu", "memory"):
                errors.append(
                    KaleLikeError(
                        f"'{tag.raw}': only cpu and memory take requests",
                        where,
                        f"use limit:{resource}:{value} for accelerators",
                    )
                )
                continue
            problem = _resource_value_problem(resource, value)
            if problem:
                example = "limit:nvidia.com/gpu:1" if "GPU" in problem else f"{kind}:{resource}:500m"
                errors.append(KaleLikeError(f"{problem} in '{tag.raw}'", where, f"e.g. {example}"))
                continue
            field = "limits" if kind == "limit" else "requests"
            kept = tuple(item for item in getattr(settings, field) if item[0] != resource)
            changes: dict[str, Any] = {field: kept + ((resource, value),)}  # limits or requests
            settings = replace(settings, **changes)
        elif kind == "cache":
            settings = replace(settings, cache=tag.get("state") == "enabled")
        elif kind == "retries":
            if int(tag.required("count")) > 100:
                errors.append(KaleLikeError(f"'{tag.raw}': at most 100 retries", where, "e.g. retries:3"))
                continue
            settings = replace(settings, retries=int(tag.required("count")), retry_backoff=tag.get("backoff"))
        elif kind == "secret":
            secret = Secret(tag.required("secret"), tag.required("key"), tag.required("env"))
            settings = replace(settings, secrets=settings.secrets + (secret,))
        elif kind in ("annotation", "label", "env"):
            field = {"annotation": "annotations", "label": "labels", "env": "env"}[kind]
            item = (tag.required("key"), tag.required("value"))
            changes = {field: getattr(settings, field) + (item,)}  # annotations, labels or env
            settings = replace(settings, **changes)
        elif kind == "packages":
            extra = tuple(p for p in tag.required("packages").split(",") if p)
            settings = replace(settings, extra_packages=settings.extra_packages + extra)
        elif kind == "node":
            selector = tuple(i for i in settings.node_selector if i[0] != tag.required("key"))
            settings = replace(settings, node_selector=selector + ((tag.required("key"), tag.required("value")),))
        elif kind == "toleration":
            toleration = (tag.required("key"), tag.required("value"), tag.required("effect"))
            settings = replace(settings, tolerations=settings.tolerations + (toleration,))
        elif kind == "display":
            settings = replace(settings, display_name=tag.get("name"))
        elif kind == "timeout":
            if int(tag.required("seconds")) > INT32:
                errors.append(KaleLikeError(f"'{tag.raw}': the timeout is too long", where, "e.g. timeout:3600"))
                continue
            settings = replace(settings, timeout=int(tag.required("seconds")))
    return settings


_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


_CPU = re.compile(r"^([0-9]*[.])?[0-9]+m?$")  # what kfp's cpu setters accept
_MEMORY = re.compile(r"^[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?$")  # what kfp's memory setters accept
INT32 = 2**31 - 1


def _resource_value_problem(resource: str, value: str) -> str:
    if resource in GPU_RESOURCES or resource.endswith(("/gpu", "/tpu")):
        return "" if value.isdigit() and 0 < int(value) <= INT32 else f"GPU count must be a positive integer, not '{value}'"
    if resource == "cpu":
        return "" if _CPU.match(value) else f"'{value}' is not a CPU amount KFP accepts (e.g. 500m, 2, 0.5)"
    if resource == "memory":
        return "" if _MEMORY.match(value) else f"'{value}' is not a memory amount KFP accepts (e.g. 512Mi, 2Gi, 1G)"
    return "" if _QUANTITY.match(value) else f"'{value}' is not a Kubernetes quantity (e.g. 500m, 2, 1Gi)"


def step_settings_from(settings: dict, where: SourceLocation, errors: list) -> StepSettings:
    """`@step(...)` keyword settings, validated by the same rules as the cell tags (after their shape:
    `setting_shapes`)."""
    tags: list[str] = []
    for key, value in settings.items():
        problem = shape_problem(key, value)
        if problem is not None:
            errors.append(KaleLikeError(f"@step setting {problem[0]}", where, f"e.g. {problem[1]}"))
            continue
        if key in ("cpu", "memory"):
            tags.append(f"limit:{key}:{value}")
        elif key == "gpu":
            tags.append(f"limit:{settings.get('gpu_type', 'nvidia.com/gpu')}:{value}")
        elif key == "limits":
            tags += [f"limit:{k}:{v}" for k, v in dict(value).items()]
        elif key == "requests":
            tags += [f"request:{k}:{v}" for k, v in dict(value).items()]
        elif key == "image":
            tags.append(f"image:{value}")
        elif key == "retries":
            backoff = settings.get("retry_backoff")
            tags.append(f"retries:{value}" + (f":{backoff}" if backoff else ""))
        elif key == "cache":
            tags.append(f"cache:{'enabled' if value else 'disabled'}")
        elif key == "packages":
            tags.append("packages:" + ",".join(value if isinstance(value, (list, tuple)) else [value]))
        elif key == "secrets":
            for env, reference in dict(value).items():
                secret, _, secret_key = str(reference).partition("/")
                tags.append(f"secret:{secret}:{secret_key}:{env}")
        elif key == "node_selector":
            tags += [f"node:{k}:{v}" for k, v in dict(value).items()]
        elif key == "tolerations":
            for item in value if isinstance(value, (list, tuple)) else [value]:
                item = dict(item)
                tags.append(f"toleration:{item.get('key', '')}:{item.get('value', '')}:{item.get('effect', 'NoSchedule')}")
        elif key == "display_name":
            tags.append(f"display:{value}")
        elif key == "timeout":
            tags.append(f"timeout:{value}")
        elif key in ("env", "labels", "annotations"):
            kind = {"env": "env", "labels": "label", "annotations": "annotation"}[key]
            tags += [f"{kind}:{k}:{v}" for k, v in dict(value).items()]
    parsed = []
    for text in tags:
        tag = parse_tag(text)
        if tag is None:
            errors.append(KaleLikeError(f"invalid step setting: {text}", where))
        else:
            parsed.append((tag, where))
    return _apply(StepSettings(), parsed, errors)
