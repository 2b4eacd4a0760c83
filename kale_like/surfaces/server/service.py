"""The work behind the REST handlers, as plain blocking functions (the handlers run them in threads).

Each function takes paths already checked by `paths.py` and returns JSON-ready data, or raises
`ServiceError` with an HTTP status and the message to show. Analyzer problems are reported exactly
as the command line prints them (`error: <place>: <message>` and the hint), with their location as
data so the panel can put each on its cell.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kale_like.errors import InternalError, KaleLikeError, KaleLikeErrors
from kale_like.surfaces.graph_layout import layout
from kale_like.surfaces.server.paths import inside_root, relative_to_root

if TYPE_CHECKING:
    from kale_like.backends.kfp.deploy import KfpTarget, Uploaded  # imported where used: loading kfp is slow
    from kale_like.graph.model import StepGraph

_COMPILE_LOCK = threading.Lock()  # kfp's compiler imports generated modules: one at a time


class ServiceError(Exception):
    """A failure to report to the panel: HTTP status, a message, and optional details."""

    def __init__(self, status: int, message: str, **details: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details

    def payload(self) -> dict:
        return {"ok": False, "message": self.message, **self.details}


# ---------------------------------------------------------------------------------------------
# analysis


def analyze(root: str, source: Path, notebook: dict | None = None) -> dict:
    """The step graph of `source` (or of the unsaved `notebook` content the panel sends for it)."""
    display = relative_to_root(root, source)
    with _content(source, notebook) as path:
        return _analyzed(path, display, str(path))


@contextmanager
def _content(source: Path, notebook: dict | None) -> Iterator[Path]:
    """The file to read: `source`, or a scratch copy holding the unsaved `notebook` content sent for it."""
    if notebook is None:
        yield source
        return
    if source.suffix != ".ipynb":
        raise ServiceError(400, "notebook content can only be sent for an .ipynb path")
    with tempfile.TemporaryDirectory(prefix="kale_like_panel_") as scratch:
        copy = Path(scratch) / source.name
        copy.write_text(json.dumps(notebook), encoding="utf-8")
        yield copy


def section_tags_of(root: str, source: Path, notebook: dict | None = None, one_step: bool = False) -> dict:
    """The tags that make a notebook without tags a tagged one: a step per `#`/`##` heading (or one
    step for the whole notebook), computed by `notebook_sections.section_tags`, for the panel to
    write into the cells (each named by its index among all cells and its id)."""
    from kale_like.errors import cell_name
    from kale_like.frontends.notebook import _defines_pipeline_function
    from kale_like.frontends.notebook_reader import read_notebook
    from kale_like.frontends.notebook_sections import section_tags

    display = relative_to_root(root, source)
    if source.suffix != ".ipynb":
        raise ServiceError(400, f"'{display}' is not a notebook: steps are made from the headings of an .ipynb file")
    with _content(source, notebook) as path:
        try:
            raw = read_notebook(path)
        except KaleLikeError as error:
            raise analyzer_error(error, lambda text: text.replace(str(path), display)) from None
    tagged = next((cell for cell in raw.cells if cell.tags), None)
    if tagged is not None:
        raise ServiceError(409, f"{display}: {cell_name(tagged.index)} is already tagged ({', '.join(tagged.tags)}); "
                                "steps are made from the headings only for a notebook without tags: edit its "
                                "tags in the panel instead")
    if not one_step and _defines_pipeline_function(raw.cells):
        raise ServiceError(409, f"{display}: its cells define @pipeline functions, which make the pipeline; "
                                "tags would replace them")
    tags = section_tags(raw, one_step)
    ids = {cell.index: cell.cell_id for cell in raw.cells}
    steps = list(dict.fromkeys(tag[len("step:"):] for found in tags.values() for tag in found
                               if tag.startswith("step:")))
    return {"ok": True, "path": display, "one_step": one_step, "steps": steps,
            "cells": [{"index": index, "id": ids[index], "tags": list(found)} for index, found in sorted(tags.items())]}


def _analyzed(path: Path, display: str, shown_as: str) -> dict:
    from kale_like.graph.checks import check_graph
    from kale_like.surfaces.api import load_graph

    def fix(text: str) -> str:
        return text.replace(shown_as, display)

    try:
        graph = load_graph(path)
        warnings = list(graph.warnings) + check_graph(graph)
    except KaleLikeError as error:
        if path.suffix == ".ipynb":  # (read again only here: each edit's analysis reads the file once)
            from kale_like.frontends.notebook_reader import read_notebook

            try:
                read_notebook(path)
            except KaleLikeError as unreadable:  # a file that is no notebook at all: a bad request (400)
                raise analyzer_error(unreadable, fix) from None
        # problems in the notebook are the analysis' normal answer (200), with the graph of the
        # notebook without the tags they are on, for the panel to show (marked stale) meanwhile
        problems = analyzer_error(error, fix)
        return {"ok": False, "path": display, "message": problems.message, **problems.details,
                "graph": _graph_without_bad_tags(path, error, fix)}
    except InternalError as error:
        raise ServiceError(500, f"internal error: {fix(str(error))}") from None
    except Exception as error:  # a kale_like bug: say so, keep the traceback in the server log
        traceback.print_exc()
        raise ServiceError(500, f"internal error: {type(error).__name__}: {fix(str(error))} (a kale_like bug)")
    return {"ok": True, "path": display, "graph": graph_payload(graph, fix), "warnings": [fix(w) for w in warnings]}


_KIND_TAGS = ("step", "imports", "functions", "pipeline-parameters", "pipeline-metrics", "skip", "exit-handler")


def _graph_without_bad_tags(path: Path, error: KaleLikeError, fix, rounds: int = 3) -> dict | None:
    """The graph payload of the notebook with the tags of the cells the problems are on cut to their
    kind (`step:NAME`, `imports`, ...: `prev:`, `when:`, settings and tags that do not parse go); None
    when the problems are elsewhere (in code) or the graph still does not load. A problem leaves the
    rest of the pipeline worth seeing: its graph and parameters."""
    from kale_like.frontends.tags import parse_tag
    from kale_like.surfaces.api import load_graph

    if path.suffix != ".ipynb":
        return None
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        cells = content["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    with tempfile.TemporaryDirectory(prefix="kale_like_panel_") as scratch:
        copy = Path(scratch) / path.name
        for _ in range(rounds):
            errors = error.errors if isinstance(error, KaleLikeErrors) else [error]
            changed = False
            for problem in errors:
                index = problem.location.cell_index if problem.location else None
                if index is None or not 0 <= index < len(cells) or not isinstance(cells[index], dict):
                    return None
                metadata = cells[index].setdefault("metadata", {})
                tags = metadata.get("tags") or []
                kinds = [(tag, parse_tag(tag)) for tag in tags if isinstance(tag, str)]
                kept = [tag for tag, parsed in kinds if parsed is not None and parsed.kind in _KIND_TAGS][:1]
                if kept != tags:
                    metadata["tags"], changed = kept, True
            if not changed:
                return None
            copy.write_text(json.dumps(content), encoding="utf-8")
            try:
                graph = load_graph(copy)
            except KaleLikeError as again:
                error = again
                continue
            except Exception:  # the fallback is a courtesy: never a failure of its own
                return None
            shown = str(copy)
            return graph_payload(graph, lambda text: fix(text.replace(shown, str(path))))
    return None


def analyzer_error(error: KaleLikeError, fix=lambda text: text) -> ServiceError:
    """400 with the CLI's message and each problem's location."""
    errors = error.errors if isinstance(error, KaleLikeErrors) else [error]
    return ServiceError(
        400,
        fix(f"error: {error.render()}"),
        errors=[
            {
                "message": fix(e.message),
                "hint": fix(e.hint),
                "rendered": fix(f"error: {e.render()}"),
                "location": _location(e, fix),
            }
            for e in errors
        ],
    )


def _location(error: KaleLikeError, fix) -> dict | None:
    if error.location is None:
        return None
    data = asdict(error.location)
    data["path"] = fix(data["path"])
    return data


def graph_payload(graph, fix=lambda text: text) -> dict:
    """What the panel draws: steps (with their cells), edges with variable names, the body tree."""
    document = json.loads(graph.to_json())
    steps = []
    for step, data in zip(graph.steps, document["steps"]):
        cells = cells_of(step)
        data.pop("code", None)
        data.pop("prelude", None)
        data["cells"] = cells
        data["upstream"] = list(step.upstream)
        data["location"] = _fix_location(data.get("location"), fix)
        steps.append(data)
    for parameter in document["parameters"]:
        parameter["location"] = _fix_location(parameter.get("location"), fix)
        parameter["default_text"] = value_text(parameter.get("default"))
    payload = {
        "source": fix(document["source"]),
        "settings": document["settings"],
        "parameters": document["parameters"],
        "metrics": document["metrics"],
        "steps": steps,
        "edges": document["edges"],
        "body": document["body"],
        "subpipelines": [{"name": s["name"]} for s in document["subpipelines"]],
        "exit_step": {"name": graph.exit_step.name, "cells": cells_of(graph.exit_step)} if graph.exit_step else None,
    }
    payload["layout"] = layout(payload).to_dict()  # the notebook widget draws the same (graph_layout.py)
    return payload


def value_text(value: object) -> str:
    """A parameter value as the panel shows and edits it: a string as it is, anything else as JSON
    written by Python, so a float keeps its type (`1.0`, which a browser's JSON would turn into `1`)."""
    return value if isinstance(value, str) else json.dumps(value)


def cells_of(step) -> list[int]:
    """The notebook cells (from 0) a step's code comes from, for the panel's links to them."""
    return sorted({block.location.cell_index for block in step.code if block.location.cell_index is not None})


def _fix_location(location, fix):
    if isinstance(location, dict) and isinstance(location.get("path"), str):
        location = {**location, "path": fix(location["path"])}
    return location


# ---------------------------------------------------------------------------------------------
# compilation


def output_paths(root: str, source: Path, output_folder: str = "") -> tuple[Path, Path]:
    """Where Compile writes: next to the source, or in `output_folder` (relative to it, inside the root)."""
    folder = source.parent
    if output_folder and output_folder.strip() not in ("", "."):
        relative_folder = Path(relative_to_root(root, source)).parent / output_folder.strip()
        folder = inside_root(root, relative_folder.as_posix(), must_exist=False)
    return folder / f"{source.stem}.yaml", folder / f"{source.stem}_kfp.py"


def load_for_compile(source: Path, image: str = "", kfp_version: str = ""):
    """The graph to compile: the saved file, with the panel's default image when the notebook sets none,
    and the panel's KFP server version when one is set (it overrides the pipeline's own, as
    `--kfp-version` does: the panel's setting names the server the user deploys to)."""
    from kale_like.graph.checks import check_graph
    from kale_like.graph.overrides import apply_overrides
    from kale_like.surfaces.api import load_graph

    graph = load_graph(source)
    if image and not _notebook_sets_image(source):
        graph = apply_overrides(graph, image=image)
    if kfp_version.strip():
        graph = apply_overrides(graph, kfp_version=kfp_version, kfp_version_origin=PANEL_VERSION)
    warnings = list(graph.warnings) + check_graph(graph)
    return graph, warnings


PANEL_VERSION = "the KFP server version setting (Settings → kale_like pipelines)"


def _notebook_sets_image(source: Path) -> bool:
    if source.suffix != ".ipynb":
        return True  # @pipeline files carry their own settings
    try:
        meta = json.loads(source.read_text(encoding="utf-8")).get("metadata", {}).get("kubeflow_notebook") or {}
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(meta, dict) and bool(meta.get("base_image") or meta.get("docker_image"))


def compile_source(root: str, source: Path, output_folder: str = "", image: str = "",
                   kfp_version: str = "") -> dict:
    """Compile the saved source to KFP YAML (and the DSL module) next to it; paths and a preview.

    What the target KFP server cannot run is a 400 naming the task; what it may get wrong is a warning."""
    from kale_like.backends.kfp.compile import compile_graph
    from kale_like.backends.kfp.output_files import write_outputs
    from kale_like.backends.kfp.server_checks import server_warnings

    yaml_path, dsl_path = output_paths(root, source, output_folder)
    display = relative_to_root(root, source)

    def fix(text: str) -> str:
        return text.replace(str(source), display)

    try:
        graph, warnings = load_for_compile(source, image, kfp_version)
        with _COMPILE_LOCK:
            compiled = compile_graph(graph, yaml_path.name)
        warnings += server_warnings(compiled.yaml_text, graph)
        write_outputs(compiled, yaml_path, dsl_path)
    except KaleLikeError as error:
        raise analyzer_error(error, fix) from None
    except InternalError as error:
        raise ServiceError(500, f"internal error: {error}") from None
    except OSError as error:
        raise ServiceError(500, f"cannot write {yaml_path.name}: {error.strerror or error}") from None
    text = compiled.yaml_text
    return {
        "ok": True,
        "yaml_path": relative_to_root(root, yaml_path),
        "dsl_path": relative_to_root(root, dsl_path),
        "pipeline": graph.settings.name,
        "kfp_version": graph.settings.kfp_version,
        "steps": len(graph.all_steps),
        "bytes": len(text.encode()),
        "preview": text[:6000],
        "truncated": len(text) > 6000,
        "warnings": [fix(w) for w in warnings],
        "graph": graph,  # for upload/schedule; dropped before answering
    }


# ---------------------------------------------------------------------------------------------
# Kubeflow Pipelines


def kfp_target(host: str, namespace: str = "", timeout: float = 30.0):
    from kale_like.backends.kfp import deploy

    token = deploy.read_token(env="KFP_TOKEN")
    return deploy.KfpTarget(host.strip().rstrip("/"), namespace.strip() or None, token, timeout)


def kfp_status(host: str, namespace: str = "") -> dict:
    """Is a KFP API reachable at `host`? Answers within a few seconds, never raises."""
    if not host.strip():
        return {"configured": False, "reachable": False,
                "message": "No Kubeflow Pipelines host is set. Compile and Run locally work without one; "
                           "set the host in Settings → kale_like to upload and schedule."}
    from kale_like.backends.kfp import deploy

    target = kfp_target(host, namespace, timeout=5.0)
    if not target.host.startswith(("http://", "https://")):
        return {"configured": True, "reachable": False, "host": target.host,
                "message": f"'{target.host}' is not an http(s) address", "hint": "e.g. http://localhost:8080"}
    try:
        deploy.health_check(target)
    except deploy.DeployError as error:
        return {"configured": True, "reachable": False, "host": target.host, "message": str(error),
                "hint": error.hint}
    return {"configured": True, "reachable": True, "host": target.host, "namespace": target.namespace or "",
            "message": f"connected to {target.host}"}


def typed_params(graph, params: dict) -> dict:
    """Run arguments from the panel's text fields, read as each parameter's declared type."""
    from kale_like.errors import SourceLocation
    from kale_like.graph.overrides import parse_value

    declared = {p.name: p for p in graph.parameters}
    result = {}
    for name, text in (params or {}).items():
        if name not in declared:
            raise ServiceError(400, f"the pipeline has no parameter '{name}'")
        try:
            value = parse_value(declared[name], str(text), SourceLocation(graph.source))
        except KaleLikeError as error:
            raise ServiceError(400, f"error: {error.render()}") from None
        if value != declared[name].default:
            result[name] = value
    return result


@dataclass(frozen=True)
class _Uploaded:
    """A compiled source uploaded as a new pipeline version, with what a run or schedule of it needs."""

    compiled: dict
    graph: StepGraph
    arguments: dict
    target: KfpTarget
    client: Any  # kfp.Client (kfp has no type hints)
    version: Uploaded
    experiment: str
    service_account: str | None


def _compile_and_upload(root: str, source: Path, host: str, namespace: str, params: dict | None,
                        output_folder: str, image: str, service_account: str, kfp_version: str = "") -> _Uploaded:
    """Compile the saved source, check the run arguments, upload a new version; the run's service
    account is the request's, else the pipeline's own (notebook metadata / @pipeline)."""
    from kale_like.backends.kfp import deploy
    from kale_like.graph.overrides import checked_service_account

    compiled = compile_source(root, source, output_folder, image, kfp_version)
    graph = compiled.pop("graph")
    arguments = typed_params(graph, params or {})
    try:
        account = checked_service_account(service_account, "service account", None)
    except KaleLikeError as error:
        raise ServiceError(400, f"error: {error.render()}") from None
    target = kfp_target(host, namespace)
    try:
        client = deploy.connect(target)
        version = deploy.upload(client, target, Path(root) / compiled["yaml_path"], graph.settings.name,
                                graph.settings.description)
        experiment = deploy.experiment_id(client, target, graph.settings.experiment or "Default")
    except deploy.DeployError as error:
        raise _deploy_failure(error) from None
    return _Uploaded(compiled, graph, arguments, target, client, version, experiment,
                     account or graph.settings.service_account or None)


def upload_and_run(root: str, source: Path, host: str, namespace: str = "", run_name: str = "",
                   params: dict | None = None, output_folder: str = "", image: str = "",
                   service_account: str = "", kfp_version: str = "") -> dict:
    """Compile, upload a new version, start a run of it; the run's link."""
    import time

    from kale_like.backends.kfp import deploy

    up = _compile_and_upload(root, source, host, namespace, params, output_folder, image, service_account,
                             kfp_version)
    settings = up.graph.settings
    name = run_name.strip() or f"{settings.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        run_id = deploy.start_run(up.client, up.target, up.experiment, name, up.version, up.arguments,
                                  up.service_account)
    except deploy.DeployError as error:
        raise _deploy_failure(error) from None
    return {"ok": True, "yaml_path": up.compiled["yaml_path"], "pipeline_id": up.version.pipeline_id,
            "version_id": up.version.version_id, "version_name": up.version.version_name, "run_id": run_id,
            "run_name": name, "experiment": settings.experiment or "Default",
            "run_url": deploy.ui_link(up.target, run_id), "host": up.target.host,
            "service_account": up.service_account or "", "kfp_version": up.compiled["kfp_version"],
            "warnings": up.compiled["warnings"]}


def cron_preview(expression: str) -> dict:
    """The KFP form of a cron expression and its next three fire times (UTC)."""
    from kale_like.graph.cron import next_fire_times, to_kfp_cron

    try:
        kfp_cron, plain = to_kfp_cron((expression or "").strip())
    except KaleLikeError as error:
        raise ServiceError(400, f"error: {error.render()}") from None
    times = next_fire_times(plain, 3)
    return {"ok": True, "cron": plain, "kfp_cron": kfp_cron,
            "next": [t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC (%a)") for t in times]}


def schedule(root: str, source: Path, host: str, cron: str, namespace: str = "", name: str = "",
             params: dict | None = None, output_folder: str = "", image: str = "", max_concurrency: int = 1,
             enabled: bool = True, service_account: str = "", kfp_version: str = "") -> dict:
    """Compile, upload a new version and create a recurring run of it."""
    from kale_like.backends.kfp import deploy

    preview = cron_preview(cron)  # checked before any network call
    if int(max_concurrency) < 1:
        raise ServiceError(400, "max concurrency must be at least 1")
    up = _compile_and_upload(root, source, host, namespace, params, output_folder, image, service_account,
                             kfp_version)
    job_name = name.strip() or f"{up.graph.settings.name}-schedule"
    try:
        job = deploy.schedule(up.client, up.target, up.experiment, job_name, preview["kfp_cron"], up.version,
                              up.arguments, int(max_concurrency), False, bool(enabled), up.service_account)
    except deploy.DeployError as error:
        raise _deploy_failure(error) from None
    return {"ok": True, "recurring_run_id": job, "name": job_name, "kfp_cron": preview["kfp_cron"],
            "next": preview["next"], "host": up.target.host, "yaml_path": up.compiled["yaml_path"],
            "version_name": up.version.version_name, "service_account": up.service_account or "",
            "kfp_version": up.compiled["kfp_version"], "warnings": up.compiled["warnings"]}


def _deploy_failure(error) -> ServiceError:
    message = f"error: {error}" + (f"\n  hint: {error.hint}" if error.hint else "")
    return ServiceError(400 if error.user_error else 502, message)


def environment_host() -> str:
    """A KFP host the server's environment names (the kfp SDK's variable), if any."""
    return os.environ.get("KF_PIPELINES_ENDPOINT", "")
