"""The YAML kale_like writes holds what kfp's own compiler writes.

kale_like (and the DSL module it writes beside the YAML) hand kfp's pipeline spec to libyaml's
emitter where PyYAML has it (kale_like/backends/kfp/yaml_writer.py): the comments and the documents
must be those `kfp.compiler.Compiler().compile` writes for the same module, on every example; only
the places where long quoted strings fold may differ. Without libyaml, the bytes are kfp's.
"""

from __future__ import annotations

import importlib.util
import shutil
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import fixture_notebook
from golden_ir import EXAMPLES

from kale_like.backends.kfp import yaml_writer
from kale_like.backends.kfp.dsl_codegen import generate_module
from kale_like.surfaces.api import load_graph

CASES = EXAMPLES + [fixture_notebook(name) for name in ("kubernetes", "parameters", "dict_parameter_order")]


def pipeline_of(source: str, folder: Path):
    path = folder / f"generated_{uuid.uuid4().hex}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.pipeline


def kfp_writes(pipeline, path: Path) -> str:
    from kfp import compiler

    compiler.Compiler().compile(pipeline, package_path=str(path))
    return yaml_writer._kl_stable_header(path.read_text(encoding="utf-8"))


def comments(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#")]


@pytest.mark.parametrize("source", CASES, ids=lambda path: path.stem)
def test_the_yaml_holds_the_comments_and_documents_kfp_writes(source, tmp_path):
    copy = tmp_path / source.name
    shutil.copyfile(source, copy)
    pipeline = pipeline_of(generate_module(load_graph(copy)), tmp_path)
    ours, documents = yaml_writer._kl_yaml_text(pipeline, str(tmp_path / "scratch.yaml"))
    yaml_writer._kl_yaml(pipeline, str(tmp_path / "ours.yaml"))  # what the DSL module's `__main__` writes
    theirs = kfp_writes(pipeline, tmp_path / "kfp.yaml")
    assert (tmp_path / "ours.yaml").read_text(encoding="utf-8") == ours
    assert comments(ours) == comments(theirs) and comments(ours)
    assert list(yaml.safe_load_all(ours)) == list(yaml.safe_load_all(theirs))
    assert [d for d in yaml.safe_load_all(ours) if d] == documents  # what the checks read


def test_without_libyaml_the_bytes_are_kfps_own(tmp_path, monkeypatch):
    pipeline = pipeline_of(generate_module(load_graph(fixture_notebook("kubernetes"))), tmp_path)
    monkeypatch.setattr(yaml, "__with_libyaml__", False)
    ours, _ = yaml_writer._kl_yaml_text(pipeline, str(tmp_path / "ours.yaml"))
    assert ours == kfp_writes(pipeline, tmp_path / "kfp.yaml")
