"""Pipelines built in code: `Pipeline("name").add_step(fn, name=..., params=...)`, then `.run()`.

This is the shape seed document 002 documents (and flowyml 2.2.1 rejects): steps added in a loop
with `params=`, `after=` for order, a parameter named like an earlier step receiving its result,
`.run(executor=ParallelExecutor(max_workers=4, backend="process"))` running independent steps at
once, and the same object compiling to KFP. The step functions live in
tests/fixtures/code_built/chunks.py, since a step travels as its source.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from kale_like import ParallelExecutor, Pipeline
from kale_like.backends.kfp.validate import check_pipeline_spec
from kale_like.errors import KaleLikeError

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

CHUNKS_FILE = Path(__file__).resolve().parent / "fixtures" / "code_built" / "chunks.py"
_spec = importlib.util.spec_from_file_location("_kl_code_built_chunks", CHUNKS_FILE)
chunks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(chunks)


def chunk_pipeline() -> Pipeline:
    pipeline = Pipeline("chunked")
    for i in range(3):
        pipeline.add_step(chunks.process_chunk, name=f"chunk_{i}", params={"chunk_id": i})
    pipeline.add_step(chunks.combine, name="combine", after=["chunk_0"])
    return pipeline


@pytest.mark.parametrize("backend", ["process", "thread"])
def test_seed_shape_runs_and_gives_each_step_its_value(tmp_path, backend):
    result = chunk_pipeline().run(executor=ParallelExecutor(max_workers=4, backend=backend),
                                  store=tmp_path / "store", echo=False)
    assert result.succeeded, result.error
    expected = [chunks.process_chunk(i) for i in range(3)]
    assert [result.value(f"chunk_{i}") for i in range(3)] == expected
    assert result.value("combine") == expected  # parameters named like earlier steps got their results


def test_independent_steps_run_at_the_same_time(tmp_path):
    pipeline = Pipeline("meeting")
    pipeline.add_step(chunks.meet, name="left", params={"folder": str(tmp_path), "me": "l", "other": "r"})
    pipeline.add_step(chunks.meet, name="right", params={"folder": str(tmp_path), "me": "r", "other": "l"})
    result = pipeline.run(executor=ParallelExecutor(max_workers=2, backend="process"), store=tmp_path / "store",
                          echo=False)
    assert (result.value("left"), result.value("right")) == ("met", "met")


def test_many_independent_steps_run_on_a_few_threads(tmp_path):
    """120 ready steps do not each get a thread: at most max_workers x 4 are in flight."""
    import threading

    pipeline = Pipeline("wide")
    for i in range(120):
        pipeline.add_step(chunks.threads_alive, name=f"s{i}", params={"i": i})
    before = threading.active_count()  # threads earlier tests may have left in this process
    result = pipeline.run(executor=ParallelExecutor(max_workers=2, backend="thread"), store=tmp_path / "store",
                          echo=False)
    assert result.succeeded, result.error
    alive = [result.value(f"s{i}") for i in range(120)]
    assert max(alive) - before < 30, (max(alive), before)


def test_worker_processes_leave_the_parents_objects_to_the_parent(tmp_path):
    """Workers start with the parent's objects frozen (the garbage collector never touches them, so
    their pages are not copied); the parent itself is left collecting as before."""
    import gc

    pipeline = Pipeline("frozen")
    pipeline.add_step(chunks.frozen_objects, name="probe", params={"i": 0})
    result = pipeline.run(executor=ParallelExecutor(max_workers=1, backend="process"), store=tmp_path / "store",
                          echo=False, cache=False)
    assert result.succeeded, result.error
    assert result.value("probe") > 1000
    assert gc.get_freeze_count() == 0


def test_a_second_run_reuses_the_compiled_pipeline_and_the_cache(tmp_path, monkeypatch):
    from kale_like.backends.kfp import compile as kfp_compile

    monkeypatch.setenv("KALE_LIKE_CACHE_DIR", str(tmp_path / "cache"))  # nothing kept by earlier tests
    calls = []
    original = kfp_compile.compile_source
    monkeypatch.setattr(kfp_compile, "compile_source", lambda *a, **k: calls.append(1) or original(*a, **k))
    pipeline = chunk_pipeline()
    executor = ParallelExecutor(max_workers=2, backend="thread")
    first = pipeline.run(executor=executor, store=tmp_path / "store", echo=False)
    again = pipeline.run(executor=executor, store=tmp_path / "store", echo=False)
    assert first.succeeded and again.succeeded
    assert len(calls) == 1
    assert {t.status for t in again.tasks} == {"cached"}
    pipeline.add_step(chunks.process_chunk, name="chunk_3", params={"chunk_id": 3})
    third = pipeline.run(executor=executor, store=tmp_path / "store", echo=False)
    assert len(calls) == 2 and third.value("chunk_3") == chunks.process_chunk(3)


def test_the_same_object_compiles_to_kfp(tmp_path):
    out = tmp_path / "chunked.yaml"
    text = chunk_pipeline().compile(out)
    assert out.read_text(encoding="utf-8") == text
    assert check_pipeline_spec(text) == []
    spec = yaml.safe_load(text.split("\n---\n")[0])
    tasks = spec["root"]["dag"]["tasks"]
    # the three steps of one function share one component; their tasks keep the steps' names
    assert set(spec["components"]) == {"comp-process-chunk", "comp-combine"}
    assert {name: task["componentRef"]["name"] for name, task in tasks.items()} == {
        "chunk-0": "comp-process-chunk", "chunk-1": "comp-process-chunk", "chunk-2": "comp-process-chunk",
        "combine": "comp-combine"}
    assert [tasks[f"chunk-{i}"]["inputs"]["parameters"]["step_name"]["runtimeValue"]["constant"]
            for i in range(3)] == ["chunk_0", "chunk_1", "chunk_2"]


def test_bad_additions_are_refused_with_a_message():
    pipeline = Pipeline("bad")
    pipeline.add_step(chunks.process_chunk, name="one", params={"chunk_id": 1})
    with pytest.raises(KaleLikeError, match="already has a step named 'one'"):
        pipeline.add_step(chunks.process_chunk, name="one", params={"chunk_id": 2})
    with pytest.raises(KaleLikeError, match="after= names steps that were not added before"):
        pipeline.add_step(chunks.process_chunk, name="two", params={"chunk_id": 2}, after=["ghost"])
    with pytest.raises(KaleLikeError, match="has no parameter size"):
        pipeline.add_step(chunks.process_chunk, name="three", params={"size": 2})


def test_a_code_built_pipeline_targets_a_kfp_server_version():
    """Pipeline(kfp_version=...) is what its compile is checked for and its runs follow (default 2.14)."""
    assert Pipeline("p").graph().settings.kfp_version == "2.14"
    assert Pipeline("p", kfp_version="2.17.0").graph().settings.kfp_version == "2.17"
    with pytest.raises(KaleLikeError, match=r"Pipeline\(kfp_version=...\): '2.9' is not a KFP server version"):
        Pipeline("p", kfp_version="2.9")
