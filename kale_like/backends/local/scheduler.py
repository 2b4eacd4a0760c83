"""Interpret a KFP v2 pipeline spec: DAGs, ParallelFor, If/Elif/Else, Collected, OneOf, nested DAGs.

The semantics are the KFP backend's, read from the IR: a task runs when the tasks it depends on have
finished; a task with a trigger condition (CEL) runs only if it holds, otherwise it and the tasks that
need its outputs are skipped; an iterator task runs its DAG once per item (at most `parallelismLimit`
at a time). What each task's driver does before it runs -- resolving and type-checking its inputs,
Collected, dsl.OneOf, the exit handler's final status, and the ML Metadata states those read -- is
modelled in `driver.py` for the KFP server version targeted; this module walks the DAGs and asks it.
Executor tasks run on a pool of threads or worker processes;
DAG bookkeeping runs on the calling side: a DAG's ready tasks on at most `max_in_flight` threads
(the only runnable one on the DAG's own thread), a loop's iterations on at most its width of
runner threads, so thread counts follow the pipeline's width, not its size.
"""

from __future__ import annotations

import concurrent.futures as futures
import heapq
import json
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from kale_like.backends.local import driver
from kale_like.backends.local.driver import (CACHED, CANCELED, COMPLETE, FAILED, RUNNING, Consumer, DagRecord,
                                             DriverError)
from kale_like.backends.local.ir import PipelineIR, as_json
from kale_like.kfp_server import DEFAULT, ServerVersion

if TYPE_CHECKING:
    import celpy  # imported where first used: loading it takes a while

_CONTROL_DAG = re.compile(r"^(for-loop|condition-branches|condition|exit-handler)-\d+$")
_SELECTOR = re.compile(r'^parseJson\(string_value\)\["(?P<key>[^"]+)"\]$')


@dataclass
class Outcome:
    """What a finished task (or DAG) produced."""

    status: str  # done | skipped | failed | cached
    parameters: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, list[dict]] = field(default_factory=dict)
    error: str = ""
    # what the driver model reads (driver.Produced): a DAG's sub-tasks, a loop's iterations, the state
    kind: str = "container"  # container | dag | loop
    component: str = ""
    children: dict[str, Outcome] = field(default_factory=dict)
    iterations: list[Outcome] = field(default_factory=list)
    record: DagRecord | None = None

    @property
    def ran(self) -> bool:
        return self.status in ("done", "cached")

    @property
    def state(self) -> str:
        """The ML Metadata state of the task's execution (a DAG's as its record has it)."""
        if self.record is not None:
            return self.record.state
        return _STATES[self.status]


_STATES = {"done": COMPLETE, "cached": CACHED, "failed": FAILED, "skipped": CANCELED}


@dataclass
class TaskEvent:
    """Reported to the run's observer as tasks change state."""

    path: str
    label: str
    status: str  # pending | running | done | cached | skipped | failed | retrying
    seconds: float = 0.0
    error: str = ""
    log_tail: str = ""
    log_path: str = ""
    inputs: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    component: str = ""
    hashes: dict = field(default_factory=dict)


ExecuteFn = Callable[[str, str, str, dict, dict, str], Outcome]
"""(path, label, component, parameters, artifacts, executor label) -> Outcome; runs one executor task."""


class DagRunner:
    """Runs DAGs of one pipeline spec; `execute` runs executor tasks (pooled, cached, retried)."""

    def __init__(self, ir: PipelineIR, execute: ExecuteFn, observe: Callable[[TaskEvent], None],
                 max_in_flight: int, collect_failed_iterations: bool = False,
                 kfp_version: ServerVersion = DEFAULT, run_name: str = "local"):
        self.ir = ir
        self.execute = execute
        self.observe = observe
        self.max_in_flight = max(1, max_in_flight)
        self.collect_failed_iterations = collect_failed_iterations
        self.kfp_version = kfp_version  # the KFP server whose driver the inputs follow (driver.py)
        self.run_name = run_name  # the run's resource name, as the driver reports it in a final status
        self.warnings: list[str] = []
        self._cel: tuple[celpy.Environment, dict[str, celpy.Runner]] | None = None  # made on first use
        self._cel_lock = threading.Lock()
        self._records_lock = threading.Lock()  # one lock for every DAG record: updates walk up parents
        self.cancelled = threading.Event()
        self._dag_outputs = {name: spec["dag"].get("outputs", {})
                             for name, spec in {**ir.spec.get("components", {}), "root": ir.spec["root"]}.items()
                             if "dag" in spec}

    # -- DAGs -----------------------------------------------------------------------------------

    def run_dag(self, component: str, parameters: dict, artifacts: dict, path: str, announce: bool = True,
                record: DagRecord | None = None, iteration_items: str | None = None) -> Outcome:
        """Run one DAG instance to completion; its outputs per the DAG's output selectors.

        `record` is the DAG's ML Metadata execution (a new root one if None); `iteration_items` the
        list input a loop iteration's driver deleted (for the message when a task reads it)."""
        spec = self.ir.component(component)
        tasks: dict = spec.get("dag", {}).get("tasks", {})
        if record is None:
            record = self.new_record(component, None)
        if announce:
            self._announce(component, path)
        if not tasks:
            return Outcome("done", kind="dag", component=component, record=record)
        context = _DagContext(component, parameters, artifacts, path, record, iteration_items)
        outcomes: dict[str, Outcome] = {}
        upstream = {name: self.ir.upstream(task) for name, task in tasks.items()}
        # readiness is incremental: a task is ready when its count of unfinished parents reaches 0
        unfinished = {name: len(parents) for name, parents in upstream.items()}
        children: dict[str, list[str]] = {}
        for name, parents in upstream.items():
            for parent in parents:
                children.setdefault(parent, []).append(name)
        ready = sorted(name for name, count in unfinished.items() if count == 0)  # a heap: name order
        finished: queue.SimpleQueue = queue.SimpleQueue()
        running = 0

        def finish(name: str, outcome: Outcome) -> None:
            outcomes[name] = outcome
            for child in children.get(name, ()):
                unfinished[child] -= 1
                if unfinished[child] == 0:
                    heapq.heappush(ready, child)

        # at most max_in_flight tasks of this DAG on threads at once (nested DAGs have their own)
        width = max(1, min(len(tasks), self.max_in_flight))
        with futures.ThreadPoolExecutor(max_workers=width, thread_name_prefix="dag") as pool:
            while len(outcomes) < len(tasks):
                while ready:
                    name = heapq.heappop(ready)
                    blocked = self._blocked(tasks[name], upstream[name], outcomes)
                    if blocked is not None:
                        shown = "not run" if blocked.status == "failed" else blocked.status
                        if blocked.status == "skipped":
                            self._skip(tasks[name]["componentRef"]["name"], f"{path}/{name}")
                        else:
                            self.observe(TaskEvent(f"{path}/{name}", self._label(path, name), shown,
                                                   error=blocked.error))
                        finish(name, blocked)
                        continue
                    if not ready and not running:  # the only task that can run: on this thread, which
                        # would only wait for it (a chain, a loop iteration of one step)
                        finish(name, self._run_task(name, tasks[name], context, outcomes))
                        continue
                    future = pool.submit(self._run_task, name, tasks[name], context, outcomes)

                    def on_done(ended: futures.Future, name: str = name) -> None:
                        finished.put((name, ended))

                    future.add_done_callback(on_done)
                    running += 1
                if len(outcomes) == len(tasks):
                    break
                if not running:
                    raise RuntimeError(f"no task of {path} can run: the DAG has a cycle")
                name, future = finished.get()
                running -= 1
                finish(name, future.result())
        failed = [n for n, o in outcomes.items() if o.status == "failed"]
        if failed:
            errors = "; ".join(f"{n}: {outcomes[n].error}" for n in sorted(failed))
            return Outcome("failed", error=errors, kind="dag", component=component, children=outcomes, record=record)
        done = Outcome("done", kind="dag", component=component, children=outcomes, record=record)
        self._fill_outputs(done)
        return done

    def new_record(self, name: str, parent: DagRecord | None, iteration_count: int | None = None,
                   component: str | None = None) -> DagRecord:
        """The ML Metadata execution of a DAG instance (its total_dag_tasks: the tasks of its component)."""
        tasks = self.ir.component(component or name).get("dag", {}).get("tasks", {})
        return DagRecord(name, len(tasks), parent, self._records_lock, self.kfp_version, iteration_count)

    def _blocked(self, task: dict, parents, outcomes: dict[str, Outcome]) -> Outcome | None:
        """A task whose upstream failed does not run; one needing a skipped task's output is skipped."""
        strategy = task.get("triggerPolicy", {}).get("strategy", "")
        if strategy == "ALL_UPSTREAM_TASKS_COMPLETED":
            return None
        failed = [p for p in parents if outcomes[p].status == "failed"]
        if failed:
            return Outcome("failed", error=f"not run: upstream task {failed[0]} failed")
        if any(outcomes[p].status == "skipped" for p in self.ir.data_producers(task)):
            return Outcome("skipped")
        return None

    def _run_task(self, name: str, task: dict, context: _DagContext, outcomes: dict) -> Outcome:
        try:
            return self._run_task_unguarded(name, task, context, outcomes)
        except Exception as error:  # a fault here fails this task (and the run), never the whole process
            message = str(error) if isinstance(error, DriverError) else f"{type(error).__name__}: {error}"
            path = context.path
            self.observe(TaskEvent(f"{path}/{name}", self._label(path, name), "failed", error=message))
            return Outcome("failed", error=message)

    def _run_task_unguarded(self, name: str, task: dict, context: _DagContext, outcomes: dict) -> Outcome:
        """What the task's driver and then the task do (driver/dag.go `DAG`, driver/container.go
        `Container`): resolve and check the inputs, evaluate the condition, then run."""
        if self.cancelled.is_set():
            return Outcome("failed", error="cancelled")
        path, record = context.path, context.record
        task_path = f"{path}/{name}"
        component = task["componentRef"]["name"]
        spec = self.ir.component(component)
        inputs_p, inputs_a = self._driver_inputs(name, task, spec, context, outcomes)
        condition = task.get("triggerPolicy", {}).get("condition")
        if condition and not self._holds(condition, inputs_p):
            record.created(name, CANCELED)  # the driver records a task not triggered as CANCELED
            self._skip(component, task_path)
            kind = "loop" if "parameterIterator" in task else "dag" if "dag" in spec else "container"
            return Outcome("skipped", kind=kind, component=component)
        if "parameterIterator" in task or "artifactIterator" in task:
            return self._loop(name, task, component, inputs_p, inputs_a, task_path, record)
        if "dag" in spec:
            record.created(name, RUNNING)
            child = self.new_record(name, record, component=component)
            return self.run_dag(component, inputs_p, inputs_a, task_path, record=child)
        record.created(name, RUNNING)
        outcome = self.execute(task_path, self._label(path, name), component, inputs_p, inputs_a,
                               spec.get("executorLabel", ""))
        if outcome.status == "cached":  # published by the driver: no DAG state update (driver/container.go)
            record.created(name, CACHED)
        else:  # the launcher publishes, then updates the DAG's state (component/launcher_v2.go Execute)
            record.launched_finished(name, COMPLETE if outcome.status == "done" else FAILED)
        return outcome

    def _driver_inputs(self, name: str, task: dict, spec: dict, context: _DagContext,
                       outcomes: dict) -> tuple[dict, dict]:
        """The inputs the driver hands the task, checked against the consuming component's input
        definitions (driver/resolve.go `resolveInputs`); raises DriverError where the cluster fails."""
        definitions = spec.get("inputDefinitions", {}).get("parameters", {})
        inputs_p, inputs_a = self._resolve_inputs(name, task, definitions, context, outcomes)
        set_nil: set[str] = set()
        if "dag" in spec:  # a DAG driver passes optional inputs' defaults on (or null)
            added, set_nil = driver.dag_defaults(definitions, task.get("inputs", {}).get("parameters", {}))
            inputs_p = {**added, **inputs_p}
        driver.check_literals(definitions, inputs_p, self.kfp_version)
        skip = set()
        if "parameterIterator" in task:  # the loop driver has the list, not yet an item
            skip.add(task["parameterIterator"]["itemInput"])
        parent = self.ir.component(context.component).get("inputDefinitions", {}).get("parameters", {})
        consumer = Consumer(name, task["componentRef"]["name"], task.get("inputs", {}).get("parameters", {}), parent)
        return driver.check_parameters(definitions, inputs_p, consumer, self.kfp_version, skip, set_nil), inputs_a

    def _announce(self, component: str, path: str) -> None:
        """The executor tasks of a DAG instance about to run are pending (those of the DAGs and loops
        inside it are announced when these start: a loop's length is known only then)."""
        for name, task in self.ir.component(component).get("dag", {}).get("tasks", {}).items():
            if "parameterIterator" in task or "artifactIterator" in task:
                continue
            if "dag" not in self.ir.component(task["componentRef"]["name"]):
                self.observe(TaskEvent(f"{path}/{name}", self._label(path, name), "pending"))

    def _skip(self, component: str, path: str) -> None:
        """A branch not taken: its steps (and those of DAGs inside it) are reported skipped."""
        spec = self.ir.component(component)
        if "dag" not in spec:
            self.observe(TaskEvent(path, self._label(*path.rsplit("/", 1)), "skipped"))
            return
        for name, task in spec["dag"].get("tasks", {}).items():
            self._skip(task["componentRef"]["name"], f"{path}/{name}")

    def _loop(self, name: str, task: dict, component: str, inputs_p: dict, inputs_a: dict, path: str,
              record: DagRecord) -> Outcome:
        """A ParallelFor: the loop driver counts the items (driver/dag.go `DAG`), each iteration's
        driver gets the loop's inputs less the list, plus its item, checked again
        (driver/resolve.go `resolveInputs`)."""
        if "artifactIterator" in task:
            raise DriverError("ArtifactIterator is not implemented", "the KFP backend cannot loop over artifacts",
                              "loop over a list parameter instead", self.kfp_version)
        iterator = task["parameterIterator"]
        items_spec = iterator["items"]
        if "raw" in items_spec:
            items = as_json(json.loads(items_spec["raw"]))
            inputs_p = {**inputs_p, iterator["itemInput"]: items}  # the driver adds the raw list as the item input
        else:
            items = driver.loop_items(inputs_p.get(items_spec.get("inputParameter", "")), iterator["itemInput"],
                                      self.kfp_version)
        limit = task.get("iteratorPolicy", {}).get("parallelismLimit") or len(items) or 1
        limit = min(limit, self.max_in_flight)
        record.created(name, RUNNING)
        loop_record = self.new_record(name, record, iteration_count=len(items), component=component)
        definitions = self.ir.component(component).get("inputDefinitions", {}).get("parameters", {})
        skip = {items_spec["inputParameter"]} if "inputParameter" in items_spec else set()
        consumer = Consumer(f"{name} (an iteration)", component)
        results: list[Outcome | None] = [None] * len(items)

        for index in range(len(items)):  # every iteration's tasks are pending from now on
            self._announce(component, f"{path}[{index}]")

        def one(index: int, item: Any) -> None:
            try:
                p, deleted = driver.iteration_inputs(inputs_p, iterator, item)
                p = driver.check_parameters(definitions, p, consumer, self.kfp_version, skip)
                iteration = f"{name}[{index}]"
                loop_record.created(iteration, RUNNING)
                child = self.new_record(iteration, loop_record, component=component)
                results[index] = self.run_dag(component, p, dict(inputs_a), f"{path}[{index}]", announce=False,
                                              record=child, iteration_items=deleted)
            except DriverError as error:
                results[index] = Outcome("failed", error=str(error))
            except Exception as error:  # never lose an iteration's failure to its thread
                results[index] = Outcome("failed", error=f"{type(error).__name__}: {error}")

        # `limit` runners (this thread one of them) take the iterations in order: a loop over
        # 100,000 items runs on a handful of threads, not 100,000
        indexes = iter(range(len(items)))
        taking = threading.Lock()

        def runner() -> None:
            while True:
                with taking:
                    index = next(indexes, None)
                if index is None:
                    return
                one(index, items[index])

        helpers = [threading.Thread(target=runner, daemon=True) for _ in range(min(limit, len(items)) - 1)]
        for thread in helpers:
            thread.start()
        runner()
        for thread in helpers:
            thread.join()
        failed = [i for i, r in enumerate(results) if r is None or r.status == "failed"]
        if failed and not self.collect_failed_iterations:
            first = results[failed[0]]
            assert first is not None  # one() gives every iteration an outcome, a failed one on any exception
            return Outcome("failed", error=f"iteration {failed[0]} of {name} failed: {first.error}")
        if failed:
            self.warnings.append(f"{path}: iterations {failed} failed; Collected gets the other "
                                 f"{len(items) - len(failed)}")
        iterations = [r for r in results if r is not None and r.status != "failed"]
        loop = Outcome("done", kind="loop", component=component, iterations=iterations, record=loop_record)
        self._fill_outputs(loop)
        return loop

    def _fill_outputs(self, outcome: Outcome) -> None:
        """A DAG's (or loop's) outputs as far as the driver can resolve them now (for the run's
        result; a consumer resolves them again through its own driver and may fail)."""
        outputs = self._dag_outputs.get(outcome.component, {})
        for key in outputs.get("parameters", {}):
            try:
                outcome.parameters[key] = driver.upstream_output(outcome.component, outcome, key, self._dag_outputs,
                                                                 False, self.kfp_version)
            except DriverError:
                continue
        for key in outputs.get("artifacts", {}):
            try:
                outcome.artifacts[key] = driver.upstream_output(outcome.component, outcome, key, self._dag_outputs,
                                                                True, self.kfp_version)
            except DriverError:
                continue

    # -- inputs ---------------------------------------------------------------------------------

    def _resolve_inputs(self, name: str, task: dict, definitions: dict, context: _DagContext,
                        outcomes: dict) -> tuple[dict, dict]:
        """Each input of the task from its source (driver/resolve.go `resolveInputParameter`,
        `resolveInputArtifact`), before the type check."""
        resolved_p, resolved_a = {}, {}
        spec_inputs = task.get("inputs", {})
        for key, source in spec_inputs.get("parameters", {}).items():
            if definitions.get(key, {}).get("parameterType") == "TASK_CONFIG":
                continue  # filled in later by the container driver; not modelled
            if "taskFinalStatus" in source:
                resolved_p[key] = driver.final_status(name, task, outcomes, self.run_name, self.kfp_version)
                continue
            value = self._parameter_value(key, source, definitions, context, outcomes)
            if value is _MISSING:
                continue
            selector = source.get("parameterExpressionSelector")
            if selector:
                value = self._select(value, selector)
            resolved_p[key] = value
        for key, source in spec_inputs.get("artifacts", {}).items():
            if "componentInputArtifact" in source:
                parent_key = source["componentInputArtifact"]
                if parent_key in context.artifacts:
                    resolved_a[key] = context.artifacts[parent_key]
                elif context.record.parent is not None:
                    raise DriverError(f"parent DAG does not have input artifact {parent_key}",
                                      f"the enclosing DAG has no input artifact {parent_key!r}",
                                      "pass the artifact into the DAG", self.kfp_version)
            elif "taskOutputArtifact" in source:
                producer = source["taskOutputArtifact"]
                resolved_a[key] = driver.upstream_output(
                    producer["producerTask"], outcomes.get(producer["producerTask"]), producer["outputArtifactKey"],
                    self._dag_outputs, True, self.kfp_version)
        return resolved_p, resolved_a

    def _parameter_value(self, key: str, source: dict, definitions: dict, context: _DagContext,
                         outcomes: dict) -> Any:
        if "componentInputParameter" in source:
            parent_key = source["componentInputParameter"]
            if context.record.parent is None and parent_key not in context.parameters:
                return _MISSING  # the root's inputs are the run's arguments (their checks are the API server's)
            value = driver.parent_input(parent_key, context.parameters, context.iteration_items, self.kfp_version)
            if value is None:  # an optional input without default, set to null by a DAG driver
                if definitions.get(key, {}).get("isOptional"):
                    return _MISSING
                raise DriverError(f"{driver.NULL_PARAMETER}: {parent_key}",
                                  f"{parent_key!r} is an optional input without a default that was not given",
                                  f"give {parent_key!r} a default, or make {key!r} optional", self.kfp_version)
            return value
        if "taskOutputParameter" in source:
            producer = source["taskOutputParameter"]
            return driver.upstream_output(producer["producerTask"], outcomes.get(producer["producerTask"]),
                                          producer["outputParameterKey"], self._dag_outputs, False, self.kfp_version)
        if "runtimeValue" in source:
            constant = source["runtimeValue"].get("constant", _MISSING)
            return constant if constant is _MISSING else as_json(constant)
        return _MISSING

    def _select(self, value: Any, selector: str) -> Any:
        match = _SELECTOR.match(selector)
        if isinstance(value, str):
            value = json.loads(value)
        if match and isinstance(value, dict):
            return value.get(match.group("key"))
        return self._cel_eval(selector, {"string_value": json.dumps(value)})

    def _holds(self, condition: str, inputs: dict) -> bool:
        return bool(self._cel_eval(condition, {"inputs": {"parameter_values": inputs}}))

    def _cel_eval(self, expression: str, activation: dict) -> Any:
        import celpy

        with self._cel_lock:
            if self._cel is None:
                self._cel = (celpy.Environment(), {})
            environment, programs = self._cel
            program = programs.get(expression)
            if program is None:
                program = programs[expression] = environment.program(environment.compile(expression))
        # json_to_cel of a dict is a MapType keyed by StringType (a str); celpy types it as any Value
        result = program.evaluate(celpy.json_to_cel(activation))  # type: ignore[arg-type]
        return json.loads(json.dumps(result, default=_cel_to_python))

    def _label(self, path: str, name: str) -> str:
        """`train[2]` for a step in a loop; `train-and-eval-2/fit` inside a nested pipeline."""
        iterations = re.findall(r"\[(\d+)\]", path)
        parents = [re.sub(r"\[\d+\]$", "", part) for part in path.split("/")[1:]]
        nested = [p for p in parents if not _CONTROL_DAG.match(p)]
        return "/".join(nested + [name]) + "".join(f"[{i}]" for i in iterations)


@dataclass(frozen=True)
class _DagContext:
    """One DAG instance as its tasks' drivers see it: its inputs and its ML Metadata record."""

    component: str
    parameters: dict
    artifacts: dict
    path: str
    record: DagRecord
    iteration_items: str | None = None


def _cel_to_python(value: Any) -> Any:
    if isinstance(value, (int, float, str, bool)):
        return value
    return str(value)


_MISSING = object()


def wait_for(seconds: float) -> None:
    time.sleep(seconds)
