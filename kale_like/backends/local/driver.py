"""A model of the KFP backend's driver: what a task's inputs are on a cluster, or why it fails there.

On a KFP cluster every task starts with a driver (Go, kubeflow/pipelines `backend/src/v2/driver/`)
that resolves the task's inputs from ML Metadata, checks and converts them against the *consuming*
component's input definitions, fans out loops, picks `dsl.OneOf` branches and fills in the exit
handler's `PipelineTaskFinalStatus`. What a pipeline means on a cluster is what that code does, not
what the kfp SDK (or `kfp.local`) does, and it changes between server releases; so the local runner
asks this module, with the server version the user targets (`kale_like.kfp_server.ServerVersion`).

Each rule names the Go file and function it models (read at tags 2.14.0, 2.15.0, 2.16.0, 2.17.0 of
kubeflow/pipelines); where releases differ, the version check says from which release on. When the
cluster would fail a task, `DriverError` carries the driver's own error text, why it happens and
how to change the pipeline, and the local task fails with that message.

Caching and retries, compared with the backend (and not contradicting it):
- Retries: argocompiler/container.go (`addContainerExecutorTemplate`, `getTaskRetryStrategyFromInput`)
  puts Argo's retry strategy (limit `maxRetryCount`, backoff) on the executor pod only, and only
  for container tasks; a driver failure is never retried, a DAG task never. Locally `run.py`
  retries the step's function `maxRetryCount` times, and driver failures (raised before it) once:
  the same outcomes, without the backoff's waiting.
- Caching: the driver's key (driver/cache.go `getFingerPrint`, cacheutils `GenerateCacheKey`) holds
  the input parameters *after* conversion, the input artifacts' names, the output definitions, the
  command, arguments and image, and mounted PVC names; a hit is looked up for the same pipeline
  name only, and only when the task has `enableCache` and the server does not disable caching.
  Locally the key holds the converted parameters, the program and function (the command and
  image's part), the output definitions, the pipeline's name, and the input artifacts' *content*:
  so an upstream step that ran again but wrote the same bytes still gives a local hit where the
  cluster (new artifact) runs the step again -- the outputs are the same either way. A cache hit
  does not update its DAG's state on either side (see `DagRecord`). The exit handler's task never
  hits on a cluster (its final status names the run); locally it is never cached.

What is deliberately not modelled: Kubernetes-level settings (pod spec patches, volumes, secrets),
the importer, `dsl.TaskConfig` inputs, the `{{$.pipeline_job_...}}` placeholders beyond passing the
constant through, and the bookkeeping bugs of `CollectInputs` on shapes mixing loops with
conditions (the model flattens as the function intends).
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Collection, Iterable, Protocol

from kale_like.backends.local.ir import as_json
from kale_like.kfp_server import DEFAULT, ServerVersion

# ML Metadata execution states (ml_metadata Execution.State enum names), as the driver reads them
RUNNING, COMPLETE, CACHED, FAILED, CANCELED = "RUNNING", "COMPLETE", "CACHED", "FAILED", "CANCELED"
_DONE_STATES = (COMPLETE, CACHED)  # what GetProducerTask accepts as "the branch that ran"


class DriverError(Exception):
    """The driver of a KFP server would fail this task: its error text, why, and how to avoid it."""

    def __init__(self, cluster: str, why: str = "", fix: str = "", version: ServerVersion = DEFAULT):
        self.cluster, self.why, self.fix, self.version = cluster, why, fix, version
        parts = [f"on a KFP {version} cluster the driver fails this task: {cluster}"]
        if why:
            parts.append(f"why: {why}")
        if fix:
            parts.append(f"fix: {fix}")
        super().__init__(" -- ".join(parts))


def _q(text: str) -> str:
    """A name quoted as Go's %q quotes it (the drivers' messages use it)."""
    return json.dumps(text)


# -- metadata/converter.go PbValueToText ----------------------------------------------------------


def pb_value_to_text(value: Any) -> str:
    """A parameter value as the text a STRING input receives (metadata/converter.go `PbValueToText`).

    Numbers are written by Go's `strconv.FormatFloat(v, 'f', -1, 64)`: shortest digits, never an
    exponent (1e21 -> "1000000000000000000000", 2.0 -> "2"); booleans "true"/"false"; null "";
    lists and dicts as `json.Marshal` of the protobuf value (see `protojson_text`)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _go_format_f(float(value))
    if isinstance(value, str):
        return value
    return protojson_text(value)


def _go_format_f(number: float) -> str:
    """Go's `strconv.FormatFloat(number, 'f', -1, 64)`."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number == 0:
        return "-0" if math.copysign(1.0, number) < 0 else "0"
    text = format(Decimal(repr(number)), "f")  # repr: the shortest digits that round-trip, as Go's -1
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def protojson_text(value: Any) -> str:
    """A list or dict as Go's `json.Marshal(structpb.ListValue / Struct)` writes it.

    That calls protojson (keys sorted, numbers like JavaScript: exponent below 1e-6 and from 1e21),
    then `encoding/json` compacts the text (no spaces) and escapes `<`, `>`, `&`, U+2028, U+2029."""
    return "".join(_protojson_parts(value))


def _protojson_parts(value: Any) -> Iterable[str]:
    if value is None:
        yield "null"
    elif isinstance(value, bool):
        yield "true" if value else "false"
    elif isinstance(value, (int, float)):
        yield _protojson_number(float(value))
    elif isinstance(value, str):
        yield _protojson_string(value)
    elif isinstance(value, dict):
        yield "{"
        for index, key in enumerate(sorted(value)):
            yield ("," if index else "") + _protojson_string(str(key)) + ":"
            yield from _protojson_parts(value[key])
        yield "}"
    elif isinstance(value, (list, tuple)):
        yield "["
        for index, item in enumerate(value):
            if index:
                yield ","
            yield from _protojson_parts(item)
        yield "]"
    else:
        yield _protojson_string(str(value))


def _protojson_number(number: float) -> str:
    """protobuf-go's JSON float: 'f' form between 1e-6 and 1e21, else 'e' with a short exponent."""
    if math.isnan(number) or math.isinf(number):
        return '"NaN"' if math.isnan(number) else ('"Infinity"' if number > 0 else '"-Infinity"')
    magnitude = abs(number)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = repr(number)  # Python writes this range with an exponent of at least two digits, as Go
        mantissa, exponent = text.split("e")
        sign, digits = exponent[0], exponent[1:]
        if sign == "-" and len(digits) == 2 and digits[0] == "0":
            digits = digits[1:]  # protobuf-go shortens e-07 to e-7 (and leaves e+21 alone)
        return f"{mantissa}e{sign}{digits}"
    return _go_format_f(number)


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                 "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _protojson_string(text: str) -> str:
    out = []
    for char in text:
        escaped = _JSON_ESCAPES.get(char)
        if escaped is None and char < " ":
            escaped = f"\\u{ord(char):04x}"
        out.append(escaped or char)
    return '"' + "".join(out) + '"'


# -- driver/resolve.go resolveInputs: handleParamTypeValidationAndConversion -------------------------


def value_kind(value: Any) -> str:
    """The protobuf Value kind of a JSON value, as the driver's type mismatch message names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    return "struct"


_ACCEPTS = {"number": ("NUMBER_INTEGER", "NUMBER_DOUBLE"), "bool": ("BOOLEAN",), "list": ("LIST",),
            "struct": ("STRUCT", "TASK_FINAL_STATUS", "TASK_CONFIG")}


@dataclass(frozen=True)
class Consumer:
    """Who reads the inputs being checked: a task of a DAG, for the messages' hints."""

    task: str
    component: str
    sources: dict = field(default_factory=dict)  # input name -> the task's input spec (where it comes from)
    parent_definitions: dict = field(default_factory=dict)  # the enclosing DAG's input definitions


def check_parameters(definitions: dict, values: dict, consumer: Consumer, version: ServerVersion = DEFAULT,
                     skip: Collection[str] = (), set_nil: Collection[str] = ()) -> dict:
    """The inputs a task's driver hands on: each declared input checked against its value.

    driver/resolve.go `resolveInputs`, closure `handleParamTypeValidationAndConversion` (all of
    2.14-2.17): a STRING input receives any other value as `PbValueToText`; any other declared
    type refuses a value of a different kind (a string is never parsed); null is refused unless the
    DAG driver itself set it (an optional input without default, `set_nil`). A declared input with
    no value: optional -> left out (the component applies its default); required without default ->
    refused; required with a default -> the driver goes on with no value, which a STRING input
    receives as "" and any other type refuses as of an unknown kind."""
    result = dict(values)
    for name in sorted(definitions):
        if name in skip:
            continue
        spec = definitions[name]
        declared = spec.get("parameterType", "")
        if name not in values:
            if spec.get("isOptional"):
                continue
            if "defaultValue" not in spec:
                raise DriverError(f"neither value nor default value provided for non-optional parameter {_q(name)}",
                                  f"task {consumer.task} gives no value for its input {name!r}",
                                  "pass a value to the input, or give it a default", version)
            if declared == "STRING":
                result[name] = ""
                continue
            raise DriverError(f"parameter {name} has unknown protobuf.Value type: <nil>",
                              f"input {name!r} has a default but is not marked optional, so the driver "
                              "passes no value and cannot type the missing one",
                              "mark the input optional (isOptional) in the component, or pass a value", version)
        value = values[name]
        if declared == "STRING":
            if not isinstance(value, str) and not (value is None and name in set_nil):
                result[name] = pb_value_to_text(value)
            continue
        kind = value_kind(value)
        if kind == "null":
            if name in set_nil:
                continue
            raise DriverError(f"got null for input parameter {_q(name)}", f"{name!r} resolved to null",
                              "give the input a value or a default", version)
        if declared not in _ACCEPTS.get(kind, ()):
            raise _type_mismatch(name, declared, kind, value, consumer, version)
    return result


def _type_mismatch(name: str, declared: str, kind: str, value: Any, consumer: Consumer,
                   version: ServerVersion) -> DriverError:
    cluster = f"input parameter {_q(name)} type mismatch: expect {declared}, got {kind}"
    shown = json.dumps(value)[:80]
    why = (f"task {consumer.task} declares {name!r} as {declared} but receives {shown} ({kind}); the driver "
           "converts values only into STRING inputs and never parses text")
    source = consumer.sources.get(name, {})
    parent_input = source.get("componentInputParameter", "")
    parent_type = consumer.parent_definitions.get(parent_input, {}).get("parameterType", "")
    if kind == "string" and parent_input and parent_type == "STRING" and _is_loop_item(parent_input):
        why += (f"; the loop item {parent_input!r} is declared STRING in the loop's DAG (the kfp SDK does so "
                "for a list without an element type), so each item arrives as text")
        fix = ("declare the item type of the list looped over, e.g. `-> List[int]` on the producing step "
               "(or `List[int]` on the pipeline parameter), or declare the input as `str` and parse it")
    elif kind == "string":
        fix = (f"make the producer's declared type {declared} (e.g. `-> int`), or declare {name!r} as `str` "
               "and parse it in the step")
    else:
        fix = f"pass a {declared} value to {name!r}, or declare the input as `str` (it then receives JSON text)"
    return DriverError(cluster, why, fix, version)


def _is_loop_item(name: str) -> bool:
    return name.endswith("-loop-item") or name.startswith("pipelinechannel--loop-item-param")


def check_literals(definitions: dict, values: dict, version: ServerVersion) -> None:
    """From 2.16.0 a value must be one of the input's declared literals (driver/resolve.go
    `resolveInputs` -> common/util/validate_literal.go `ValidateLiteralParameter`), before conversion."""
    if not version.at_least("2.16"):
        return
    for name in sorted(values):
        literals = definitions.get(name, {}).get("literals")
        if literals and as_json(values[name]) not in [as_json(v) for v in literals]:
            raise DriverError(
                f"validating parameter {_q(name)}: input parameter {_q(name)} value {values[name]!r} does not "
                f"match any of the allowed literal values: {literals}",
                "the component declares the input as a Literal of these values",
                "pass one of the allowed values", version)


def dag_defaults(definitions: dict, task_inputs: dict) -> tuple[dict, set[str]]:
    """What a (non-iteration) DAG driver adds for optional inputs the task does not pass: the
    default, or null marked as set by the driver (driver/resolve.go `resolveInputs`, `isDagDriver`)."""
    added: dict = {}
    set_nil: set[str] = set()
    for name, spec in definitions.items():
        if name in task_inputs or not spec.get("isOptional"):
            continue
        if "defaultValue" in spec:
            default = spec["defaultValue"]
            added[name] = default if spec.get("parameterType") == "NUMBER_DOUBLE" else as_json(default)
        else:
            added[name] = None
            set_nil.add(name)
    return added, set_nil


NULL_PARAMETER = "the resolved input parameter is null"


def parent_input(name: str, parent: dict, iteration_items: str | None, version: ServerVersion) -> Any:
    """A `componentInputParameter` read from the enclosing DAG's inputs (driver/resolve.go
    `resolveInputParameter`): a name the parent does not have fails the task. Inside a loop
    iteration that includes the list being looped over: the iteration driver deletes it
    (`resolveInputs`, `delete(inputs.ParameterValues, itemsInput)`)."""
    if name in parent:
        return parent[name]
    cluster = f"parent DAG does not have input parameter {name}"
    if iteration_items is not None and name == iteration_items:
        raise DriverError(cluster,
                          "inside a ParallelFor iteration the list being looped over is removed from the "
                          "iteration's inputs, so a task in the loop body cannot read the loop's own list",
                          "pass the list into the loop body as another parameter (e.g. a second output of the "
                          "producing step, or a pipeline parameter), or compute what the body needs before the loop",
                          version)
    raise DriverError(cluster, f"the enclosing DAG has no input {name!r}", "pass the value into the DAG", version)


def iteration_inputs(loop_inputs: dict, iterator: dict, item: Any) -> tuple[dict, str | None]:
    """An iteration DAG's inputs: the loop DAG's inputs less the list looped over, plus the item
    (driver/resolve.go `resolveInputs`, iteration driver branch). Returns (inputs, deleted name)."""
    items_spec = iterator.get("items", {})
    deleted = items_spec.get("inputParameter") or iterator["itemInput"]
    inputs = {k: v for k, v in loop_inputs.items() if k != deleted}
    inputs[iterator["itemInput"]] = item
    return inputs, (items_spec.get("inputParameter") or None)


def loop_items(value: Any, item_input: str, version: ServerVersion) -> list:
    """The items of a parameter loop (driver/util.go `getItems`): a list, or JSON text of one."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise DriverError(f"iterating on item input {_q(item_input)} failed: {error}",
                              "the loop's items are text that is not JSON", "pass a list", version) from None
        if value is None:
            return []
    if not isinstance(value, list):
        raise DriverError(f"iterating on item input {_q(item_input)} failed: value of type {value_kind(value)} "
                          "cannot be iterated", "ParallelFor needs a list", "pass a list", version)
    return value


# -- ML Metadata DAG states: metadata/client.go UpdateDAGExecutionsState ------------------------------


class DagRecord:
    """The ML Metadata execution of one DAG instance, as far as its state goes.

    Its state starts RUNNING (CANCELED when its condition is false). It changes only when a task
    that actually ran (the launcher, component/launcher_v2.go `Execute`) finishes in it: then the
    states of its direct children are counted (metadata/client.go `UpdateDAGExecutionsState`): all
    COMPLETE/CACHED/CANCELED -> COMPLETE, else any FAILED -> FAILED. A cache hit is published by the
    container driver (driver/container.go, cache path) without that update, so a DAG whose last task
    was a cache hit stays RUNNING. From 2.17.0 a DAG reaching a terminal state updates its parent
    too, and a loop DAG counts its iterations (`iteration_count`); before, nothing propagates."""

    def __init__(self, name: str, total_tasks: int, parent: DagRecord | None, lock: threading.Lock,
                 version: ServerVersion, iteration_count: int | None = None):
        self.name, self.parent, self.lock, self.version = name, parent, lock, version
        self.total_tasks = total_tasks
        self.iteration_count = iteration_count
        self.children: dict[str, str] = {}
        self.state = RUNNING

    def created(self, child: str, state: str) -> None:
        """A child execution was created by its driver (RUNNING, CANCELED or CACHED)."""
        with self.lock:
            self.children[child] = state

    def launched_finished(self, child: str, state: str) -> None:
        """A launched task of this DAG finished: its state, then the DAG's state is updated."""
        with self.lock:
            self.children[child] = state
            self._update()

    def _update(self) -> None:
        expected = self.total_tasks
        if self.version.at_least("2.17"):
            if self.iteration_count is not None:
                expected = self.iteration_count
            elif self.parent is None:
                return  # the root DAG: no expected count, left alone
        states = list(self.children.values())
        completed = sum(s in (COMPLETE, CACHED, CANCELED) for s in states)
        if completed == expected:
            new = COMPLETE
        elif FAILED in states:
            new = FAILED
        else:
            return
        self.state = new
        if self.version.at_least("2.17") and self.parent is not None:
            self.parent.children[self.name] = new
            self.parent._update()


# -- driver/resolve.go resolveUpstreamParameters / resolveUpstreamArtifacts, CollectInputs, GetProducerTask


class Produced(Protocol):
    """What the driver can read of a finished task (the scheduler's `Outcome`): a container's outputs,
    or a DAG's sub-tasks. `kind` is container | dag | loop; a DAG keeps its `children` (task name ->
    Produced) and its `record`; a loop keeps its `iterations` (each a dag); `state` is the ML
    Metadata state of the task's execution."""

    kind: str
    component: str
    parameters: dict
    artifacts: dict
    children: dict
    iterations: list
    record: DagRecord | None

    @property
    def state(self) -> str: ...


def upstream_output(producer_name: str, producer: Produced | None, key: str, dag_outputs: dict,
                    artifact: bool, version: ServerVersion) -> Any:
    """An output of an upstream task as the driver resolves it (driver/resolve.go
    `resolveUpstreamParameters` / `resolveUpstreamArtifacts`): a container's output as is; through a
    DAG, follow its output selector down to a container; a loop that ran iterations is collected
    (`CollectInputs`); a loop that ran none is followed like a plain DAG, into a task that does not
    exist, and the consumer fails. `dag_outputs` maps a DAG component name to its `dag.outputs`."""
    if producer is None:
        raise DriverError(f"producer task, {producer_name}, not in tasks", "the producing task never ran",
                          "make sure the producer runs before its consumers", version)
    current, name = producer, producer_name
    while current.kind != "container":
        if current.kind == "loop" and current.iterations:
            return collect(current, key, dag_outputs, artifact, version)
        sub, key = producer_task(current, key, dag_outputs, artifact, version)
        child = current.children.get(sub)
        if child is None:
            if artifact and not version.at_least("2.17") and current.state == CANCELED:
                raise _artifact_one_of_error(sub, version)
            raise _missing_subtask(name, current, sub, version)
        current, name = child, sub
    if artifact:
        return current.artifacts.get(key, [])
    return current.parameters.get(key)


def _artifact_one_of_error(sub: str, version: ServerVersion) -> DriverError:
    """An artifact read through a branch not taken: what dsl.OneOf of artifacts meets before 2.17.0."""
    return DriverError(f"subTaskName, {sub}, not in tasks",
                       "before KFP 2.17.0 the driver resolves a dsl.OneOf of artifacts to its last branch whether "
                       "that branch ran or not (kubeflow/pipelines#13436, fixed in 2.17.0 by #13437); here another "
                       "branch ran", "target KFP 2.17 or later, or pass a parameter (e.g. the artifact's URI or "
                       "value) through dsl.OneOf instead of an artifact", version)


def _missing_subtask(name: str, dag: Produced, sub: str, version: ServerVersion) -> DriverError:
    cluster = f"subTaskName, {sub}, not in tasks"
    if dag.kind == "loop":
        return DriverError(cluster,
                           f"the loop {name} ran no iterations (its list was empty), so there is no task to "
                           "collect outputs from; the loop itself succeeds, the task reading its outputs fails",
                           "make sure the list is never empty, or guard the consumer with a condition on the "
                           "list's length (dsl.If) so that it does not run for an empty list", version)
    return DriverError(cluster, f"the output of {name} comes from its task {sub}, which did not run",
                       "read the output only where its producer runs (dsl.OneOf across branches)", version)


def producer_task(dag: Produced, key: str, dag_outputs: dict, artifact: bool,
                  version: ServerVersion) -> tuple[str, str]:
    """Which sub-task (and which of its outputs) a DAG output comes from (driver/resolve.go
    `GetProducerTask`). Parameters: `valueFromParameter`, or for `dsl.OneOf` the first selector
    whose DAG state is COMPLETE or CACHED. Artifacts: before 2.17.0 always the last selector, ran
    or not (kubeflow/pipelines#13436); from 2.17.0 (#13437) one selector as is, several like the
    parameters' OneOf."""
    outputs = dag_outputs.get(dag.component, {})
    if artifact:
        selectors = outputs.get("artifacts", {}).get(key, {}).get("artifactSelectors", [])
        if not selectors:
            return "", key
        if len(selectors) == 1 or not version.at_least("2.17"):
            chosen = selectors[-1]
            return chosen["producerSubtask"], chosen["outputArtifactKey"]
        return _one_of(dag, key, [(s["producerSubtask"], s["outputArtifactKey"]) for s in selectors], version)
    spec = outputs.get("parameters", {}).get(key, {})
    if "valueFromParameter" in spec:
        chosen = spec["valueFromParameter"]
        return chosen["producerSubtask"], chosen["outputParameterKey"]
    selectors = spec.get("valueFromOneof", {}).get("parameterSelectors", [])
    if selectors:
        return _one_of(dag, key, [(s["producerSubtask"], s["outputParameterKey"]) for s in selectors], version)
    return "", key


def _one_of(dag: Produced, key: str, selectors: list[tuple[str, str]], version: ServerVersion) -> tuple[str, str]:
    for sub, sub_key in selectors:
        child = dag.children.get(sub)
        if child is not None and child.state in _DONE_STATES:
            return sub, sub_key
    cluster = "processing OneOf: No successful task found"
    if version.at_least("2.17"):
        cluster += f" for output key {_q(key)} in parent task {_q(dag.component)}"
    ran = [sub for sub, _ in selectors if sub in dag.children and dag.children[sub].state not in (CANCELED,)]
    if not ran:
        raise DriverError(cluster, "no branch of the dsl.OneOf ran", "make one branch always run (dsl.Else)",
                          version)
    branch = ran[0]
    state = dag.children[branch].state
    why = (f"the branch {branch} ran, but its DAG's state in ML Metadata is {state}: a DAG becomes COMPLETE "
           "only when a step that actually ran (not a cache hit) finishes last in it")
    fix = ("turn caching off for the steps in the branches (`.set_caching_options(False)`) or run with "
           "caching disabled")
    if not version.at_least("2.17") and any(c.kind != "container" for c in dag.children[branch].children.values()):
        why += "; before KFP 2.17.0 a nested DAG's state does not reach the DAG around it (kubeflow/pipelines#13322)"
        fix = "target KFP 2.17 or later, or call the steps directly in the branch instead of a nested pipeline"
    raise DriverError(cluster, why, fix, version)


def collect(loop: Produced, key: str, dag_outputs: dict, artifact: bool, version: ServerVersion) -> list:
    """`dsl.Collected`: every container output under a loop, in one flat list (driver/resolve.go
    `CollectInputs`): breadth-first from the loop DAG through its iterations and any DAG (nested
    loop, nested pipeline) below them, each container's output appended in iteration order."""
    found: list = []
    queue: list[tuple[Produced, str]] = [(loop, key)]
    while queue:
        node, node_key = queue.pop(0)
        if node.kind == "container":
            if artifact:
                found.extend(node.artifacts.get(node_key, []))
            else:
                found.append(node.parameters.get(node_key))
            continue
        sub, sub_key = producer_task(node, node_key, dag_outputs, artifact, version)
        if node.kind == "loop":
            queue.extend((iteration, node_key) for iteration in node.iterations)
            continue
        child = node.children.get(sub)
        if child is None:
            raise _missing_subtask(node.component, node, sub, version)
        queue.append((child, sub_key))
    return found


# -- driver/resolve.go resolveInputParameter, case TaskFinalStatus --------------------------------------


def final_status(task_name: str, task: dict, outcomes: dict[str, Produced], run_name: str,
                 version: ServerVersion) -> dict:
    """The exit handler's `PipelineTaskFinalStatus` as the driver builds it: the ML Metadata state of
    the task's first dependent task (COMPLETE, FAILED, ... -- not the SDK's SUCCEEDED), that task's
    name, the run's resource name, and an empty error (the driver fills in no code or message)."""
    dependents = task.get("dependentTasks", [])
    if not dependents:
        raise DriverError(f"task {task_name} has no dependent tasks", "a final status needs the task it reports on",
                          "use dsl.ExitHandler", version)
    producer = outcomes.get(dependents[0])
    if producer is None:
        raise DriverError(f"producer task, {dependents[0]}, not in tasks", "the task reported on never started",
                          "", version)
    state = producer.record.state if producer.record is not None else producer.state
    return {"state": state, "pipelineTaskName": dependents[0], "pipelineJobResourceName": run_name, "error": {}}
