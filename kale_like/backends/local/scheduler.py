"""Interpret a KFP v2 pipeline spec: DAGs, ParallelFor, If/Elif/Else, Collected, OneOf, nested DAGs.

The semantics are KFP's, read from the IR: a task runs when the tasks it depends on have finished;
a task with a trigger condition (CEL) runs only if it holds, otherwise it and the tasks that need
its outputs are skipped; an iterator task runs its DAG once per item (at most `parallelismLimit` at
a time) and its DAG outputs become lists (Collected, flattened over nested loops); a `valueFromOneof`
output takes the branch that ran. Executor tasks run on a pool of threads or worker processes;
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
from typing import Any, Callable

from kale_like.backends.local.ir import PipelineIR, as_json, component_program

_CONTROL_DAG = re.compile(r"^(for-loop|condition-branches|condition|exit-handler)-\d+$")
_SELECTOR = re.compile(r'^parseJson\(string_value\)\["(?P<key>[^"]+)"\]$')


class TaskFailed(Exception):
    """A task failed after its retries; carries the message shown to the user."""


@dataclass
class Outcome:
    """What a finished task (or DAG) produced."""

    status: str  # done | skipped | failed | cached
    parameters: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, list[dict]] = field(default_factory=dict)
    error: str = ""

    @property
    def ran(self) -> bool:
        return self.status in ("done", "cached")


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
                 max_in_flight: int, collect_failed_iterations: bool = False):
        self.ir = ir
        self.execute = execute
        self.observe = observe
        self.max_in_flight = max(1, max_in_flight)
        self.collect_failed_iterations = collect_failed_iterations
        self.warnings: list[str] = []
        self._cel = None
        self._cel_lock = threading.Lock()
        self.cancelled = threading.Event()

    # -- DAGs -----------------------------------------------------------------------------------

    def run_dag(self, component: str, parameters: dict, artifacts: dict, path: str, announce: bool = True) -> Outcome:
        """Run one DAG instance to completion; its outputs per the DAG's output selectors."""
        spec = self.ir.component(component)
        tasks: dict = spec.get("dag", {}).get("tasks", {})
        if announce:
            self._announce(component, path)
        if not tasks:
            return Outcome("done")
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
                        finish(name, self._run_task(name, tasks[name], parameters, artifacts, outcomes, path))
                        continue
                    future = pool.submit(self._run_task, name, tasks[name], parameters, artifacts, outcomes, path)
                    future.add_done_callback(lambda done, name=name: finished.put((name, done)))
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
            return Outcome("failed", error=errors)
        return self._dag_outputs(spec, outcomes)

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

    def _run_task(self, name: str, task: dict, parameters: dict, artifacts: dict, outcomes: dict,
                  path: str) -> Outcome:
        try:
            return self._run_task_unguarded(name, task, parameters, artifacts, outcomes, path)
        except Exception as error:  # a fault here fails this task (and the run), never the whole process
            message = f"{type(error).__name__}: {error}"
            self.observe(TaskEvent(f"{path}/{name}", self._label(path, name), "failed", error=message))
            return Outcome("failed", error=message)

    def _run_task_unguarded(self, name: str, task: dict, parameters: dict, artifacts: dict, outcomes: dict,
                            path: str) -> Outcome:
        if self.cancelled.is_set():
            return Outcome("failed", error="cancelled")
        task_path = f"{path}/{name}"
        inputs_p, inputs_a = self._resolve_inputs(task, parameters, artifacts, outcomes)
        condition = task.get("triggerPolicy", {}).get("condition")
        component = task["componentRef"]["name"]
        if condition and not self._holds(condition, inputs_p):
            self._skip(component, task_path)
            return Outcome("skipped")
        spec = self.ir.component(component)
        if "parameterIterator" in task or "artifactIterator" in task:
            return self._loop(name, task, component, inputs_p, inputs_a, task_path)
        if "dag" in spec:
            return self.run_dag(component, inputs_p, inputs_a, task_path)
        if strategy_status := self._final_status_input(task, outcomes):
            inputs_p.update(strategy_status)
        return self.execute(task_path, self._label(path, name), component, inputs_p, inputs_a,
                            spec.get("executorLabel", ""))

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

    def _final_status_input(self, task: dict, outcomes: dict) -> dict:
        statuses = {}
        for key, spec in task.get("inputs", {}).get("parameters", {}).items():
            if "taskFinalStatus" in spec:
                producer = spec["taskFinalStatus"]["producerTask"]
                outcome = outcomes.get(producer)
                state = "SUCCEEDED" if outcome and outcome.ran else "FAILED"
                statuses[key] = {"state": state, "pipelineJobResourceName": "local",
                                 "pipelineTaskName": producer,
                                 "error": {"code": 0 if state == "SUCCEEDED" else 1,
                                           "message": outcome.error if outcome else ""}}
        return statuses

    def _loop(self, name: str, task: dict, component: str, inputs_p: dict, inputs_a: dict, path: str) -> Outcome:
        iterator = task.get("parameterIterator") or task.get("artifactIterator")
        items_spec = iterator["items"]
        if "raw" in items_spec:
            items = as_json(json.loads(items_spec["raw"]))
        else:
            key = items_spec.get("inputParameter") or items_spec.get("inputArtifact")
            items = inputs_p.get(key) if "inputParameter" in items_spec else inputs_a.get(key, [])
        if isinstance(items, str):
            items = json.loads(items)
        limit = task.get("iteratorPolicy", {}).get("parallelismLimit") or len(items) or 1
        limit = min(limit, self.max_in_flight)
        item_input = iterator["itemInput"]
        results: list[Outcome | None] = [None] * len(items)

        for index in range(len(items)):  # every iteration's tasks are pending from now on
            self._announce(component, f"{path}[{index}]")

        def one(index: int, item: Any) -> None:
            p = dict(inputs_p)
            a = dict(inputs_a)
            if "parameterIterator" in task:
                p[item_input] = item
            else:
                a[item_input] = [item]
            try:
                results[index] = self.run_dag(component, p, a, f"{path}[{index}]", announce=False)
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
            return Outcome("failed", error=f"iteration {failed[0]} of {name} failed: {results[failed[0]].error}")
        if failed:
            self.warnings.append(f"{path}: iterations {failed} failed; Collected gets the other "
                                 f"{len(items) - len(failed)}")
        return self._collect(component, [r for r in results if r is not None and r.status != "failed"])

    def _collect(self, component: str, iterations: list[Outcome]) -> Outcome:
        """Loop DAG outputs as lists over iterations (flattened when the inner value is a loop's list)."""
        spec = self.ir.component(component)
        outputs = spec.get("dag", {}).get("outputs", {})
        inner_tasks = spec.get("dag", {}).get("tasks", {})
        parameters: dict[str, list] = {}
        for key, selector in outputs.get("parameters", {}).items():
            producer = selector.get("valueFromParameter", {}).get("producerSubtask")
            nested = producer in inner_tasks and "parameterIterator" in inner_tasks[producer]
            values: list = []
            for outcome in iterations:
                if key in outcome.parameters:
                    value = outcome.parameters[key]
                    values.extend(value) if nested and isinstance(value, list) else values.append(value)
            parameters[key] = values
        artifacts: dict[str, list[dict]] = {}
        for key in outputs.get("artifacts", {}):
            artifacts[key] = [a for outcome in iterations for a in outcome.artifacts.get(key, [])]
        return Outcome("done", parameters, artifacts)

    def _dag_outputs(self, spec: dict, outcomes: dict[str, Outcome]) -> Outcome:
        outputs = spec["dag"].get("outputs", {})
        parameters = {}
        for key, selector in outputs.get("parameters", {}).items():
            if "valueFromParameter" in selector:
                choices = [selector["valueFromParameter"]]
            else:
                choices = selector.get("valueFromOneof", {}).get("parameterSelectors", [])
            for choice in choices:
                producer = outcomes.get(choice["producerSubtask"])
                if producer is not None and producer.ran and choice["outputParameterKey"] in producer.parameters:
                    parameters[key] = producer.parameters[choice["outputParameterKey"]]
                    break
        artifacts = {}
        for key, selector in outputs.get("artifacts", {}).items():
            for choice in selector.get("artifactSelectors", []):
                producer = outcomes.get(choice["producerSubtask"])
                if producer is not None and producer.ran and choice["outputArtifactKey"] in producer.artifacts:
                    artifacts[key] = producer.artifacts[choice["outputArtifactKey"]]
                    break
        return Outcome("done", parameters, artifacts)

    # -- inputs ---------------------------------------------------------------------------------

    def _resolve_inputs(self, task: dict, parameters: dict, artifacts: dict, outcomes: dict):
        resolved_p, resolved_a = {}, {}
        spec_inputs = task.get("inputs", {})
        for key, source in spec_inputs.get("parameters", {}).items():
            value = self._parameter_value(source, parameters, outcomes)
            if value is _MISSING:
                continue
            selector = source.get("parameterExpressionSelector")
            if selector:
                value = self._select(value, selector)
            resolved_p[key] = value
        for key, source in spec_inputs.get("artifacts", {}).items():
            if "componentInputArtifact" in source:
                if source["componentInputArtifact"] in artifacts:
                    resolved_a[key] = artifacts[source["componentInputArtifact"]]
            elif "taskOutputArtifact" in source:
                producer = source["taskOutputArtifact"]
                outcome = outcomes.get(producer["producerTask"])
                if outcome is not None and producer["outputArtifactKey"] in outcome.artifacts:
                    resolved_a[key] = outcome.artifacts[producer["outputArtifactKey"]]
        return resolved_p, resolved_a

    def _parameter_value(self, source: dict, parameters: dict, outcomes: dict) -> Any:
        if "componentInputParameter" in source:
            return parameters.get(source["componentInputParameter"], _MISSING)
        if "taskOutputParameter" in source:
            producer = source["taskOutputParameter"]
            outcome = outcomes.get(producer["producerTask"])
            if outcome is None:
                return _MISSING
            return outcome.parameters.get(producer["outputParameterKey"], _MISSING)
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
        result = program.evaluate(celpy.json_to_cel(activation))
        return json.loads(json.dumps(result, default=_cel_to_python))

    def _label(self, path: str, name: str) -> str:
        """`train[2]` for a step in a loop; `train-and-eval-2/fit` inside a nested pipeline."""
        iterations = re.findall(r"\[(\d+)\]", path)
        parents = [re.sub(r"\[\d+\]$", "", part) for part in path.split("/")[1:]]
        nested = [p for p in parents if not _CONTROL_DAG.match(p)]
        return "/".join(nested + [name]) + "".join(f"[{i}]" for i in iterations)


def _cel_to_python(value: Any) -> Any:
    if isinstance(value, (int, float, str, bool)):
        return value
    return str(value)


_MISSING = object()


def program_of(ir: PipelineIR, executor_label: str) -> tuple[str, str]:
    """(program text, function name) of a lightweight Python executor."""
    return component_program(ir.executor(executor_label))


def wait_for(seconds: float) -> None:
    time.sleep(seconds)
