"""Compiled pipelines kept in the user's cache folder, read back without importing kfp.

Compiling is a pure function of the generated DSL module's text (which embeds the kfp repairs and
the header code) and of the versions of the libraries that write the YAML; it costs ~20 ms a step
(most of it kfp's own code). A compile keeps its YAML here, under a hash of both and of the
structural check it passed (`validate.py`'s source), with a record beside it: the YAML's own hash
and the shape of the Argo Workflow the KFP backend will make of it (`workflow_size.py`). A later
compile of the same module reads the YAML back, and needs neither kfp nor the structural check
again: the key says which check it passed, and the hash that it is whole. Only the checks that
depend on the graph's settings run on every compile (`target_checks.py`). Reading stays free of
kfp so that a script's second `Pipeline.run()` of the same steps imports no kfp at all
(`compile_aside.py`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from pathlib import Path

from kale_like.backends.kfp.compiled import CompiledPipeline
from kale_like.backends.kfp.target_checks import checked
from kale_like.backends.kfp.workflow_size import WorkflowShape
from kale_like.backends.kfp.yaml_writer import _kl_libyaml
from kale_like.graph.model import StepGraph
from kale_like.user_cache import cache_folder, keep

KEPT_PIPELINES = 64  # compiled pipelines kept in the cache folder (the least recently used go)


def read_compiled(graph: StepGraph, source: str) -> CompiledPipeline | None:
    """The pipeline an earlier compile of `source` kept, checked for `graph`'s settings (the target
    server, the Workflow size); None when none is kept, or the kept one is damaged."""
    path = kept_path(source)
    kept = read_kept(path) if path is not None else None
    if kept is None:
        return None
    text, shape = kept
    return checked(graph, text, shape, source)


def kept_path(source: str) -> Path | None:
    """Where the YAML of `source` is kept; None when nothing is kept (no cache folder, or
    KALE_LIKE_COMPILE_CACHE=0)."""
    if os.environ.get("KALE_LIKE_COMPILE_CACHE", "1") == "0":
        return None
    folder = cache_folder()
    if folder is None:
        return None
    # kfp reads one setting from the environment that changes the YAML: the tasks' caching default
    setting = os.environ.get("KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT", "")
    key = hashlib.sha256(f"{writer_versions()}\0{_checker()}\0{setting}\0{source}".encode()).hexdigest()
    return folder / "pipelines" / f"{key[:40]}.yaml"


def read_kept(path: Path) -> tuple[str, WorkflowShape] | None:
    """The kept YAML and its Workflow's shape; None when either is missing or the YAML is not the
    one that was kept (a damaged file)."""
    try:
        text = path.read_text(encoding="utf-8")
        record = json.loads(_record_path(path).read_text(encoding="utf-8"))
        if record["sha256"] != hashlib.sha256(text.encode("utf-8")).hexdigest():
            return None
        shape = WorkflowShape.from_json(json.dumps(record["shape"]))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    try:
        os.utime(path)  # recently used: kept longer
    except OSError:
        pass  # a read-only cache folder is still read
    return text, shape


def keep_compiled(path: Path, text: str, shape: WorkflowShape) -> None:
    """Keep a compiled pipeline (its record first: a YAML without its record is never read), then
    let only the KEPT_PIPELINES most recently used stay (each notebook edit makes a new key)."""
    record = {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "shape": json.loads(shape.to_json())}
    if not keep(_record_path(path), json.dumps(record).encode("utf-8")) or not keep(path, text.encode("utf-8")):
        return
    try:
        kept = sorted(path.parent.glob("*.yaml"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[KEPT_PIPELINES:]:
            old.unlink(missing_ok=True)
            _record_path(old).unlink(missing_ok=True)
    except OSError:
        pass  # another process evicting at the same time


def _record_path(path: Path) -> Path:
    return path.with_suffix(".json")


@functools.lru_cache(maxsize=1)
def _checker() -> str:
    """The structural check a kept pipeline passed (read as text: importing it imports kfp)."""
    return hashlib.sha256(Path(__file__).with_name("validate.py").read_bytes()).hexdigest()


@functools.lru_cache(maxsize=1)
def writer_versions() -> str:
    """The versions of what turns a module into YAML bytes (part of the key)."""
    names = ("kfp", "kfp-kubernetes", "kfp-pipeline-spec", "protobuf", "PyYAML")
    found = _installed_versions(names)
    versions = []
    for name in names:
        version = found.get(name) or _metadata_version(name)
        versions.append(f"{name}={version}")
    return ";".join(versions + [f"python={sys.version_info[0]}.{sys.version_info[1]}", f"emitter={yaml_emitter()}"])


def yaml_emitter() -> str:
    """Which emitter writes the YAML ("libyaml" or "python", see `yaml_writer.py`): part of the
    key, since each folds long strings at its own places."""
    return "libyaml" if _kl_libyaml() else "python"


def _installed_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Versions read from the `NAME-VERSION.dist-info` folders of the first `sys.path` entry holding
    each, as `importlib.metadata` finds them for a package installed by pip; importing
    `importlib.metadata` itself costs ~20 ms, a fifth of a small compile."""
    wanted = {_normalized(name): name for name in names}
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            listed = os.listdir(entry or ".")
        except OSError:
            continue
        for folder in listed:
            if not folder.endswith(".dist-info") or "-" not in folder:
                continue
            project, _, version = folder[: -len(".dist-info")].partition("-")
            name = wanted.get(_normalized(project))
            if name is not None and name not in found:
                found[name] = version
        if len(found) == len(wanted):
            break
    return found


def _normalized(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def _metadata_version(name: str) -> str:
    """The version `importlib.metadata` finds (an egg or an editable install), or '-'."""
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "-"
