"""A local run of a compiled pipeline: worker pool, cache, artifact store, lineage and reporting.

Layout of the store (default `.kale_like/` in the working directory):
`runs/<run id>/<task path>/` holds each task's outputs and `executor_output.json` (written in
`<task path>.partial/` and renamed once the task succeeded: see `partial_outputs`, which also
removes what killed runs were writing);
`runs/<run id>/logs/<task>.log` its output; `cache/<key>.json` the record of a finished task,
written atomically after the task succeeded (so a run killed at any point, even with SIGKILL, is
resumed by running again: finished tasks are cache hits, a half-done one runs again);
`cache-index` lists, a line each, the cache keys of the records with their inputs' content hashes left
out (so a task whose inputs are still being hashed can start at once when no record can match it);
`lineage.sqlite` the lineage database. (The step runtime, compiled, is kept in the user's cache
folder: see `programs`.)

Large outputs (`BACKGROUND_HASH_BYTES` and up) are hashed on a thread while the tasks that need them
start; a task's cache record and its "done" event wait for the hashes, and the run for both.
"""

from __future__ import annotations

import concurrent.futures as futures
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from kale_like.backends.local.component_runner import ComponentCall, ComponentResult, tail
from kale_like.backends.local.content import hash_below, hash_path
from kale_like.backends.local.ir import PipelineIR, component_program, input_defaults
from kale_like.backends.local.lineage import Lineage
from kale_like.backends.local.partial_outputs import SUFFIX, RunLock, publish, remove_leftovers, writing_folder
from kale_like.backends.local.programs import preload
from kale_like.backends.local.scheduler import DagRunner, Outcome, TaskEvent
from kale_like.backends.local.tracing import chained, tracer_for
from kale_like.backends.local.workers import ProcessWorkers, ThreadWorkers
from kale_like.errors import KaleLikeError
from kale_like.kfp_server import DEFAULT, ServerVersion
from kale_like.os_errors import explained
from kale_like.user_cache import cache_folder

BACKENDS = ("process", "thread")


@dataclass(frozen=True)
class RunConfig:
    """How to run: where, how wide, and with which policies."""

    store: Path = Path(".kale_like")
    max_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    backend: str = "process"
    cache: bool = True
    echo: bool = True
    collect_failed_iterations: bool = False
    kfp_version: ServerVersion = DEFAULT  # the KFP server whose driver the run follows (backends/local/driver.py)
    lineage_context: dict = field(default_factory=dict)
    span_processor: Any = None  # an OpenTelemetry span processor (tests); else OTEL_EXPORTER_OTLP_ENDPOINT


@dataclass
class TaskReport:
    path: str
    label: str
    status: str = "pending"
    seconds: float = 0.0
    error: str = ""
    log_path: str = ""
    outputs: dict = field(default_factory=dict)


@dataclass
class RunResult:
    """What a run did: its status, the pipeline's outputs and a report per task."""

    run_id: str
    pipeline: str
    status: str
    outputs: dict[str, Any]
    tasks: list[TaskReport]
    store: Path
    error: str = ""
    warnings: list[str] = field(default_factory=list)
    artifact_outputs: frozenset[str] = frozenset()  # the pipeline outputs in `outputs` that are artifact URIs

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    @property
    def returned(self) -> Any:
        """What the pipeline returned, as calling its function in Python returns it (None when it returns
        nothing): `outputs` holds a returned artifact as the URIs KFP gives it; this loads the value."""
        from kale_like.runtime.step_runtime import _kl_load_value

        if not self.outputs:
            return None
        values = {}
        for name, value in self.outputs.items():
            if name in self.artifact_outputs:
                values[name] = _kl_load_value(value[0]) if len(value) == 1 else [_kl_load_value(u) for u in value]
            else:
                values[name] = value
        return next(iter(values.values())) if len(values) == 1 else values

    def task(self, label: str) -> TaskReport:
        """A task's report by label (`train[2]`); step names with `_` match KFP's `-` spelling."""
        for candidate in (label, label.replace("_", "-")):
            for report in self.tasks:
                if report.label == candidate:
                    return report
        raise KeyError(label)

    def value(self, label: str, output: str | None = None) -> Any:
        """A step's output value (its only one, or `output`), loaded from the store."""
        from kale_like.runtime.step_runtime import _kl_load_value

        outputs = self.task(label).outputs
        named = {**outputs.get("parameters", {}), **outputs.get("artifacts", {})}
        if output is None:
            if len(named) != 1:
                raise KeyError(f"step {label!r} has outputs {sorted(named)}; name one")
            output = next(iter(named))
        if output in outputs.get("parameters", {}):
            return outputs["parameters"][output]
        uris = outputs.get("artifacts", {})[output]
        return _kl_load_value(uris[0]) if len(uris) == 1 else [_kl_load_value(u) for u in uris]


def run_pipeline(ir: PipelineIR, arguments: dict | None = None, config: RunConfig | None = None,
                 observer: Callable[[TaskEvent], None] | None = None) -> RunResult:
    """Run a compiled pipeline to completion on this machine."""
    config = config or RunConfig()
    program = _first_program(ir)  # the step runtime it carries, compiled before the workers fork
    with LocalRun(config, most_tasks=most_at_once(ir), program=program) as run:
        return run.run(ir, arguments, observer)


class LocalRun:
    """A local run made ready before its pipeline is known: the store checked and locked, and the
    worker processes forked (they fork now, while this process has no other thread). A caller whose
    IR is still being compiled elsewhere (`Pipeline.run`: in a forked child, 0.1-0.2 s) starts the
    run first, so the workers start (and import kfp's executor) during the compile instead of after
    it; `run_pipeline` is the same with the IR known first. `run` runs it once; leaving the `with`
    block (or `close`) stops the workers and releases the lock, whether or not it ran.

    `most_tasks`: at most how many tasks can run at once, when the caller knows (no more workers
    fork than that; `run` forks more if the IR allows more); `program`: a component program, or
    the DSL module, whose step runtimes the workers should inherit (compiled here before they fork:
    else each worker compiles them on its first step, 3-8 ms each with no compiled copy kept)."""

    def __init__(self, config: RunConfig, most_tasks: int | None = None, program: str = "") -> None:
        if config.backend == "process" and "fork" not in multiprocessing.get_all_start_methods():
            raise KaleLikeError("the process backend forks its workers, and this platform cannot fork", None,
                                "use the thread backend (--backend thread, backend='thread')")
        self.config = config
        self.run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self.store = Path(config.store).resolve()
        try:
            remove_leftovers(self.store)
            self.alive = RunLock(self.store, self.run_id)  # before the workers fork: they hold it too, until they die
        except OSError as error:  # the store cannot be written: say why before anything runs
            message, fix = explained(error)
            raise KaleLikeError(f"the run's store: {message}", None, f"{fix} (--store DIR chooses another)") from None
        self.workers = max(1, config.max_workers)
        self.pool: ProcessWorkers | ThreadWorkers | None = None
        if config.backend == "process":  # no more processes than tasks can run at once (each costs a fork)
            self.workers = min(self.workers, most_tasks or self.workers)
            try:
                preload(program, cache_folder())
                self.pool = ProcessWorkers(self.workers)
            except BaseException:
                self.alive.release()
                raise
        self.cancelled = self.ran = False

    def __enter__(self) -> LocalRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (those busy too, after a cancelled run) and release the store's lock."""
        if self.pool is not None:
            self.pool.close_soon(cancel=self.cancelled)
            self.pool = None
        self.alive.release()

    def run(self, ir: PipelineIR, arguments: dict | None = None,
            observer: Callable[[TaskEvent], None] | None = None) -> RunResult:
        """Run `ir` to completion (once)."""
        if self.ran:
            raise RuntimeError("a LocalRun runs one pipeline once: start another for the next run")
        self.ran = True
        config = self.config
        if self.pool is None:  # the thread backend: the run's own threads, as many as it can use
            preload(_first_program(ir), cache_folder())
            self.pool = ThreadWorkers(self.workers)
        elif isinstance(self.pool, ProcessWorkers):  # forked before the IR was known: as many as it can use
            self.pool.resize(min(max(1, config.max_workers), most_at_once(ir) or config.max_workers))
        pool = self.pool
        root = self.store / "runs" / self.run_id
        run_id = self.run_id
        root.mkdir(parents=True, exist_ok=True)
        parameters = {**ir.parameter_defaults(), **(arguments or {})}
        lineage = Lineage(Path(config.store) / "lineage.sqlite")
        lineage.start_run(run_id, ir, parameters, config.lineage_context)
        reports: dict[str, TaskReport] = {}
        lock = threading.Lock()

        def observe(event: TaskEvent) -> None:
            if event.status == "pending":  # known, not started: for the progress display only
                if observer is not None:
                    observer(event)
                return
            with lock:
                report = reports.setdefault(event.path, TaskReport(event.path, event.label))
                report.status = event.status
                report.error = "" if event.status in ("done", "cached") else (event.error or report.error)
                report.seconds = event.seconds or report.seconds
                report.log_path = event.log_path or report.log_path
                report.outputs = event.outputs or report.outputs
            if event.status in ("done", "cached", "failed"):
                lineage.record_task(run_id, event)
            if observer is not None:
                observer(event)

        tracer = tracer_for(ir.name, run_id, config.span_processor)
        if tracer is not None:
            observer = chained(observer, tracer.observe)
        executor = _TaskExecutor(ir, root, config, pool, observe)
        runner = DagRunner(ir, executor.execute, observe, max_in_flight=max(1, config.max_workers) * 4,
                           collect_failed_iterations=config.collect_failed_iterations,
                           kfp_version=ServerVersion.parse(config.kfp_version), run_name=run_name(ir, run_id))
        try:
            outcome = runner.run_dag("root", parameters, {}, "root")
        except KeyboardInterrupt:
            runner.cancelled.set()
            outcome = Outcome("failed", error="interrupted")
            raise
        finally:
            self.cancelled = runner.cancelled.is_set()
            pool.close_soon(cancel=self.cancelled)  # workers exit while the last outputs are hashed and
            self.pool = None  # recorded, and after the run returns
            late = executor.drain()
            if late and outcome_status(locals().get("outcome")):
                outcome = Outcome("failed", error="; ".join(late))
            status = "SUCCEEDED" if outcome_status(locals().get("outcome")) else "FAILED"
            lineage.finish_run(run_id, status)
            lineage.close()
            if tracer is not None:
                tracer.close(status)
        outputs = {**outcome.parameters, **{k: [a["uri"] for a in v] for k, v in outcome.artifacts.items()}}
        ordered = list(reports.values())
        return RunResult(run_id, ir.name, status, outputs, ordered, root, outcome.error, runner.warnings,
                         artifact_outputs=frozenset(outcome.artifacts))


def run_name(ir: PipelineIR, run_id: str) -> str:
    """The run's resource name as a driver reports it (`pipelineJobResourceName`): on a cluster the
    Argo Workflow's name, the pipeline's name and a random suffix; here the run id's random part."""
    name = re.sub(r"[^a-z0-9-]+", "-", ir.name.lower()).strip("-") or "pipeline"
    return f"{name}-{run_id.rsplit('-', 1)[-1]}"


def _first_program(ir: PipelineIR) -> str:
    for executor in ir.spec.get("deploymentSpec", {}).get("executors", {}).values():
        try:
            return component_program(executor)[0]
        except KaleLikeError:  # a container step: nothing to compile
            continue
    return ""


def most_at_once(ir: PipelineIR) -> int | None:
    """At most how many executor tasks can run at the same time, if a pipeline bounds it simply: a
    root DAG of executor tasks only allows its tasks minus its longest chain of dependencies plus one
    (tasks along a chain never overlap); None with loops or nested DAGs (conditions, exit handlers)."""
    tasks = ir.component("root").get("dag", {}).get("tasks", {})
    for task in tasks.values():
        if ("parameterIterator" in task or "artifactIterator" in task
                or "dag" in ir.component(task["componentRef"]["name"])):
            return None
    parents = {name: [p for p in ir.upstream(task) if p in tasks] for name, task in tasks.items()}
    children: dict[str, list[str]] = {name: [] for name in tasks}
    for name, names in parents.items():
        for parent in names:
            children[parent].append(name)
    waiting = {name: len(names) for name, names in parents.items()}
    ready = [name for name, count in waiting.items() if count == 0]
    depth = dict.fromkeys(ready, 1)  # the longest chain ending at a task, in topological order
    while ready:
        name = ready.pop()
        for child in children[name]:
            depth[child] = max(depth.get(child, 0), depth[name] + 1)
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if any(waiting.values()):
        return None  # a cycle: the scheduler reports it
    return max(1, len(tasks) - max(depth.values(), default=0) + 1)


def outcome_status(outcome: Outcome | None) -> bool:
    return outcome is not None and outcome.status != "failed"


class _TaskExecutor:
    """Runs one executor task: cache lookup, retries, worker call, outputs, cache record."""

    def __init__(self, ir: PipelineIR, root: Path, config: RunConfig, pool: ProcessWorkers | ThreadWorkers, observe):
        self.ir, self.root, self.config, self.pool, self.observe = ir, root, config, pool, observe
        self.cache_dir = Path(config.store).resolve() / "cache"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.index_path = Path(config.store).resolve() / "cache-index"  # partial keys of the records
        self.indexed, self.partials = self._load_index()
        self.index_fd: int | None = None
        self.hashes: dict[str, str | futures.Future] = {}
        self.hash_lock = threading.Lock()
        self.hasher: futures.ThreadPoolExecutor | None = None
        self.finishing: list[threading.Thread] = []
        self.late_failures: list[str] = []

    def execute(self, path: str, label: str, component: str, parameters: dict, artifacts: dict,
                executor_label: str) -> Outcome:
        """Run the task; a store that cannot be written (a full disk, permission denied) fails it
        with what happened and what to do."""
        try:
            return self._execute(path, label, component, parameters, artifacts, executor_label)
        except OSError as error:
            message, fix = explained(error)
            self.observe(TaskEvent(path, label, "failed", error=f"{message} ({fix})"))
            return Outcome("failed", error=f"{message} ({fix})")

    def _execute(self, path: str, label: str, component: str, parameters: dict, artifacts: dict,
                 executor_label: str) -> Outcome:
        spec = self.ir.component(component)
        program, function = component_program(self.ir.executor(executor_label))
        task = _task_spec(self.ir, path)
        task_root = self.root / _safe(path)
        log_path = str(self.root / "logs" / f"{_safe(label)}.log")
        inputs = {**input_defaults(spec), **parameters}
        final_status = any("taskFinalStatus" in v for v in task.get("inputs", {}).get("parameters", {}).values())
        cacheable = (self.config.cache and bool(task.get("cachingOptions", {}).get("enableCache"))
                     and not final_status)  # an exit step reports this run's outcome: never from the cache
        key = ""
        base = _KeyBase(self.ir.name, program, function, inputs, spec) if cacheable else None
        if base is not None and self._hashes_pending(artifacts) and self._never_stored(base, artifacts):
            pass  # no cache record can match, whatever the inputs hash to: run without waiting for their hashes
        elif base is not None:
            key = self._cache_key(base, artifacts)
            hit = self._cached(key)
            if hit is not None:
                self.observe(TaskEvent(path, label, "cached", 0.0, log_path="",
                                       inputs=_event_inputs(inputs, artifacts), outputs=_event_outputs(hit),
                                       component=component))
                return hit
        writing = writing_folder(task_root)
        executor_input = _executor_input(spec, inputs, artifacts, writing)
        environment = {e["name"]: e.get("value", "") for e in
                       self.ir.executor(executor_label).get("container", {}).get("env", []) if "name" in e}
        call = ComponentCall(label, program, function, executor_input, log_path, environment)
        attempts = 1 + int(task.get("retryPolicy", {}).get("maxRetryCount", 0) or 0)
        started = time.perf_counter()
        self.observe(TaskEvent(path, label, "running", log_path=log_path, component=component))
        result: ComponentResult | None = None
        for attempt in range(attempts):
            if result is not None:  # a retry
                self.observe(TaskEvent(path, label, "retrying", error=result.error, log_path=log_path))
            shutil.rmtree(writing, ignore_errors=True)
            try:
                result = self.pool.run(call, self.config.echo)
            except KeyboardInterrupt:  # Ctrl-C while the step ran on the main thread
                shutil.rmtree(writing, ignore_errors=True)
                self.observe(TaskEvent(path, label, "failed", time.perf_counter() - started,
                                       "interrupted (Ctrl-C)", tail(log_path), log_path, component=component))
                raise
            if result.ok:
                break
        assert result is not None  # attempts >= 1
        seconds = time.perf_counter() - started
        if not result.ok:
            shutil.rmtree(writing, ignore_errors=True)  # nothing half-written is left behind
            self.observe(TaskEvent(path, label, "failed", seconds, result.error, result.log_tail, log_path,
                                   inputs=_event_inputs(inputs, artifacts), component=component))
            return Outcome("failed", error=result.error)
        executor_output = publish(writing, task_root, result.executor_output)
        outcome = _outcome(spec, _executor_input(spec, inputs, artifacts, task_root), executor_output)
        self._remember_hashes(outcome)

        def finish() -> None:  # the cache record and the "done" event need the content hashes
            if base is not None:  # cacheable
                self._store(key or self._cache_key(base, artifacts), outcome, self._partial_key(base, artifacts))
            self.observe(TaskEvent(path, label, "done", seconds, log_path=log_path,
                                   inputs=_event_inputs(inputs, artifacts), outputs=_event_outputs(outcome),
                                   component=component, hashes=self._hashes_of(outcome, artifacts)))

        if self._hashes_pending(outcome.artifacts) or self._hashes_pending(artifacts):
            self._finish_later(path, label, finish)  # dependents start while large outputs are hashed
        else:
            finish()
        return outcome

    def _cache_key(self, base: _KeyBase, artifacts: dict) -> str:
        digest = base.digest.copy()
        for name in sorted(artifacts):
            for artifact in artifacts[name]:
                digest.update(name.encode())
                digest.update(self.content_hash(artifact["uri"]).encode())
        digest.update(base.outputs)
        return digest.hexdigest()

    def _partial_key(self, base: _KeyBase, artifacts: dict) -> str:
        """The cache key without the inputs' content hashes: every key it can complete to shares it."""
        digest = base.digest.copy()
        digest.update(b"\0partial")
        for name in sorted(artifacts):
            digest.update(f"{name}\0{len(artifacts[name])}\0".encode())
        digest.update(base.outputs)
        return digest.hexdigest()

    def _never_stored(self, base: _KeyBase, artifacts: dict) -> bool:
        """True if no cache record of this store can match the task, whatever its inputs hash to.

        Known only in a store whose records all have an index entry (one created by this version);
        any doubt answers False (the caller then waits for the hashes and looks the record up)."""
        return self.indexed and self._partial_key(base, artifacts) not in self.partials

    def _load_index(self) -> tuple[bool, set[str]]:
        """Whether every cache record has its partial key in the index (true of an index started in an
        empty cache), and the partial keys listed. Records another run stores from now on are not seen:
        at worst a task runs that could have been a cache hit, as when both runs look up at once."""
        try:
            with open(self.index_path, encoding="ascii", errors="replace") as handle:
                return True, set(handle.read().split())
        except FileNotFoundError:
            pass
        with os.scandir(self.cache_dir) as entries:
            if any(entry.name.endswith(".json") for entry in entries):
                return False, set()  # records written before the index existed: it cannot answer for them
        os.close(os.open(self.index_path, os.O_WRONLY | os.O_CREAT, 0o644))
        return True, set()

    def content_hash(self, uri: str) -> str:
        with self.hash_lock:
            known = self.hashes.get(uri)
        if isinstance(known, futures.Future):
            return known.result()
        if known is None:
            known = hash_path(Path(uri))
            with self.hash_lock:
                self.hashes[uri] = known
        return known

    def _remember_hashes(self, outcome: Outcome) -> None:
        """Hash the outputs: small ones now, large ones on a hashing thread (the hash releases the GIL)."""
        for artifacts in outcome.artifacts.values():
            for artifact in artifacts:
                artifact.setdefault("metadata", {})
                uri = artifact["uri"]
                with self.hash_lock:
                    if uri in self.hashes:
                        continue
                known = hash_below(uri, BACKGROUND_HASH_BYTES)  # small outputs (most) hashed here and now
                with self.hash_lock:
                    if known is not None:
                        self.hashes[uri] = known
                        continue
                    if self.hasher is None:
                        self.hasher = futures.ThreadPoolExecutor(2, thread_name_prefix="hash")
                    self.hashes[uri] = self.hasher.submit(hash_path, Path(uri))

    def _hashes_of(self, outcome: Outcome, artifacts: dict) -> dict[str, str]:
        uris = [a["uri"] for values in (outcome.artifacts, artifacts) for v in values.values() for a in v]
        return {uri: self.content_hash(uri) for uri in uris}

    def _hashes_pending(self, artifacts: dict) -> bool:
        if self.hasher is None:  # nothing was ever hashed in the background
            return False
        with self.hash_lock:
            return any(isinstance(known := self.hashes.get(a["uri"]), futures.Future) and not known.done()
                       for values in artifacts.values() for a in values)

    def _finish_later(self, path: str, label: str, finish: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                finish()
            except Exception as error:  # as a failure in `execute` would: the task, and so the run, fails
                message = f"{type(error).__name__}: {error}"
                with self.hash_lock:
                    self.late_failures.append(f"{label}: {message}")
                self.observe(TaskEvent(path, label, "failed", error=message))

        thread = threading.Thread(target=guarded, name=f"finish-{label}", daemon=True)
        with self.hash_lock:
            self.finishing.append(thread)
        thread.start()

    def drain(self) -> list[str]:
        """Wait for the tasks still finishing (cache records, lineage) and the hashing threads; the
        failures among them."""
        while True:
            with self.hash_lock:
                threads, self.finishing = self.finishing, []
            if not threads:
                break
            for thread in threads:
                thread.join()
        if self.hasher is not None:
            self.hasher.shutdown(wait=True)
        if self.index_fd is not None:
            os.close(self.index_fd)
            self.index_fd = None
        return self.late_failures

    def _cached(self, key: str) -> Outcome | None:
        record_path = self.cache_dir / f"{key}.json"
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        for uri in record.get("present", []):
            if not os.path.exists(uri):
                return None  # an output was deleted since: run the step again
        with self.hash_lock:
            self.hashes.update(record.get("hashes", {}))
        return Outcome("cached", record["parameters"], record["artifacts"])

    def _store(self, key: str, outcome: Outcome, partial: str = "") -> None:
        uris = [a["uri"] for artifacts in outcome.artifacts.values() for a in artifacts]
        if partial and self.indexed:  # the index entry first: no record without one
            with self.hash_lock:
                if partial not in self.partials:
                    self.partials.add(partial)
                    if self.index_fd is None:
                        self.index_fd = os.open(self.index_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                    os.write(self.index_fd, f"{partial}\n".encode())  # one append: whole lines
        record = {"parameters": outcome.parameters, "artifacts": outcome.artifacts,
                  "hashes": {uri: self.content_hash(uri) for uri in uris},
                  "present": [uri for uri in uris if os.path.exists(uri)]}  # metrics have no file
        handle, temporary = tempfile.mkstemp(dir=self.cache_dir, prefix=f"{self.root.name}.", suffix=SUFFIX)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(json.dumps(record, default=str))  # json.dump would encode in pure Python
        os.replace(temporary, self.cache_dir / f"{key}.json")


BACKGROUND_HASH_BYTES = 16 << 20  # outputs at least this large are hashed while dependents start


class _KeyBase:
    """What a task's cache key hashes besides its inputs' content: the pipeline's name (a KFP server
    looks cache hits up per pipeline: driver/cache.go `getFingerPrintsAndID`), the program, the
    function, the parameters (hashed, in this order) and the output definitions (hashed last)."""

    def __init__(self, pipeline: str, program: str, function: str, parameters: dict, spec: dict):
        self.digest = hashlib.sha256()
        self.digest.update(f"{pipeline}\0".encode())
        self.digest.update(program.encode())
        self.digest.update(function.encode())
        self.digest.update(json.dumps(parameters, sort_keys=True, default=str).encode())
        self.outputs = json.dumps(spec.get("outputDefinitions", {}), sort_keys=True).encode()


def _task_spec(ir: PipelineIR, path: str) -> dict:
    """The IR task spec at a DAG path such as root/for-loop-2[1]/train."""
    parts = [re.sub(r"\[\d+\]$", "", part) for part in path.split("/")[1:]]
    component = ir.component("root")
    task: dict = {}
    for part in parts:
        task = component["dag"]["tasks"][part]
        component = ir.component(task["componentRef"]["name"])
    return task


def _executor_input(spec: dict, parameters: dict, artifacts: dict, task_root: Path) -> dict:
    """The JSON KFP's executor reads (built as JSON, not protobuf, so ints stay ints)."""
    declared_artifacts = spec.get("inputDefinitions", {}).get("artifacts", {})
    outputs = spec.get("outputDefinitions", {})
    return {
        "inputs": {
            "parameterValues": parameters,
            "artifacts": {
                name: {"artifacts": [_artifact_for_input(a, declared_artifacts[name]) for a in value]}
                for name, value in artifacts.items() if name in declared_artifacts
            },
        },
        "outputs": {
            "parameters": {name: {"outputFile": str(task_root / name)} for name in outputs.get("parameters", {})},
            "artifacts": {
                name: {"artifacts": [{"name": name, "uri": str(task_root / name),
                                      "type": definition["artifactType"], "metadata": {}}]}
                for name, definition in outputs.get("artifacts", {}).items()
            },
            "outputFile": str(task_root / "executor_output.json"),
        },
    }


def _artifact_for_input(artifact: dict, definition: dict) -> dict:
    return {"name": artifact.get("name", ""), "uri": artifact["uri"], "metadata": artifact.get("metadata", {}),
            "type": definition.get("artifactType", artifact.get("type", {}))}


def _outcome(spec: dict, executor_input: dict, executor_output: dict) -> Outcome:
    parameters = dict(executor_output.get("parameterValues", {}))
    for name, output in executor_input["outputs"]["parameters"].items():
        if name not in parameters and os.path.exists(output["outputFile"]):
            with open(output["outputFile"], encoding="utf-8") as handle:
                text = handle.read()
            parameters[name] = _parameter_from_file(text, spec["outputDefinitions"]["parameters"][name])
    artifacts = {}
    written = executor_output.get("artifacts", {})
    for name, declared in executor_input["outputs"]["artifacts"].items():
        produced = written.get(name, {}).get("artifacts") or declared["artifacts"]
        artifacts[name] = [
            {"name": name, "uri": a.get("uri", d["uri"]), "metadata": a.get("metadata", {}), "type": d["type"]}
            for a, d in zip(produced, declared["artifacts"])
        ]
    return Outcome("done", parameters, artifacts)


def _parameter_from_file(text: str, definition: dict) -> Any:
    kind = definition.get("parameterType", "STRING")
    if kind == "STRING":
        return text
    return json.loads(text)


def _event_inputs(parameters: dict, artifacts: dict) -> dict:
    return {"parameters": parameters, "artifacts": {k: [a["uri"] for a in v] for k, v in artifacts.items()}}


def _event_outputs(outcome: Outcome) -> dict:
    return {"parameters": outcome.parameters,
            "artifacts": {k: [a["uri"] for a in v] for k, v in outcome.artifacts.items()}}


def _safe(path: str) -> str:
    """A task path or label as a file name: `train[2]` -> `train@2` (KFP names never hold `@`, so
    an iteration cannot meet a task KFP named `train-2`; `[` is a glob character in shells)."""
    return re.sub(r"[^A-Za-z0-9_.\-/\[\]]", "_", path).replace("[", "@").replace("]", "")
