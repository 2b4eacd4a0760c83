"""Compile a StepGraph to KFP IR YAML with the kfp SDK's own compiler, checked before writing.

The generated DSL module is imported from a file (kfp reads each component's source with
`inspect`), compiled, parsed back and structurally checked. Only then are the YAML and the module
written to their final paths, each through a temporary file and a rename: a failure at any point
leaves no half-written output behind.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from kale_like.backends.kfp.dsl_codegen import generate_module
from kale_like.backends.kfp.stable_header import _kl_stable_header
from kale_like.backends.kfp.validate import check_pipeline_spec
from kale_like.errors import InternalError
from kale_like.graph.model import StepGraph


@dataclass(frozen=True, slots=True)
class CompiledPipeline:
    """The compiled IR and the DSL module it came from."""

    yaml_text: str
    dsl_source: str


def compile_graph(graph: StepGraph, yaml_name: str = "pipeline.yaml") -> CompiledPipeline:
    """Compile in memory; raise InternalError if kfp refuses or the IR fails the check.

    `yaml_name` is the file name the DSL module's `__main__` block writes to.
    """
    source = generate_module(graph, yaml_name)
    with tempfile.TemporaryDirectory(prefix="kale_like_") as scratch:
        module_path = Path(scratch) / "generated_pipeline.py"
        module_path.write_text(source, encoding="utf-8")
        yaml_path = Path(scratch) / "pipeline.yaml"
        _compile_module(module_path, yaml_path)
        text = _kl_stable_header(yaml_path.read_text(encoding="utf-8"))
    problems = check_pipeline_spec(text)
    if problems:
        kept = _keep_for_bug_report(source, text)
        raise InternalError(
            "the compiled pipeline failed the structural check (a kale_like bug; please report it with "
            f"the files in {kept}):\n" + "\n".join(problems)
        )
    return CompiledPipeline(text, source)


def write_outputs(compiled: CompiledPipeline, yaml_path: Path, dsl_path: Path | None) -> None:
    """Write the YAML (and the DSL module) atomically."""
    _atomic_write(yaml_path, compiled.yaml_text)
    if dsl_path is not None:
        _atomic_write(dsl_path, compiled.dsl_source)


def _compile_module(module_path: Path, yaml_path: Path) -> None:
    from kfp import compiler

    name = f"_kale_like_generated_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, module_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        compiler.Compiler().compile(module.pipeline, package_path=str(yaml_path))
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


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
