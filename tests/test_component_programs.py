"""Component programs: the step runtime each carries (only the parts it needs, compressed), how the
local runner provides it compiled once, and steps of one function sharing one component."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

import kale_like
from kale_like import ParallelExecutor, Pipeline
from kale_like.backends.kfp.packed_runtime import ALWAYS, PARTS, RUNTIME_PATTERN, packed_runtime, runtime_text, unpack
from kale_like.backends.local.ir import PipelineIR, component_program

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples" / "pipelines").glob("*.py")) + sorted((REPO / "examples" / "notebooks").glob("*.ipynb"))
CHUNKS_FILE = REPO / "tests" / "fixtures" / "code_built" / "chunks.py"
_spec = importlib.util.spec_from_file_location("_kl_programs_chunks", CHUNKS_FILE)
chunks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(chunks)


@kale_like.step(image="python:3.12")
def other_image(chunk_id: int) -> int:
    return chunk_id


@kale_like.step(image="registry.example/team/trainer:1")
def traced_image(chunk_id: int) -> int:
    return chunk_id


@kale_like.step(secrets={"API_TOKEN": "svc-creds/token"}, labels={"team": "data"}, retries=2)
def with_settings(chunk_id: int) -> int:
    return chunk_id


@kale_like.step(packages=["opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"])
def traced_packages(chunk_id: int) -> int:
    return chunk_id


def _programs(yaml_text: str) -> list[tuple[str, str]]:
    ir = PipelineIR.from_text(yaml_text)
    return [component_program(e) for e in ir.spec["deploymentSpec"]["executors"].values()]


@pytest.fixture
def no_runtime_loaded(monkeypatch):
    """As in a new process: no unpacked runtime in sys.modules (restored afterwards)."""
    for name in [name for name in sys.modules if name.startswith("kale_like_runtime_")]:
        monkeypatch.delitem(sys.modules, name)


# ---------------------------------------------------------------------------
# The packed runtime


def test_runtime_functions_belong_to_one_part_at_most_and_unlisted_ones_always_travel():
    functions = [n.name for n in ast.parse(runtime_text()).body if isinstance(n, ast.FunctionDef)]
    owners = {function: [part for part, names in PARTS.items() if function in names] for function in functions}
    assert all(len(parts) <= 1 for parts in owners.values()), owners
    assert {f for names in PARTS.values() for f in names} <= set(owners)
    smallest = packed_runtime(frozenset()).source
    for function, parts in owners.items():
        assert (f"def {function}(" in smallest) == (not parts or parts[0] in ALWAYS), function


def test_a_part_calls_only_its_own_functions_or_those_of_parts_every_step_has():
    """What a part calls is always there, except what `runtime_parts` adds for the steps that reach
    it: run_step_body calls coerce/load/save/metrics only for values a step has, and stand_still only
    after read_flags (both in `flags`) said so; run_step looks the SDK up; stand_still saves only the
    outputs a step has."""
    import symtable

    table = symtable.symtable(runtime_text(), "<runtime>", "exec")
    functions = {f for names in PARTS.values() for f in names}
    optional = {"_kl_coerce", "_kl_load_value", "_kl_save_value", "_kl_provide_sdk", "_kl_span", "_kl_log_metrics",
                "_kl_stand_still"}
    for part, names in PARTS.items():
        for child in table.get_children():
            if child.get_name() not in names:
                continue
            called = {s.get_name() for s in child.get_symbols() if s.is_global()} & functions
            outside = called - set(names) - {f for p in ALWAYS for f in PARTS[p]}
            assert outside <= optional and (part == "run" or not outside or (part, outside) == ("flags", {"_kl_save_value"})), \
                (child.get_name(), outside)


def test_packed_runtime_unpacks_to_plain_functions_without_docstrings():
    runtime = packed_runtime(frozenset(PARTS))
    source = unpack(runtime.blob)
    assert source == runtime.source
    namespace: dict = {}
    exec(compile(source, "<packed>", "exec"), namespace)
    functions = {n.name for n in ast.parse(runtime_text()).body if isinstance(n, ast.FunctionDef)}
    assert {n for n in namespace if n.startswith("_kl_")} == functions
    assert '"""' not in source
    smallest = packed_runtime(frozenset())
    assert smallest.parts == tuple(p for p in PARTS if p in ALWAYS)
    assert len(smallest.blob) < len(runtime.blob) < len(runtime.source) / 2


def test_steps_carry_only_the_parts_they_can_call():
    pipeline = Pipeline("parts")
    pipeline.add_step(chunks.process_chunk, name="chunk_0", params={"chunk_id": 1})  # a parameter, an output
    pipeline.add_step(chunks.combine, name="combine", params={"chunk_1": 1, "chunk_2": 2})  # and an input
    programs = dict((function, program) for program, function in _programs(pipeline.compile()))
    for function, parts in (("chunk_0", "run, coerce, save"), ("combine", "run, coerce, load, save")):
        assert f"kale_like/runtime/step_runtime.py: {parts}\n" in programs[function]
    assert "def _kl_" not in "".join(programs.values())  # the runtime travels packed


def test_only_steps_whose_image_may_have_opentelemetry_carry_the_span():
    pipeline = Pipeline("spans")
    pipeline.add_step(chunks.process_chunk, name="stock", params={"chunk_id": 1})  # python:3.11
    pipeline.add_step(traced_image, name="custom", params={"chunk_id": 2})
    pipeline.add_step(traced_packages, name="installs", params={"chunk_id": 3})
    programs = dict((function, program) for program, function in _programs(pipeline.compile()))
    assert "step_runtime.py: run, coerce, save\n" in programs["stock"]
    assert "step_runtime.py: run, span, coerce, save\n" in programs["custom"]
    assert "step_runtime.py: run, span, coerce, save\n" in programs["installs"]


@pytest.mark.parametrize("source", EXAMPLES, ids=lambda p: p.name)
def test_example_programs_name_a_runtime_the_local_runner_provides(source, no_runtime_loaded):
    from kale_like.backends.local import programs

    for program, function in _programs(kale_like.compile(source)):
        match = RUNTIME_PATTERN.search(program)
        assert match, function
        name = programs.provide_runtime(program)
        assert name == match.group(1) and hasattr(sys.modules[name], "_kl_run_step")
        code = programs.compile_program(program, f"<component {function}>")
        assert code == compile(program, f"<component {function}>", "exec", dont_inherit=True)


def test_a_program_without_a_packed_runtime_is_compiled_as_it_is():
    from kale_like.backends.local import programs

    program = "def step(x: int):\n    return x\n"
    assert programs.provide_runtime(program) is None
    assert programs.compile_program(program, "<c>") == compile(program, "<c>", "exec", dont_inherit=True)


def test_compiled_runtime_is_kept_in_the_cache_folder_and_read_back(tmp_path, monkeypatch, no_runtime_loaded):
    """A new process (here: the runtime gone from sys.modules) reads the compiled runtime from the
    cache folder instead of compiling it; a damaged or foreign file there is compiled over."""
    from kale_like.backends.local import programs

    program, _ = _programs(kale_like.compile(REPO / "examples" / "pipelines" / "kale_loop_item.py"))[0]
    compiled = []
    monkeypatch.setattr(programs, "compile", lambda *a, **k: compiled.append(a[1]) or compile(*a, **k),
                        raising=False)
    name = programs.provide_runtime(program, tmp_path)
    (kept,) = tmp_path.glob("runtime-*.marshal")
    assert compiled == [f"<{name}>"] and not list(tmp_path.glob("*.partial"))
    for damage in (None, b"not marshal data", kept.read_bytes()[:100]):
        if damage is not None:
            kept.write_bytes(damage)
        del sys.modules[name]
        assert programs.provide_runtime(program, tmp_path) == name
    assert len(compiled) == 3  # read back once, compiled over the two damaged files


def test_runs_keep_the_compiled_runtime_in_the_folder_named_by_the_environment(tmp_path, monkeypatch,
                                                                              no_runtime_loaded):
    monkeypatch.setenv("KALE_LIKE_CACHE_DIR", str(tmp_path / "cache"))
    result = kale_like.run(REPO / "examples" / "pipelines" / "kale_loop_item.py", {}, store=tmp_path / "store",
                           echo=False)
    assert result.succeeded, result.error
    assert list((tmp_path / "cache").glob("runtime-*.marshal"))


def test_a_component_unpacks_its_runtime_itself_whatever_its_arguments_are_called(tmp_path, monkeypatch,
                                                                                  no_runtime_loaded):
    """On a cluster nothing provides the runtime: the component unpacks it, with the builtins, even
    when a step's values are called `compile` or `exec`."""
    from kale_like.backends.local import programs

    source = tmp_path / "shadowing.py"
    source.write_text(
        "from pathlib import Path\n\nfrom kale_like import pipeline, step\n\n\n"
        "@step\ndef make(compile: int, exec: int, folder: str):\n"
        "    Path(folder, 'out').write_text(str(compile + exec))\n\n\n"
        "@pipeline\ndef shadowing(compile: int = 2, exec: int = 3, folder: str = ''):\n"
        "    make(compile, exec, folder)\n",
        encoding="utf-8")
    monkeypatch.setattr(programs, "provide_runtime", lambda program, cache_dir=None: None)
    result = kale_like.run(source, {"folder": str(tmp_path)}, store=tmp_path / "store", echo=False, backend="thread")
    assert result.succeeded, result.error
    assert (tmp_path / "out").read_text() == "5"
    assert any(name.startswith("kale_like_runtime_") for name in sys.modules)  # unpacked by the component


# ---------------------------------------------------------------------------
# Steps of one function share one component


def _spec(text: str) -> dict:
    return yaml.safe_load(text.split("\n---\n")[0])


def test_steps_of_one_function_share_one_component_and_keep_their_task_names():
    pipeline = Pipeline("many")
    for i in range(20):
        pipeline.add_step(chunks.process_chunk, name=f"chunk_{i}", params={"chunk_id": i})
    spec = _spec(pipeline.compile())
    assert list(spec["components"]) == ["comp-process-chunk"]
    assert list(spec["deploymentSpec"]["executors"]) == ["exec-process-chunk"]
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == sorted(f"chunk-{i}" for i in range(20))
    for i in range(20):
        assert tasks[f"chunk-{i}"]["taskInfo"]["name"] == f"chunk-{i}"
        assert tasks[f"chunk-{i}"]["inputs"]["parameters"]["step_name"]["runtimeValue"]["constant"] == f"chunk_{i}"


def test_steps_with_different_settings_do_not_share_a_component(tmp_path):
    pipeline = Pipeline("settings")
    pipeline.add_step(chunks.process_chunk, name="plain_a", params={"chunk_id": 1})
    pipeline.add_step(chunks.process_chunk, name="plain_b", params={"chunk_id": 2})
    pipeline.add_step(other_image, name="other", params={"chunk_id": 3})
    spec = _spec(pipeline.compile())
    refs = {name: task["componentRef"]["name"] for name, task in spec["root"]["dag"]["tasks"].items()}
    assert refs == {"plain-a": "comp-process-chunk", "plain-b": "comp-process-chunk", "other": "comp-other"}
    pipeline.add_step(other_image, name="other_too", params={"chunk_id": 4})
    spec = _spec(pipeline.compile())
    refs = {name: task["componentRef"]["name"] for name, task in spec["root"]["dag"]["tasks"].items()}
    assert refs["other"] == refs["other-too"] == "comp-other-image"


def test_a_step_named_like_the_shared_function_keeps_its_task_name():
    pipeline = Pipeline("named")
    pipeline.add_step(chunks.process_chunk, params={"chunk_id": 1})  # named process_chunk
    pipeline.add_step(chunks.process_chunk, name="again", params={"chunk_id": 2})
    spec = _spec(pipeline.compile())
    refs = {name: task["componentRef"]["name"] for name, task in spec["root"]["dag"]["tasks"].items()}
    # the shared function is renamed clear of the step: process_chunk_step
    assert refs == {"process-chunk": "comp-process-chunk-step", "again": "comp-process-chunk-step"}


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_shared_component_runs_name_each_task_in_reports_logs_and_lineage(tmp_path, backend):
    import sqlite3

    pipeline = Pipeline("reported")
    for i in range(3):
        pipeline.add_step(chunks.process_chunk, name=f"chunk_{i}", params={"chunk_id": i})
    result = pipeline.run(ParallelExecutor(max_workers=2, backend=backend), store=tmp_path / "store", echo=False)
    assert result.succeeded, result.error
    assert [result.value(f"chunk_{i}") for i in range(3)] == [chunks.process_chunk(i) for i in range(3)]
    labels = sorted(task.label for task in result.tasks)
    assert labels == ["chunk-0", "chunk-1", "chunk-2"]
    assert sorted(p.stem for p in (tmp_path / "store").rglob("logs/*.log")) == labels
    with sqlite3.connect(tmp_path / "store" / "lineage.sqlite") as db:
        rows = sorted(db.execute("select label, component from tasks"))
    assert rows == [(label, "comp-process-chunk") for label in labels]
    for i in range(3):  # each output artifact names the step that wrote it
        (output,) = (tmp_path / "store").rglob(f"chunk-{i}/executor_output.json")
        artifact = json.loads(output.read_text())["artifacts"]["result"]["artifacts"][0]
        assert artifact["metadata"]["step"] == f"chunk_{i}"


def test_shared_steps_keep_their_kubernetes_settings_on_the_one_executor():
    from kale_like.backends.kfp.validate import check_pipeline_spec

    pipeline = Pipeline("settings")
    for i in range(3):
        pipeline.add_step(with_settings, name=f"part_{i}", params={"chunk_id": i})
    text = pipeline.compile()
    assert check_pipeline_spec(text) == []
    spec, platform = [d for d in yaml.safe_load_all(text) if d]
    assert list(spec["components"]) == ["comp-with-settings"]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert list(executors) == ["exec-with-settings"]
    assert executors["exec-with-settings"]["secretAsEnv"][0]["secretName"] == "svc-creds"
    assert executors["exec-with-settings"]["podMetadata"]["labels"] == {"team": "data"}
    tasks = spec["root"]["dag"]["tasks"]
    assert all(tasks[f"part-{i}"]["retryPolicy"]["maxRetryCount"] == 2 for i in range(3))


def test_the_dsl_module_of_shared_steps_writes_the_same_yaml(tmp_path):
    """`python <module>.py` merges the shared components as kale_like's compile does."""
    import subprocess

    from kale_like.backends.kfp.compile import compile_graph
    from kale_like.backends.kfp.output_files import write_outputs

    pipeline = Pipeline("chunked")
    for i in range(3):
        pipeline.add_step(chunks.process_chunk, name=f"chunk_{i}", params={"chunk_id": i})
    pipeline.add_step(chunks.combine, name="combine")
    compiled = compile_graph(pipeline.graph(), "pipeline.yaml")
    write_outputs(compiled, tmp_path / "expected.yaml", tmp_path / "pipeline_kfp.py")
    assert "_kl_share_components(pipeline)" in compiled.dsl_source
    done = subprocess.run([sys.executable, str(tmp_path / "pipeline_kfp.py")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pipeline.yaml").read_text() == compiled.yaml_text


def test_the_runtime_cut_into_functions_is_kept_for_the_next_process_and_a_damaged_copy_is_not_used(
        tmp_path, monkeypatch):
    from kale_like.backends.kfp import packed_runtime as packing

    monkeypatch.setenv("KALE_LIKE_CACHE_DIR", str(tmp_path))
    packing._runtime_functions.cache_clear()
    packing.packed_runtime.cache_clear()
    try:
        made = packing.packed_runtime(frozenset())
        (kept,) = tmp_path.glob("runtime-functions-*.json")
        packing._runtime_functions.cache_clear()
        packing.packed_runtime.cache_clear()
        assert packing.packed_runtime(frozenset()) == made  # read back from the kept copy
        for damaged in ("[not json", '{"_kl_run_step": "not lines"}', "[]"):
            kept.write_text(damaged, encoding="utf-8")
            packing._runtime_functions.cache_clear()
            packing.packed_runtime.cache_clear()
            assert packing.packed_runtime(frozenset()) == made  # cut out again, and kept again
    finally:
        packing._runtime_functions.cache_clear()
        packing.packed_runtime.cache_clear()
