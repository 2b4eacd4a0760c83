"""A local run started from the panel, in its own process (so Stop can end it and everything it started).

`python -m kale_like.surfaces.server.run_worker SPEC.json` compiles the saved source, runs it with
the local executor, and reports on stdout, one JSON object a line:
`{"event": "started", ...}`, `{"event": "task", ...}` per task change, then `{"event": "finished", ...}`
or `{"event": "error", "message": ...}` (the command line's message). Step output goes to each
step's log file, never to stdout.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

_LOCK = threading.Lock()


def emit(event: dict) -> None:
    with _LOCK:
        sys.stdout.write(json.dumps(event, default=str) + "\n")
        sys.stdout.flush()


def task_event(event) -> dict:
    return {"event": "task", "path": event.path, "label": event.label, "status": event.status,
            "seconds": round(event.seconds or 0.0, 3), "error": event.error or "", "log_tail": event.log_tail or "",
            "log_path": event.log_path or "", "at": time.time()}


def run_metrics(result, graph=None) -> dict[str, float]:
    """The values the steps logged as KFP metrics (a `pipeline-metrics` cell), for the panel's table
    across runs: a step's `metrics` output is a KFP Metrics artifact whose values are its metadata in
    the executor output the task wrote beside it. A name logged by two steps (one that binds it and a
    later one that rebinds it under a `when:`) takes the later step's value, as Python would."""
    from kale_like.surfaces.run_rows import task_step

    rank = {step.name: index for index, step in enumerate(graph.all_steps)} if graph is not None else {}
    found: dict[str, float] = {}
    for task in sorted(result.tasks, key=lambda t: rank.get(task_step(t.path), len(rank))):
        for uri in task.outputs.get("artifacts", {}).get("metrics", []):
            try:
                written = json.loads((Path(uri).parent / "executor_output.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            for artifact in written.get("artifacts", {}).get("metrics", {}).get("artifacts", []):
                found.update({name: value for name, value in (artifact.get("metadata") or {}).items()
                              if isinstance(value, (int, float)) and not isinstance(value, bool)})
    return found


def task_outputs(result, graph) -> dict[str, dict]:
    """Each task's outputs (parameter values, artifact URIs) under the step's variable names: a step
    with one output returns it as KFP's `Output`."""
    from kale_like.surfaces.run_rows import task_step

    names = {s.name: [o.name for o in s.outputs] for s in graph.all_steps}
    found = {}
    for task in result.tasks:
        own = names.get(task_step(task.path), [])
        rename = {"Output": own[0]} if len(own) == 1 else {}
        found[task.label] = {kind: {rename.get(name, name): value for name, value in task.outputs.get(kind, {}).items()}
                             for kind in ("parameters", "artifacts")}
    return found


def main(argv: list[str]) -> int:
    from kale_like.process_role import owned_by_kale_like

    owned_by_kale_like()  # a process of its own, as the command line's: kfp without its client (sdk_import.py)
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    from kale_like.errors import InternalError, KaleLikeError

    shown = _shown_as(spec)
    try:
        return _run(spec)
    except KaleLikeError as error:
        emit({"event": "error", "message": shown(f"error: {error.render()}")})
        return 2
    except InternalError as error:
        emit({"event": "error", "message": shown(f"internal error: {error}")})
        return 1
    except Exception as error:  # a bug: the message, and the traceback on stderr (kept by the server)
        traceback.print_exc()
        emit({"event": "error", "message": shown(f"internal error: {type(error).__name__}: {error} (a kale_like bug)")})
        return 1


def _shown_as(spec: dict):
    """Messages name the notebook as the panel does (its path under the Jupyter root, `display`), never
    by the server's absolute path."""
    source, display = str(spec.get("source", "")), str(spec.get("display") or Path(spec.get("source", "")).name)
    return lambda text: text.replace(source, display) if source else text


def _run(spec: dict) -> int:
    from kale_like.backends.kfp.compile import compile_graph
    from kale_like.backends.kfp.server_checks import server_warnings
    from kale_like.backends.local.ir import PipelineIR
    from kale_like.backends.local.run import RunConfig, run_pipeline
    from kale_like.kfp_server import ServerVersion
    from kale_like.surfaces.api import lineage_context, typed_arguments
    from kale_like.surfaces.server.service import cells_of, load_for_compile

    source = Path(spec["source"])
    graph, warnings = load_for_compile(source, spec.get("image", ""), spec.get("kfp_version") or "")
    text = compile_graph(graph).yaml_text  # refuses what the target KFP server cannot run
    warnings += server_warnings(text, graph)
    ir = PipelineIR.from_text(text, str(source))
    arguments = typed_arguments(ir, spec.get("params") or {})
    config = RunConfig(store=Path(spec["store"]), max_workers=int(spec.get("max_workers") or os.cpu_count() or 1),
                       backend=spec.get("backend", "process"), cache=bool(spec.get("cache", True)), echo=False,
                       kfp_version=ServerVersion.parse(graph.settings.kfp_version),
                       lineage_context=lineage_context(str(source)))
    shown = list(graph.steps) + ([graph.exit_step] if graph.exit_step else [])
    emit({"event": "started", "pipeline": graph.settings.name, "warnings": [_shown_as(spec)(w) for w in warnings],
          "steps": [s.name for s in shown],
          "cells": {s.name: cells_of(s) for s in shown}})
    started = time.perf_counter()
    result = run_pipeline(ir, arguments, config, lambda event: emit(task_event(event)))
    shown = _shown_as(spec)
    emit({"event": "finished", "status": result.status, "run_id": result.run_id, "error": shown(result.error or ""),
          "seconds": round(time.perf_counter() - started, 3), "warnings": [shown(w) for w in result.warnings],
          "store": str(result.store), "metrics": run_metrics(result, graph), "outputs": task_outputs(result, graph)})
    return 0 if result.succeeded else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
