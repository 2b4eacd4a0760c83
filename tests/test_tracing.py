"""Issue 5, what a pipeline tells about itself: artifact lineage metadata and OpenTelemetry spans.

Lineage metadata: every compiled component passes its step's origin (source path in the repository,
notebook cells or function, code sha256, git commit and dirty flag, image, kale_like version and the
NAMES of the parameters it reads, never their values) to the step runtime, and after a local run
each output artifact's metadata in `executor_output.json` carries it. The sources are copied into a
fresh git repository made by the test, so the commit is known.

Tracing: a local run emits one pipeline span and one child span per step (status, cached, loop
iteration, duration): checked with the SDK's in-memory exporter (`RunConfig(span_processor=...)`),
and with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a small OTLP/HTTP collector the test starts on
127.0.0.1, for a CLI `--run` in a subprocess. With the variable unset nothing of OpenTelemetry is
imported. A compiled component's runtime emits its own span (parent from TRACEPARENT) on a cluster.

Known defects are `xfail(strict=True)` with the reason starting "BUG:".
"""

from __future__ import annotations

import ast
import gzip
import http.server
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import kale_like
from conftest import CompiledIR
from kale_like.surfaces.cli import main

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

PROD = Path(__file__).resolve().parent / "fixtures" / "production"
TRACED = PROD / "traced.py"
LINEAGE_KEYS = {"source", "step", "code_sha256", "git_commit", "git_dirty", "image", "kale_like_version",
                "parameters"}
PARAMETER_VALUE = "zebra-7731"  # the default of `tag_value` in both lineage fixtures


@pytest.fixture(autouse=True)
def restore_local_run_flag(monkeypatch):
    monkeypatch.setenv("KALE_LIKE_LOCAL_RUN", "")  # the runner sets it in this process; restore it afterwards


# ---------------------------------------------------------------------------
# Lineage metadata


def git(*args: str, cwd: Path) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false", *args]
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    """A committed git repository holding the lineage fixtures under pipelines/."""
    root = tmp_path / "repo"
    (root / "pipelines").mkdir(parents=True)
    for name in ("lineage.ipynb", "lineage_steps.py", "step_settings.py"):
        shutil.copy(PROD / name, root / "pipelines" / name)
    git("init", "-q", ".", cwd=root)
    git("add", ".", cwd=root)
    git("commit", "-q", "-m", "pipelines", cwd=root)
    return root


def compile_ir(source: Path, folder: Path) -> CompiledIR:
    out = folder / f"{source.stem}.yaml"
    assert main([str(source), "--kfp", "-o", str(out), "--no-dsl", "-q"]) == 0
    return CompiledIR(out.read_text(encoding="utf-8"))


def component_lineage(ir: CompiledIR, task: str) -> dict:
    """The `lineage={...}` literal the step's component passes to the step runtime."""
    program = ir.container(task)["command"][-1]
    match = re.search(r"^\s+lineage=(\{.*\}),$", program, re.MULTILINE)
    assert match, f"no lineage in the component of {task}"
    return ast.literal_eval(match.group(1))


def code_hashes(source: Path, capsys) -> dict[str, str]:
    capsys.readouterr()
    assert main([str(source), "--graph-json", "-q"]) == 0
    graph = json.loads(capsys.readouterr().out)
    return {step["name"]: step["code_hash"] for step in graph["steps"]}


def def_line(source: Path, function: str) -> int:
    tree = ast.parse(source.read_text(encoding="utf-8"))
    return next(n.lineno for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function)


def test_compiled_notebook_components_carry_lineage(repo, tmp_path, capsys):
    source = repo / "pipelines" / "lineage.ipynb"
    ir = compile_ir(source, tmp_path)
    hashes = code_hashes(source, capsys)
    head = git("rev-parse", "HEAD", cwd=repo)
    # cells numbered from 1, as JupyterLab shows them (the notebook's first cell holds the parameters)
    for task, step, cell, parameters in (("make-rows", "make_rows", "2", {"n", "tag_value"}),
                                          ("count-rows", "count_rows", "3", set())):
        lineage = component_lineage(ir, task)
        assert LINEAGE_KEYS | {"notebook_cells"} == set(lineage), lineage
        assert lineage["source"] == "pipelines/lineage.ipynb"
        assert lineage["notebook_cells"] == cell
        assert lineage["step"] == step
        assert lineage["code_sha256"] == hashes[step]
        assert (lineage["git_commit"], lineage["git_dirty"]) == (head, "false")
        assert lineage["image"] == ir.container(task)["image"] == "python:3.11"
        assert lineage["kale_like_version"] == kale_like.__version__
        assert set(filter(None, lineage["parameters"].split(","))) == parameters
        assert PARAMETER_VALUE not in json.dumps(lineage)


def test_compiled_function_components_carry_lineage(repo, tmp_path, capsys):
    source = repo / "pipelines" / "lineage_steps.py"
    ir = compile_ir(source, tmp_path)
    hashes = code_hashes(source, capsys)
    for task, step, parameters in (("make-rows", "make_rows", {"n", "tag_value"}), ("count-rows", "count_rows", set()),
                                   ("show", "show", set())):
        lineage = component_lineage(ir, task)
        assert LINEAGE_KEYS | {"function"} == set(lineage), lineage
        assert lineage["source"] == "pipelines/lineage_steps.py"
        assert f"lineage_steps.py:{def_line(source, step)}" in lineage["function"]
        assert lineage["code_sha256"] == hashes[step]
        assert lineage["git_dirty"] == "false"
        assert set(filter(None, lineage["parameters"].split(","))) == parameters
        assert PARAMETER_VALUE not in json.dumps(lineage)


def test_lineage_records_the_image_and_a_dirty_source(repo, tmp_path):
    source = repo / "pipelines" / "lineage_steps.py"
    with source.open("a", encoding="utf-8") as handle:
        handle.write("\n# not committed\n")
    out = tmp_path / "img.yaml"
    assert main([str(source), "--kfp", "-o", str(out), "--no-dsl", "-q", "--image", "registry.example/x:1"]) == 0
    lineage = component_lineage(CompiledIR(out.read_text(encoding="utf-8")), "make-rows")
    assert lineage["image"] == "registry.example/x:1"
    assert lineage["git_dirty"] == "true"


def test_lineage_names_the_step_function(repo, tmp_path):
    ir = compile_ir(repo / "pipelines" / "step_settings.py", tmp_path)
    lineage = component_lineage(ir, "tagged")  # @step(name="tagged") def load(n)
    assert "load" in lineage["function"]


def executor_outputs(run_root: Path) -> dict[str, dict]:
    """Task directory name -> its executor_output.json, for every task of a run."""
    return {path.parent.name: json.loads(path.read_text(encoding="utf-8"))
            for path in run_root.rglob("executor_output.json")}


@pytest.mark.parametrize("name, producers", [
    ("lineage.ipynb", {"make-rows": "rows"}),
    ("lineage_steps.py", {"make-rows": "rows", "count-rows": "counted"}),
])
def test_output_artifacts_carry_lineage_after_a_local_run(repo, tmp_path, name, producers):
    source = repo / "pipelines" / name
    ir = compile_ir(source, tmp_path)
    result = kale_like.run(source, backend="thread", store=tmp_path / "store", echo=False)
    assert result.succeeded, result.error
    outputs = executor_outputs(result.store)
    seen = {}
    for task, document in outputs.items():
        for output, entry in document.get("artifacts", {}).items():
            for artifact in entry["artifacts"]:
                seen[task] = output
                metadata = artifact["metadata"]
                expected = component_lineage(ir, task)
                assert {k: metadata.get(k) for k in expected} == expected
                assert metadata["variable"] == output
                assert metadata["format"] == "json"
                assert PARAMETER_VALUE not in json.dumps(metadata)
    assert seen == producers
    with sqlite3.connect(result.store.parent.parent / "lineage.sqlite") as connection:
        commit, dirty = connection.execute("SELECT git_commit, git_dirty FROM runs WHERE run_id = ?",
                                           (result.run_id,)).fetchone()
    assert (commit, dirty) == (git("rev-parse", "HEAD", cwd=repo), 0)


# ---------------------------------------------------------------------------
# Spans from a local run, in memory


def traced_run(store: Path, params: dict | None = None):
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from kale_like.backends.local.run import RunConfig, run_pipeline
    from kale_like.surfaces.api import pipeline_ir

    exporter = InMemorySpanExporter()
    config = RunConfig(store=store, max_workers=2, backend="thread", echo=False,
                       span_processor=SimpleSpanProcessor(exporter))
    result = run_pipeline(pipeline_ir(TRACED), params or {}, config)
    return result, exporter.get_finished_spans()


def split(spans):
    roots = [s for s in spans if s.parent is None]
    assert len(roots) == 1, [s.name for s in roots]
    root = roots[0]
    children = {s.name: s for s in spans if s is not root}
    assert len(children) == len(spans) - 1, "two spans with one name"
    return root, children


# the loop over make()'s list gets two generated steps that keep an empty list from failing `total`
# (kale_like/lowering/empty_loops.py): they are tasks like any other
STEP_SPANS = {"make": "", "for-1-items-or-filler": "", "for-1-has-items": "", "square[0]": "0", "square[1]": "1",
              "square[2]": "2", "total": ""}


def test_local_run_emits_a_pipeline_span_and_a_child_span_per_step(tmp_path):
    result, spans = traced_run(tmp_path / "store")
    assert result.succeeded, result.error
    root, children = split(spans)
    assert root.name == "pipeline traced"
    assert root.attributes["kale_like.pipeline"] == "traced"
    assert root.attributes["kale_like.run_id"] == result.run_id
    assert root.attributes["kale_like.status"] == "SUCCEEDED"
    assert set(children) == set(STEP_SPANS) == {t.label for t in result.tasks}
    for name, span in children.items():
        assert span.parent.span_id == root.context.span_id
        assert span.context.trace_id == root.context.trace_id
        assert span.attributes["kale_like.step"] == name
        assert span.attributes["kale_like.status"] == "done"
        assert span.attributes["kale_like.cached"] is False
        assert span.attributes["kale_like.iteration"] == STEP_SPANS[name]
        assert span.attributes["kale_like.duration_seconds"] >= 0
        assert root.start_time <= span.start_time <= span.end_time <= root.end_time
    assert children["make"].end_time <= children["square[0]"].start_time
    assert max(children[f"square[{i}]"].end_time for i in range(3)) <= children["total"].start_time


def test_cached_rerun_marks_every_step_span_cached(tmp_path):
    store = tmp_path / "store"
    first, _ = traced_run(store)
    assert first.succeeded
    again, spans = traced_run(store)
    assert again.succeeded
    root, children = split(spans)
    assert set(children) == set(STEP_SPANS)
    for name, span in children.items():
        assert span.attributes["kale_like.cached"] is True, name
        assert span.attributes["kale_like.status"] == "cached"
        assert span.attributes["kale_like.iteration"] == STEP_SPANS[name]
    assert root.attributes["kale_like.run_id"] == again.run_id != first.run_id


def test_failed_step_and_pipeline_spans_have_error_status(tmp_path):
    from opentelemetry.trace import StatusCode

    result, spans = traced_run(tmp_path / "store", {"bad": 1})
    assert not result.succeeded
    root, children = split(spans)
    assert root.attributes["kale_like.status"] == "FAILED"
    assert root.status.status_code == StatusCode.ERROR
    failed = children["square[1]"]
    assert failed.attributes["kale_like.status"] == "failed"
    assert failed.attributes["kale_like.iteration"] == "1"
    assert failed.status.status_code == StatusCode.ERROR
    assert "iteration 1 fails on purpose" in failed.status.description
    assert children["square[0]"].status.status_code != StatusCode.ERROR


# ---------------------------------------------------------------------------
# Spans over OTLP/HTTP to a collector on 127.0.0.1


class Collector:
    """A minimal OTLP/HTTP trace receiver: POST /v1/traces with a protobuf ExportTraceServiceRequest."""

    def __init__(self):
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest, ExportTraceServiceResponse,
        )

        self.requests: list = []
        self.paths: list[str] = []
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                collector.paths.append(self.path)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector.requests.append(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self) -> list[tuple[dict, object]]:
        """(resource attributes, span) for every span received."""
        found = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    found += [(resource, span) for span in scope_spans.spans]
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector():
    receiver = Collector()
    yield receiver
    receiver.close()


def attributes(span) -> dict:
    values = {}
    for item in span.attributes:
        value = item.value
        values[item.key] = getattr(value, value.WhichOneof("value"))
    return values


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "KALE_LIKE_", "TRACEPARENT"))}
    return {**env, **extra}


@pytest.mark.slow
def test_cli_run_sends_spans_to_the_otlp_endpoint(tmp_path, collector):
    command = [sys.executable, "-m", "kale_like", str(TRACED), "--run", "--store", str(tmp_path / "store"),
               "--max-workers", "2", "-q"]
    done = subprocess.run(command, cwd=tmp_path, env=clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert collector.paths and set(collector.paths) == {"/v1/traces"}
    received = collector.spans()
    assert {resource.get("service.name") for resource, _ in received} == {"kale_like"}
    spans = [span for _, span in received]
    roots = [s for s in spans if not s.parent_span_id]
    assert [r.name for r in roots] == ["pipeline traced"]
    root = roots[0]
    assert attributes(root)["kale_like.status"] == "SUCCEEDED"
    children = {s.name: s for s in spans if s is not root}
    assert set(children) == set(STEP_SPANS)  # one each: the components' own spans stay off in a local run
    assert len(spans) == 1 + len(STEP_SPANS)
    for name, span in children.items():
        assert span.parent_span_id == root.span_id
        assert span.trace_id == root.trace_id
        found = attributes(span)
        assert found["kale_like.status"] == "done"
        assert found["kale_like.cached"] is False
        assert found["kale_like.iteration"] == STEP_SPANS[name]


@pytest.mark.slow
def test_without_the_endpoint_nothing_of_opentelemetry_is_imported(tmp_path):
    script = (
        "import sys, kale_like\n"
        f"result = kale_like.run({str(TRACED)!r}, store={str(tmp_path / 'store')!r}, backend='thread', "
        "max_workers=2, echo=False)\n"
        "assert result.succeeded, result.error\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'opentelemetry'))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=clean_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_compiled_component_runtime_sends_its_span_with_the_traceparent(collector, monkeypatch):
    """On a cluster (no KALE_LIKE_LOCAL_RUN) each step's runtime sends its own span, child of TRACEPARENT."""
    from kale_like.runtime.step_runtime import _kl_run_step

    trace_id, parent_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
    monkeypatch.setenv("TRACEPARENT", f"00-{trace_id}-{parent_id}-01")
    monkeypatch.delenv("KALE_LIKE_LOCAL_RUN")
    assert _kl_run_step(step="cluster_step", cells=[("cell 0 (cluster_step)", "y = 2\n")],
                        result=[("y", "int")]) == 2
    with pytest.raises(ZeroDivisionError):
        _kl_run_step(step="broken_step", cells=[("cell 0 (broken_step)", "y = 1 / 0\n")])
    spans = {span.name: span for _, span in collector.spans()}
    assert set(spans) == {"cluster_step", "broken_step"}
    for name, status in (("cluster_step", "done"), ("broken_step", "failed")):
        span = spans[name]
        assert span.trace_id.hex() == trace_id
        assert span.parent_span_id.hex() == parent_id
        assert attributes(span)["kale_like.step"] == name
        assert attributes(span)["kale_like.status"] == status


def test_compiled_component_runtime_sends_nothing_in_a_local_run(collector, monkeypatch):
    from kale_like.runtime.step_runtime import _kl_run_step

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
    monkeypatch.setenv("KALE_LIKE_LOCAL_RUN", "1")
    assert _kl_run_step(step="local_step", cells=[("c", "y = 3\n")], result=[("y", "int")]) == 3
    assert collector.requests == []
