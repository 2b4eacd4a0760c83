"""Compile a StepGraph to KFP IR YAML with the kfp SDK's own compiler, checked before writing.

The generated DSL module is imported from a file (kfp reads each component's source with
`inspect`), compiled, parsed back and structurally checked; only then may the caller write the YAML
and the module (`output_files.py`: all or nothing).

A module compiled before is read back from the user's cache folder instead (`kept_pipelines.py`,
which needs no kfp); either way the checks that depend on the graph's settings run
(`target_checks.py`): a pipeline the targeted server cannot run, or whose Argo Workflow would be
larger than the cluster stores, is refused.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Callable

from kale_like.backends.kfp.compiled import CompiledPipeline
from kale_like.backends.kfp.kept_pipelines import keep_compiled, kept_path, read_compiled
from kale_like.backends.kfp.target_checks import checked
from kale_like.backends.kfp.checks_aside import ChecksAside
from kale_like.backends.kfp.workflow_size import WorkflowShape
from kale_like.backends.kfp.yaml_writer import _kl_yaml_text
from kale_like.errors import InternalError
from kale_like.graph.model import StepGraph


def compile_graph(graph: StepGraph, yaml_name: str = "pipeline.yaml") -> CompiledPipeline:
    """Compile in memory; raise InternalError if kfp refuses or the IR fails the check.

    `yaml_name` is the file name the DSL module's `__main__` block writes to.
    """
    # (imported here: a child compiling for a script gets the module written, `compile_aside.py`)
    from kale_like.backends.kfp.dsl_codegen import generate_module

    return compile_source(graph, generate_module(graph, yaml_name))


def compile_source(graph: StepGraph, source: str) -> CompiledPipeline:
    """The YAML of `graph`'s generated DSL module `source`: kept by an earlier compile
    (`kept_pipelines.py`), else compiled by kfp now, checked and kept."""
    kept = read_compiled(graph, source)
    if kept is not None:
        return kept
    text, shape = compile_module(source)
    return checked(graph, text, shape, source)


def compile_module(source: str) -> tuple[str, WorkflowShape]:
    """kfp's YAML of a generated DSL module and the shape of its Workflow, structurally checked
    (InternalError if not) and kept in the cache folder; the checks against the graph's target are
    the caller's (`target_checks.py`: they need the graph, this needs only the module)."""
    text, shape, problems = _compile_source(source)
    if problems:
        kept_in = _keep_for_bug_report(source, text)
        raise InternalError(
            "the compiled pipeline failed the structural check (a kale_like bug; please report it with "
            f"the files in {kept_in}):\n" + "\n".join(problems)
        )
    path = kept_path(source)
    if path is not None:
        keep_compiled(path, text, shape)
    return text, shape


def _compile_source(source: str) -> tuple[str, WorkflowShape, list[str]]:
    """The YAML, the shape of the Workflow the KFP backend will make of it, and the structural
    check's problems with the documents kfp wrote (a large pipeline's made while the YAML is
    written: `checks_aside.py`)."""
    aside = ChecksAside()
    with tempfile.TemporaryDirectory(prefix="kale_like_") as scratch:
        module_path = Path(scratch) / "generated_pipeline.py"
        module_path.write_text(source, encoding="utf-8")
        text, documents = _compile_module(module_path, aside.start)
    shape, problems = aside.result(documents)
    return text, shape, problems


# kfp keeps the pipeline being defined in process-wide state (`Pipeline._default_pipeline` and
# `PipelineTask._register_task_handler`, kfp/dsl/pipeline_context.py): two modules defining their
# pipelines at once from two threads would register tasks in each other's pipeline. Compiles in one
# process therefore define their pipelines one at a time; writing the YAML needs no lock.
_DEFINING = threading.Lock()


def _compile_module(module_path: Path, documents_ready: Callable[[list], None] | None = None) -> tuple[str, list]:
    """Import the module; the YAML of its pipeline (`yaml_writer.py`), and the documents in it
    (handed to `documents_ready` first, before the YAML is written).

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
        return _kl_yaml_text(module.pipeline, str(module_path.with_suffix(".yaml")), documents_ready)
    except Exception as error:  # kfp raises many types while defining the pipeline
        kept = _keep_for_bug_report(module_path.read_text(encoding="utf-8"), "")
        raise InternalError(
            f"kfp refused the generated pipeline: {type(error).__name__}: {error} "
            f"(a kale_like bug; the generated module is kept in {kept})"
        ) from error
    finally:
        sys.modules.pop(name, None)


def _keep_for_bug_report(source: str, yaml_text: str) -> str:
    folder = Path(tempfile.mkdtemp(prefix="kale_like_bug_"))
    (folder / "generated_pipeline.py").write_text(source, encoding="utf-8")
    if yaml_text:
        (folder / "pipeline.yaml").write_text(yaml_text, encoding="utf-8")
    return str(folder)
