"""The Python API: `kale_like.run(...)` and `kale_like.compile(...)`."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kale_like.errors import KaleLikeError, SourceLocation
from kale_like.graph.model import StepGraph

if TYPE_CHECKING:
    from kale_like.backends.kfp.compile_aside import CompileChild

_KFP_TYPES = {"NUMBER_INTEGER": int, "NUMBER_DOUBLE": float, "STRING": str, "BOOLEAN": bool, "LIST": list,
              "STRUCT": dict}


def load_graph(source: Any, pipeline: str | None = None, one_step: bool = False) -> StepGraph:
    """The step graph of a notebook, a .py file, or a `@pipeline` function object, with provenance."""
    from dataclasses import replace

    if callable(source) and hasattr(source, "__kale_like_pipeline__"):
        return load_graph(inspect.getsourcefile(source), pipeline or source.__name__)
    path = Path(source)
    if path.suffix == ".ipynb":
        from kale_like.frontends.notebook import notebook_to_graph

        return replace(notebook_to_graph(path, pipeline, one_step), provenance=provenance(path))
    if path.suffix == ".py":
        from kale_like.frontends.functions import python_to_graph

        return replace(python_to_graph(path, pipeline), provenance=provenance(path))
    raise KaleLikeError(f"cannot read a '{path.suffix or 'extensionless'}' file", SourceLocation(str(path)),
                        "pass a notebook (.ipynb), a Python file with @pipeline functions (.py) or a compiled "
                        "pipeline (.yaml)")


def compile(source: Any, pipeline: str | None = None, *,  # noqa: A001 - the verb users expect
            kfp_version: str | None = None) -> str:
    """Compile to KFP v2 IR YAML text (checked structurally, and against the target KFP server:
    `kfp_version`, else the pipeline's own, else 2.14)."""
    from kale_like.backends.kfp.compile_aside import compile_graph  # kfp stays out of the caller
    from kale_like.graph.checks import check_graph

    graph = targeting(load_graph(source, pipeline), kfp_version)
    check_graph(graph)
    return compile_graph(graph).yaml_text


def targeting(graph: StepGraph, kfp_version: str | None) -> StepGraph:
    """`graph` targeting `kfp_version` when one is given (it overrides the pipeline's own)."""
    if kfp_version is None:
        return graph
    from kale_like.graph.overrides import apply_overrides

    return apply_overrides(graph, kfp_version=kfp_version, kfp_version_origin="kfp_version=")


def pipeline_ir(source: Any, pipeline: str | None = None, graph: StepGraph | None = None,
                allow_secret_like: bool = False, kfp_version: str | None = None,
                child: CompileChild | None = None):
    """The compiled pipeline a local run executes: the YAML file itself, or compiled in memory
    (by `child`, when the caller started one: compile_aside.py).

    Either way it is checked against the target KFP server (a YAML file: `kfp_version`, else 2.14)."""
    from kale_like.backends.local.ir import PipelineIR

    if _is_yaml(source):
        from kale_like.backends.kfp.server_checks import checked_spec
        from kale_like.kfp_server import ServerVersion

        ir = PipelineIR.from_file(source)
        checked_spec(ir.spec, ServerVersion.parse(kfp_version, "kfp_version="), ir.source, ir.platform)
        return ir
    from kale_like.backends.kfp.compile_aside import compile_graph  # kfp stays out of the caller
    from kale_like.graph.checks import check_graph

    graph = targeting(graph or load_graph(source, pipeline), kfp_version)
    check_graph(graph, allow_secret_like)
    return PipelineIR.from_text(compile_graph(graph, child=child).yaml_text, str(graph.source))


def _is_yaml(source: Any) -> bool:
    return isinstance(source, (str, Path)) and Path(source).suffix in (".yaml", ".yml")


def run(source: Any, params: dict | None = None, *, max_workers: int | None = None, backend: str = "process",
        cache: bool = True, store: str | Path = ".kale_like", echo: bool = True,
        collect_failed_iterations: bool = False, pipeline: str | None = None, observer=None,
        allow_secret_like: bool = False, kfp_version: str | None = None):
    """Run a pipeline locally and return its `RunResult` (status, outputs, a report per step).

    `source`: a notebook, a .py file, a compiled .yaml, or a `@pipeline` function.
    `params`: argument values, checked against the pipeline's declared parameter types.
    `kfp_version`: the KFP server release whose behaviour the run follows (and whose compile-time
    checks apply); it overrides the pipeline's own (notebook metadata, `@pipeline`), default 2.14.
    """
    options: dict[str, Any] = {"store": store, "max_workers": max_workers, "backend": backend, "cache": cache,
                               "echo": echo, "collect_failed_iterations": collect_failed_iterations}
    if _is_yaml(source):  # a compiled pipeline
        return _run_compiled(source, params, pipeline, observer, allow_secret_like, kfp_version, options)
    # A forked child (where it may be: compile_aside.py) imports kfp while the source is read, and
    # compiles while the run's source is looked up in git, the runner imported and its workers
    # forked (`LocalRun`), as in `Pipeline.run`
    from kale_like.backends.kfp.compile_aside import CompileChild, start_compile

    with CompileChild.start() or contextlib.nullcontext() as child:  # stopped if anything below fails
        from kale_like.backends.local.ir import PipelineIR
        from kale_like.backends.local.run import LocalRun
        from kale_like.graph.checks import check_graph
        from kale_like.kfp_server import ServerVersion

        config = _run_config(**options)
        graph = targeting(load_graph(source, pipeline), kfp_version)
        version = ServerVersion.parse(graph.settings.kfp_version, "kfp_version=")
        check_graph(graph, allow_secret_like)
        compiling = start_compile(graph, child=child)  # the child is the compile's now
    with compiling:
        config = replace(config, kfp_version=version, lineage_context=lineage_context(str(graph.source)))
        with LocalRun(config, most_tasks=len(graph.all_steps), program=compiling.source) as local:
            ir = PipelineIR.from_text(compiling.result().yaml_text, str(graph.source))
            return local.run(ir, typed_arguments(ir, params or {}, allow_secret_like), observer)


def _run_compiled(source: Any, params: dict | None, pipeline: str | None, observer, allow_secret_like: bool,
                  kfp_version: str | None, options: dict[str, Any]):
    """`run` of a compiled pipeline (a .yaml file)."""
    from kale_like.backends.local.run import run_pipeline
    from kale_like.kfp_server import ServerVersion

    config = _run_config(**options)
    version = ServerVersion.parse(kfp_version, "kfp_version=")
    ir = pipeline_ir(source, pipeline, allow_secret_like=allow_secret_like, kfp_version=str(version))
    config = replace(config, kfp_version=version, lineage_context=lineage_context(ir.source))
    return run_pipeline(ir, typed_arguments(ir, params or {}, allow_secret_like), config, observer)


def _run_config(store: str | Path, max_workers: int | None, backend: str, cache: bool, echo: bool,
                collect_failed_iterations: bool):
    """The run's configuration, its options checked (before anything is read); the caller adds the
    server version and the lineage context once it has read the source."""
    from kale_like.backends.local.run import BACKENDS, RunConfig

    if backend not in BACKENDS:
        raise KaleLikeError(f"unknown backend '{backend}'", None, "use process or thread")
    if max_workers is not None and max_workers < 1:
        raise KaleLikeError("max_workers must be at least 1", None)
    return RunConfig(store=Path(store), max_workers=max_workers or os.cpu_count() or 1, backend=backend,
                     cache=cache, echo=echo, collect_failed_iterations=collect_failed_iterations)


def typed_arguments(ir, params: dict, allow_secret_like: bool = False) -> dict:
    """Check run arguments against the pipeline's parameters; parse text given for other types.

    A value that looks like a credential is refused (run arguments are stored and shown).
    """
    from kale_like.graph.credentials import credential_value

    declared = ir.parameter_types()
    where = SourceLocation(ir.source)
    result = {}
    for name, value in params.items():
        if not allow_secret_like and credential_value(value):
            raise KaleLikeError(f"the value given for '{name}' looks like a credential; run arguments are stored "
                                "in the lineage (and on KFP shown in its UI)", where,
                                "pass secrets through Kubernetes secrets (secrets= / the secret: tag)")
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise KaleLikeError(f"the pipeline has no parameter '{name}'", where, f"parameters: {known}")
        expected = _KFP_TYPES.get(declared[name], object)
        if isinstance(value, str) and expected is not str:
            value = _parse(name, value, expected, where)
        if expected is float and type(value) is int:
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise KaleLikeError(f"parameter '{name}' must be a {expected.__name__}, not {value!r}", where)
        result[name] = value
    return result


def _parse(name: str, text: str, expected: type, where: SourceLocation) -> Any:
    if expected is bool and text.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return text.strip().lower() in ("true", "1", "yes")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise KaleLikeError(f"parameter '{name}': '{text}' is not a valid {expected.__name__}", where) from None


def provenance(source: str | Path) -> tuple[tuple[str, str], ...]:
    """What compiled artifacts record about their source: its path in the repository, commit, dirty flag."""
    context = lineage_context(str(source))
    path = Path(source).resolve()
    shown = path.name
    if context.get("git_root"):
        shown = str(path.relative_to(context["git_root"]))
    items = [("source", shown)]
    if context.get("git_commit"):
        items += [("git_commit", context["git_commit"]), ("git_dirty", str(bool(context.get("git_dirty"))).lower())]
    return tuple(items)


def lineage_context(source: str) -> dict:
    """Source file, its hash and the git commit it is at (when it is in a repository)."""
    context: dict[str, Any] = {"source": source}
    try:
        context["code_hash"] = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    except OSError:
        pass
    folder = Path(source).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD", "--show-toplevel"],
                                capture_output=True, text=True, timeout=5)
        if commit.returncode == 0:
            lines = commit.stdout.split()
            context["git_commit"] = lines[0]
            if len(lines) > 1:
                context["git_root"] = str(Path(lines[1]).resolve())
            status = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--",
                                     str(Path(source).resolve())],
                                    capture_output=True, text=True, timeout=5)
            context["git_dirty"] = bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return context
