"""The estimate of the Argo Workflow the KFP backend builds from a compiled pipeline, and the refusal
of pipelines whose Workflow the cluster would not store."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from kale_like import Pipeline
from kale_like.backends.kfp import workflow_size
from kale_like.backends.kfp.compile import compile_graph
from kale_like.backends.kfp.dsl_codegen import generate_module
from kale_like.backends.kfp.kept_pipelines import read_compiled
from kale_like.backends.kfp.workflow_size import (DEFAULT_LIMIT, WorkflowShape, estimate_workflow, go_json,
                                                  json_bytes, parse_size)
from kale_like.errors import KaleLikeError
from kale_like.surfaces.cli import main

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

REPO = Path(__file__).resolve().parents[1]
CHUNKS_FILE = REPO / "tests" / "fixtures" / "code_built" / "chunks.py"
_spec = importlib.util.spec_from_file_location("_kl_size_chunks", CHUNKS_FILE)
chunks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(chunks)
# a git clone of kubeflow/pipelines, for the comparison with its compiler's own Workflows
KFP_SOURCES = Path(os.environ.get("KALE_LIKE_KFP_SOURCES", "") or "kubeflow-pipelines-clone-not-given")


def chunk_pipeline(steps: int) -> Pipeline:
    pipeline = Pipeline("chunked")
    for i in range(steps):
        pipeline.add_step(chunks.process_chunk, name=f"chunk_{i}", params={"chunk_id": i})
    return pipeline


def documents(text: str) -> tuple[dict, dict | None]:
    found = [d for d in yaml.safe_load_all(text) if d]
    return found[0], next((d for d in found[1:] if "platforms" in d), None)


def test_json_is_sized_as_go_writes_it():
    assert go_json({"b": 1.0, "a": "x<y & z>"}) == '{"a":"x\\u003cy \\u0026 z\\u003e","b":1}'
    assert json_bytes({"é": "€"}) == len('{"é":"€"}'.encode())  # raw UTF-8, as Go writes it
    inner = go_json({"k": 'say "hi"'})
    assert json_bytes({"value": inner}) == len('{"value":"{\\"k\\":\\"say \\\\\\"hi\\\\\\"\\"}"}')


def test_sizes_read_as_bytes_or_with_units():
    assert [parse_size(t) for t in ("1572864", "1.5MiB", "2MB", "900KiB", "0")] == [
        1572864, 1572864, 2000000, 921600, 0]
    with pytest.raises(KaleLikeError, match="--max-workflow-size: 'big' is not a size"):
        parse_size("big", "--max-workflow-size")


def test_steps_sharing_a_component_cost_their_tasks_only():
    """One program in the Workflow's arguments however many steps run it; each task adds about the
    same (its driver and executor tasks, its spec twice)."""
    sizes = {}
    for steps in (10, 20, 40):
        spec, platform = documents(chunk_pipeline(steps).compile())
        estimate = estimate_workflow(spec, platform, "2.15")
        sizes[steps] = estimate.total
        assert estimate.tasks == {"comp-process-chunk": steps}
        assert estimate.largest(1)[0][0] == "comp-process-chunk"
    per_task = (sizes[40] - sizes[20]) / 20
    assert 1000 < per_task < 2000
    assert abs((sizes[20] - sizes[10]) / 10 - per_task) < 20
    program = len(go_json(spec["deploymentSpec"]["executors"]["exec-process-chunk"]["container"]))
    assert sizes[10] - 10 * per_task > program  # the program, once


def test_versions_differ_by_their_system_templates_only():
    spec, platform = documents(chunk_pipeline(3).compile())
    shape = workflow_size.workflow_shape(spec, platform)
    totals = {version: shape.estimate(version).total for version in ("2.14", "2.15", "2.16", "2.17")}
    assert totals["2.14"] < totals["2.15"] < totals["2.16"] < totals["2.17"] < totals["2.14"] + 3000
    assert WorkflowShape.from_json(shape.to_json()) == shape


def test_a_pipeline_too_large_for_the_cluster_is_refused_naming_its_largest_components():
    graph = chunk_pipeline(30).graph()
    small = replace(graph, settings=replace(graph.settings, max_workflow_bytes=20_000))
    with pytest.raises(KaleLikeError) as refused:
        compile_graph(small)
    message = refused.value.render()
    assert "the Argo Workflow a KFP 2.14 server makes of this pipeline would be about" in message
    assert "comp-process-chunk (" in message and "30 tasks" in message
    assert "kale_like.parallel" in message and "--max-workflow-size" in message
    unchecked = replace(graph, settings=replace(graph.settings, max_workflow_bytes=0))
    assert compile_graph(unchecked).yaml_text
    assert graph.settings.max_workflow_bytes == DEFAULT_LIMIT


def test_a_kept_pipeline_is_checked_against_the_limit_of_the_compile(tmp_path, monkeypatch):
    monkeypatch.setenv("KALE_LIKE_CACHE_DIR", str(tmp_path / "cache"))
    graph = chunk_pipeline(5).graph()
    compile_graph(graph)
    (kept,) = (tmp_path / "cache").rglob("*.yaml")
    small = replace(graph, settings=replace(graph.settings, max_workflow_bytes=10_000))
    with pytest.raises(KaleLikeError, match="more than the cluster stores"):
        compile_graph(small)  # read back from the cache folder, and refused all the same
    assert read_compiled(graph, generate_module(graph, "pipeline.yaml")) is not None  # it was read back
    kept.with_suffix(".json").unlink()  # its record gone: compiled again, and refused all the same
    with pytest.raises(KaleLikeError, match="more than the cluster stores"):
        compile_graph(small)


def test_cli_refuses_with_exit_2_and_takes_a_larger_limit(tmp_path, capsys):
    source = REPO / "examples" / "pipelines" / "kale_loop_item.py"
    out = tmp_path / "out.yaml"
    assert main([str(source), "--kfp", "-o", str(out), "-q", "--max-workflow-size", "10KiB"]) == 2
    assert "more than the cluster stores (10 KiB)" in capsys.readouterr().err
    assert not out.exists()
    assert main([str(source), "--kfp", "-o", str(out), "-q", "--max-workflow-size", "2MiB"]) == 0
    assert main([str(source), "--kfp", "-o", str(out), "-q", "--max-workflow-size", "lots"]) == 2


# ---------------------------------------------------------------------------
# Against the Workflows the Go compiler wrote (kubeflow/pipelines' golden files)


def _golden_pairs(tag: str, count: int) -> list[tuple[str, dict, dict | None, dict]]:
    if not (KFP_SOURCES / "HEAD").exists() and not (KFP_SOURCES / ".git").exists():
        pytest.skip(f"no kubeflow/pipelines clone at {KFP_SOURCES} (set KALE_LIKE_KFP_SOURCES)")
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from workflow_size_calibration import pairs
    finally:
        sys.path.pop(0)
    try:
        found = pairs(KFP_SOURCES, tag)
    except subprocess.CalledProcessError:
        pytest.skip(f"{tag} is not in {KFP_SOURCES}")
    return found[:count]


@pytest.mark.parametrize("tag", ["2.14.0", "2.15.0", "2.16.0", "2.17.0"])
def test_estimate_matches_the_go_compilers_workflows(tag):
    errors = []
    for stem, spec, platform, golden in _golden_pairs(tag, 60):  # all of them: benchmarks/README.md
        if "cabundle" in stem:  # a cluster setting adds a CA volume to every template: not in the IR
            continue
        actual = json_bytes(golden)
        estimate = estimate_workflow(spec, platform, tag).total
        bare = estimate - workflow_size.SERVER_ADDITIONS - workflow_size.PER_TEMPLATE_ANNOTATION * len(
            golden["spec"]["templates"])
        errors.append((abs(bare - actual) / actual, stem))
    assert errors
    assert max(errors)[0] < 0.02, max(errors)
    assert sorted(errors)[len(errors) // 2][0] < 0.01


def test_golden_workflow_json_is_what_the_tasks_add_up_to():
    """The per-task model: the golden Workflow of a pipeline with several tasks holds, per container
    task, exactly the driver and executor tasks the model builds."""
    for stem, spec, platform, golden in _golden_pairs("2.15.0", 400):
        if stem != "two_step_pipeline":
            continue
        root = next(t for t in golden["spec"]["templates"] if t["name"] == "root")
        model = workflow_size._Workflow(spec, {})
        made = []
        for key, task in sorted(spec["root"]["dag"]["tasks"].items()):
            made += model.task(key, task, "{{inputs.parameters.parent-dag-id}}")
        def same(tasks):  # the container hash is Go's (of its struct); its length is what counts
            return sorted(re.sub("[0-9a-f]{64}", "HASH", json.dumps(t, sort_keys=True)) for t in tasks)

        assert same(made) == same(root["dag"]["tasks"])
        return
    pytest.skip("two_step_pipeline not among the golden files")


def test_the_documents_kfp_wrote_are_what_the_yaml_holds():
    """The compiler checks (and sizes) the documents kfp's writer converts the pipeline's spec to,
    instead of parsing the YAML back: they must be the YAML's exact content."""
    from kale_like.backends.kfp import compile as kfp_compile

    graph = chunk_pipeline(4).graph()
    source = generate_module(graph)
    handed: list = []
    with tempfile.TemporaryDirectory() as scratch:
        module_path = Path(scratch) / "generated_pipeline.py"
        module_path.write_text(source, encoding="utf-8")
        text, converted = kfp_compile._compile_module(module_path, handed.append)
    assert converted == [d for d in yaml.safe_load_all(text) if d] and handed == [converted]
    assert kfp_compile._compile_source(source)[1] == workflow_size.workflow_shape(*documents(text))
