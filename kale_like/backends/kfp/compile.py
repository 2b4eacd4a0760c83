"""Compile a StepGraph to KFP IR YAML with the kfp SDK's own compiler, checked before writing.

The generated DSL module is imported from a file (kfp reads each component's source with
`inspect`), compiled, parsed back and structurally checked. Only then are the YAML and the module
written to their final paths, each through a temporary file and a rename: a failure at any point
leaves no half-written output behind.

Compiling is a pure function of the generated module's text (which embeds the kfp repairs and the
header code) and the versions of the libraries that write the YAML, and it costs ~20 ms a step
(most of it kfp's pure-Python YAML writer): the YAML is kept in the user's cache folder under a
hash of both, and a later compile of the same module reads it back. The structural check runs on
every compile, cached or not, and so does the size check: a pipeline whose Argo Workflow would be
larger than the cluster stores is refused (`workflow_size.py`; the Workflow's shape is kept beside
the YAML).
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import yaml

from kale_like.backends.kfp.compiled import CompiledPipeline
from kale_like.backends.kfp.dsl_codegen import generate_module
from kale_like.backends.kfp.server_checks import check_compiled
from kale_like.backends.kfp.yaml_writer import _kl_libyaml, _kl_yaml_text
from kale_like.backends.kfp.validate import check_pipeline_documents, check_pipeline_spec
from kale_like.backends.kfp.workflow_size import WorkflowShape, check_workflow_size, workflow_shape
from kale_like.errors import InternalError, KaleLikeError
from kale_like.graph.model import StepGraph
from kale_like.os_errors import explained
from kale_like.user_cache import cache_folder, keep

KEPT_PIPELINES = 64  # compiled pipelines kept in the cache folder (the least recently used go)



def compile_graph(graph: StepGraph, yaml_name: str = "pipeline.yaml") -> CompiledPipeline:
    """Compile in memory; raise InternalError if kfp refuses or the IR fails the check.

    `yaml_name` is the file name the DSL module's `__main__` block writes to.
    """
    source = generate_module(graph, yaml_name)
    path = _kept_path(source)
    text = _read_kept(path)
    problems = check_pipeline_spec(text) if text is not None else []
    shape = _read_shape(path) if text is not None else None
    if text is None or problems:  # not kept yet, or kept by a kale_like whose check was laxer
        text, shape, documents = _compile_source(source)
        problems = check_pipeline_documents(documents) if documents else check_pipeline_spec(text)
        if not problems and path is not None:
            _keep(path, text, shape)
    if problems:
        kept = _keep_for_bug_report(source, text)
        raise InternalError(
            "the compiled pipeline failed the structural check (a kale_like bug; please report it with "
            f"the files in {kept}):\n" + "\n".join(problems)
        )
    check_compiled(text, graph)  # refuses what the targeted KFP server cannot run (server_checks.py)
    if shape is None:  # kept by a kale_like that did not keep the Workflow's shape
        shape = _shape_of_text(text)
        if path is not None:
            keep(_shape_path(path), shape.to_json().encode("utf-8"))
    check_workflow_size(shape, graph.settings.max_workflow_bytes, graph.settings.kfp_version, graph.source)
    return CompiledPipeline(text, source)


def _compile_source(source: str) -> tuple[str, WorkflowShape, list]:
    """The YAML, the shape of the Workflow the KFP backend will make of it, and the documents kfp
    wrote (converted from the pipeline's spec as kfp's writer converts it)."""
    with tempfile.TemporaryDirectory(prefix="kale_like_") as scratch:
        module_path = Path(scratch) / "generated_pipeline.py"
        module_path.write_text(source, encoding="utf-8")
        text, documents = _compile_module(module_path)
    platform = next((d for d in documents[1:] if isinstance(d, dict) and "platforms" in d), None)
    return text, workflow_shape(documents[0], platform), documents


def _shape_of_text(text: str) -> WorkflowShape:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    documents = [d for d in yaml.load_all(text, Loader=loader) if d]
    platform = next((d for d in documents[1:] if isinstance(d, dict) and "platforms" in d), None)
    return workflow_shape(documents[0], platform)


def _shape_path(path: Path) -> Path:
    return path.with_suffix(".workflow.json")


def _read_shape(path: Path | None) -> WorkflowShape | None:
    if path is None:
        return None
    try:
        return WorkflowShape.from_json(_shape_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


@functools.lru_cache(maxsize=1)
def writer_versions() -> str:
    """The versions of what turns a module into YAML bytes (part of the cache key)."""
    names = ("kfp", "kfp-kubernetes", "kfp-pipeline-spec", "protobuf", "PyYAML")
    found = _installed_versions(names)
    versions = []
    for name in names:
        version = found.get(name) or _metadata_version(name)
        versions.append(f"{name}={version}")
    return ";".join(versions + [f"python={sys.version_info[0]}.{sys.version_info[1]}", f"emitter={yaml_emitter()}"])


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


def _kept_path(source: str) -> Path | None:
    if os.environ.get("KALE_LIKE_COMPILE_CACHE", "1") == "0":
        return None
    folder = cache_folder()
    if folder is None:
        return None
    # kfp reads one setting from the environment that changes the YAML: the tasks' caching default
    setting = os.environ.get("KFP_DISABLE_EXECUTION_CACHING_BY_DEFAULT", "")
    key = hashlib.sha256(f"{writer_versions()}\0{setting}\0{source}".encode()).hexdigest()
    return folder / "pipelines" / f"{key[:40]}.yaml"


def _read_kept(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        os.utime(path)  # recently used: kept longer
    except OSError:
        pass  # a read-only cache folder is still read
    return text


def _keep(path: Path, text: str, shape: WorkflowShape) -> None:
    """Keep it (and its Workflow's shape beside it), then let only the KEPT_PIPELINES most recently
    used stay (each notebook edit makes a new key)."""
    if not keep(path, text.encode("utf-8")):
        return
    keep(_shape_path(path), shape.to_json().encode("utf-8"))
    try:
        kept = sorted(path.parent.glob("*.yaml"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[KEPT_PIPELINES:]:
            old.unlink(missing_ok=True)
            _shape_path(old).unlink(missing_ok=True)
    except OSError:
        pass  # another process evicting at the same time


def write_outputs(compiled: CompiledPipeline, yaml_path: Path, dsl_path: Path | None) -> None:
    """Write the YAML (and the DSL module) all or nothing: each goes to a temporary file beside it
    first, and only once every one is complete are they renamed into place, so an output that
    cannot be written (permission denied, a full disk) leaves no other behind, not even a folder
    made for it. KaleLikeError naming the file, the cause and what to do."""
    outputs = [(yaml_path, compiled.yaml_text)] + ([(dsl_path, compiled.dsl_source)] if dsl_path is not None else [])
    made: list[Path] = []  # folders created here, removed again on failure
    ready: list[tuple[Path, Path]] = []  # (temporary, final)
    current = yaml_path
    try:
        for current, text in outputs:
            made += _make_folder(current.parent)
            _remove_stale_temporaries(current)
            ready.append((_written_beside(current, text), current))
        for temporary, current in ready:
            os.replace(temporary, current)
    except BaseException as error:  # an OSError, or Ctrl-C: nothing of this write stays behind
        for temporary, _ in ready:
            temporary.unlink(missing_ok=True)
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        if not isinstance(error, OSError):
            raise
        message, fix = explained(error, current)
        raise KaleLikeError(message + "; nothing was written", None, fix) from None


STALE_SECONDS = 600  # a temporary output older than this belongs to a compile that was killed


def _remove_stale_temporaries(path: Path) -> None:
    """The temporary files a killed compile left beside `path` (a compile renames its own within
    milliseconds; a recent one may be another compile's, writing now)."""
    now = time.time()
    for temporary in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):
        with contextlib.suppress(OSError):
            if now - temporary.stat().st_mtime > STALE_SECONDS:
                temporary.unlink()


def _make_folder(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; the ones created, outermost first."""
    missing = [f for f in [folder, *folder.parents] if not f.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


# kfp keeps the pipeline being defined in process-wide state (`Pipeline._default_pipeline` and
# `PipelineTask._register_task_handler`, kfp/dsl/pipeline_context.py): two modules defining their
# pipelines at once from two threads would register tasks in each other's pipeline. Compiles in one
# process therefore define their pipelines one at a time; writing the YAML needs no lock.
_DEFINING = threading.Lock()


def _compile_module(module_path: Path) -> tuple[str, list]:
    """Import the module; the YAML of its pipeline (`yaml_writer.py`), and the documents in it.

    Importing the module has kfp build the pipeline's IR (`pipeline_spec`, `platform_spec`); the
    module repairs what it must. kfp's functions that build it run as kfp wrote them: nothing of kfp
    is replaced. Its `build_spec_by_group` (kfp/compiler/pipeline_spec_builder.py, 2.17) sanitizes
    the names of all of a DAG's tasks again for each of them, so 1,000 tasks in one DAG cost ~1.6 s
    of CPU more than they need to; a loop (one task for all its items) does not pay it."""
    name = f"_kale_like_generated_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, module_path)
    assert spec is not None and spec.loader is not None  # a .py file always has both
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with _DEFINING:
            spec.loader.exec_module(module)
        return _kl_yaml_text(module.pipeline, str(module_path.with_suffix(".yaml")))
    except Exception as error:  # kfp raises many types while defining the pipeline
        kept = _keep_for_bug_report(module_path.read_text(encoding="utf-8"), "")
        raise InternalError(
            f"kfp refused the generated pipeline: {type(error).__name__}: {error} "
            f"(a kale_like bug; the generated module is kept in {kept})"
        ) from error
    finally:
        sys.modules.pop(name, None)


def yaml_emitter() -> str:
    """Which emitter writes the YAML ("libyaml" or "python", see `yaml_writer.py`): part of the
    cache key, since each folds long strings at its own places."""
    return "libyaml" if _kl_libyaml() else "python"


def _keep_for_bug_report(source: str, yaml_text: str) -> str:
    folder = Path(tempfile.mkdtemp(prefix="kale_like_bug_"))
    (folder / "generated_pipeline.py").write_text(source, encoding="utf-8")
    if yaml_text:
        (folder / "pipeline.yaml").write_text(yaml_text, encoding="utf-8")
    return str(folder)


def _written_beside(path: Path, text: str) -> Path:
    """`text` in a temporary file beside `path`, created with mode 0666 so the user's umask decides
    the permissions, as for any file they write (mkstemp's 0600 would hide the pipeline from the
    group that uploads it)."""
    temporary = path.parent / f".{path.name}.{uuid.uuid4().hex}.partial"
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary
