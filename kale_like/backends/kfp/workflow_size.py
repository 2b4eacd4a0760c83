"""How big the Argo Workflow is that the KFP backend makes of a compiled pipeline.

A KFP v2 run is one Argo Workflow object, stored in etcd, which refuses objects over its request
limit (1.5 MiB by default): kubeflow/pipelines#13738 is a 56-task pipeline whose Workflow came to
1.95 MiB and never started. The size is decided on the server, so it is estimated here, from the
IR, by building the parts of the Workflow that grow with the pipeline the way the KFP backend's
compiler builds them (kubeflow/pipelines `backend/src/v2/compiler/`, read at 2.14.0-2.17.0):

- `visitor.go` `Accept`: each component visited once, leaves first; a task without a retry policy
  inherits its DAG task's.
- `argocompiler/argo.go` `saveComponentSpec` / `saveComponentImpl` / `saveKubernetesSpec`: each
  component's spec and each executor's container (or importer) go once into the Workflow's
  `spec.arguments.parameters` as JSON text, keyed by a hash of the container, so components with
  identical containers share one copy; Kubernetes settings go in per component name.
- `argocompiler/dag.go` `DAG`, `task`, `iteratorTask`, `iterationItemTask`, `dagDriverTask`: a
  template per DAG component (its own spec JSON is saved too, with every task of the DAG in it);
  per task a driver and an executor DAG task, the driver carrying the task's spec as JSON (twice
  for a loop: its iteration driver and its iteration task); per loop two more templates; exit
  tasks in `exit-hook-...` templates.
- `argocompiler/container.go` `containerDriverTask` / `containerExecutorTask` /
  `addContainerExecutorTemplate`, `importer.go` `importerTask`: the arguments of those tasks,
  and the system templates (drivers, executor, launcher), written once each.

JSON inside JSON is counted as the server stores it: Go's encoder escapes `<`, `>` and `&`, and
the inner JSON's quotes and backslashes are escaped again by the outer one. The system templates
are taken as measured on the Go compiler's own output (`test_data/compiled-workflows` at each
release, with the default images and addresses). The API server then adds labels, annotations
(one per template) and Kubernetes object metadata: `SERVER_ADDITIONS` bytes and
`PER_TEMPLATE_ANNOTATION` a template, an allowance rather than a measurement. Not counted: the
Workflow's status, which the controller fills in while the run goes on (Argo compresses or
offloads it), and a cluster's own workflow-spec patch. `benchmarks/workflow_size_calibration.py`
compares the estimate with the Go compiler's golden Workflows of the kubeflow/pipelines sources.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from kale_like.errors import KaleLikeError, SourceLocation
from kale_like.kfp_server import ServerVersion

DEFAULT_LIMIT = 1_572_864  # etcd's default request size limit (--max-request-bytes), 1.5 MiB
SERVER_ADDITIONS = 2048  # run labels and annotations, object metadata, managed fields
PER_TEMPLATE_ANNOTATION = 48  # "sidecar.istio.io/inject": "false" on every template

# JSON bytes of the templates the compiler writes once, measured on its golden output with the
# pipeline name left out (it appears in both drivers' arguments and the importer's), and of the
# rest of the Workflow that does not grow with the pipeline (apiVersion, metadata, podMetadata,
# service account, entrypoint name, status): the medians `benchmarks/workflow_size_calibration.py`
# prints. Tasks with a retry policy or pod metadata use variants of the executor templates, one
# pair per variant: the plain sizes plus the differences measured on the variants there are.
_SYSTEM = {
    "2.14": {"skeleton": 410, "system-container-driver": 1514, "system-dag-driver": 1490,
             "system-container-executor": 391, "system-container-impl": 1508, "system-importer": 1054},
    "2.15": {"skeleton": 410, "system-container-driver": 1713, "system-dag-driver": 1689,
             "system-container-executor": 391, "system-container-impl": 1515, "system-importer": 1055},
    "2.16": {"skeleton": 410, "system-container-driver": 1895, "system-dag-driver": 1707,
             "system-container-executor": 391, "system-container-impl": 1515, "system-importer": 1055},
    "2.17": {"skeleton": 468, "system-container-driver": 2254, "system-dag-driver": 2066,
             "system-container-executor": 391, "system-container-impl": 1918, "system-importer": 1350},
}
_RETRY = (545, 400)  # what the retry- variants of the executor and launcher templates add
_METADATA = ((40, 270), (45, 180))  # pod-metadata variants: (fixed, per annotation or label) for each
_INTEGRAL_FLOAT = re.compile(r"(?<=[:\[,])(-?\d+)\.0(?=[,}\]])")
_KUBERNETES_ONLY = ("argostub/createpvc", "argostub/deletepvc")  # images of tasks that only run a driver
_NAME_USES = {"system-container-driver": 1, "system-dag-driver": 1, "system-importer": 1, "skeleton": 1}


@dataclass
class WorkflowEstimate:
    """The estimated size of the Workflow object, and what it is made of."""

    total: int
    by_component: dict[str, int] = field(default_factory=dict)  # IR component -> bytes it brings
    tasks: dict[str, int] = field(default_factory=dict)  # IR component -> tasks that run it
    system: int = 0  # the templates and fields written once

    def largest(self, count: int = 3) -> list[tuple[str, int]]:
        """The components that bring the most bytes (their spec and program, and their tasks), largest
        first."""
        return sorted(self.by_component.items(), key=lambda item: (-item[1], item[0]))[:count]


def check_workflow_size(shape: WorkflowShape, limit: int, version: ServerVersion | str | None,
                        source: str = "") -> WorkflowEstimate:
    """The estimate, or a KaleLikeError if the Workflow would be larger than `limit` bytes (0: no
    limit), naming the components that bring the most."""
    estimate = shape.estimate(version)
    if not limit or estimate.total <= limit:
        return estimate
    largest = ", ".join(
        f"{name} ({_size_text(size)}" + (f", {estimate.tasks[name]:,} tasks" if estimate.tasks.get(name, 0) > 1 else "")
        + ")" for name, size in estimate.largest())
    default = ", etcd's default" if limit == DEFAULT_LIMIT else ""
    raise KaleLikeError(
        f"the Argo Workflow a KFP {ServerVersion.parse(version)} server makes of this pipeline would be about "
        f"{_size_text(estimate.total)}, more than the cluster stores ({_size_text(limit)}{default}): its runs would "
        f"never start. Largest: {largest}",
        SourceLocation(source) if source else None,
        "fewer tasks in one pipeline: a loop over the items (kale_like.parallel, dsl.ParallelFor) is one task "
        "however many items it has; or split the pipeline; or, if the cluster's etcd takes larger objects "
        "(--max-request-bytes), say so with --max-workflow-size")


def _size_text(size: int) -> str:
    return f"{size / 1024 ** 2:.2f} MiB" if size >= 1024 ** 2 else f"{size / 1024:.0f} KiB"


def parse_size(text: str, origin: str = "size") -> int:
    """`1572864`, `1.5MiB`, `2MB`, `900KiB`, `0` -> bytes; anything else is a KaleLikeError naming `origin`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B?|B)?\s*", str(text), re.IGNORECASE)
    if match is None:
        raise KaleLikeError(f"{origin}: {text!r} is not a size", None, "bytes, or with a unit: 1.5MiB, 2MB, 900KiB")
    number, unit = float(match.group(1)), (match.group(2) or "B").upper().rstrip("B")
    scale = {"": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "KI": 1024, "MI": 1024**2, "GI": 1024**3}[unit]
    return int(number * scale)


def go_json(value) -> str:
    """`value` as Go's encoding/json writes it (compact, sorted keys as protojson-then-Marshal
    gives, `<>&` escaped); integral floats as integers, as Go prints a float64 of 3 as `3`."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    if ".0" in text:  # (a string holding such a number loses two bytes too: an estimate can afford it)
        text = _INTEGRAL_FLOAT.sub(r"\1", text)
    if "<" in text or ">" in text or "&" in text or "\u2028" in text or "\u2029" in text:
        text = (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
                .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return text


def json_bytes(value) -> int:
    """Bytes of `value` written by `go_json`."""
    return len(go_json(value).encode("utf-8"))


@dataclass
class WorkflowShape:
    """What the Workflow of a pipeline holds, whatever the KFP version: the bytes that grow with the
    pipeline, and which of the once-written templates it needs (kept beside a compiled pipeline)."""

    name: str  # the pipeline's name (the system templates carry it)
    grown: int  # bytes of the workflow arguments and of the templates made per DAG, loop and exit task
    templates: int  # how many such templates
    system: tuple[str, ...]  # the once-written parts it needs (`_SYSTEM` keys, `executor:<template>`)
    by_component: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)

    def estimate(self, version: ServerVersion | str | None = None) -> WorkflowEstimate:
        """The Workflow's estimated size on KFP `version` (its system templates differ)."""
        sizes = _SYSTEM.get(str(ServerVersion.parse(version)), _SYSTEM["2.14"])
        system, templates = 0, self.templates
        for part in self.system:
            if not part.startswith("executor:"):
                system += sizes[part] + _NAME_USES.get(part, 0) * len(self.name.encode("utf-8"))
                templates += 1
                continue
            variant = part[len("executor:"):]  # [metadata-A-L-][retry-]system-container-executor
            system += sizes["system-container-executor"] + sizes["system-container-impl"]
            templates += 2
            if "retry-" in variant:
                system += sum(_RETRY)
            if variant.startswith("metadata-"):
                entries = sum(int(n) for n in variant.split("-")[1:3])
                system += sum(fixed + each * entries for fixed, each in _METADATA)
        total = system + self.grown + SERVER_ADDITIONS + PER_TEMPLATE_ANNOTATION * templates
        return WorkflowEstimate(total, dict(self.by_component), dict(self.tasks), system)

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "grown": self.grown, "templates": self.templates,
                           "system": list(self.system), "by_component": self.by_component, "tasks": self.tasks})

    @classmethod
    def from_json(cls, text: str) -> WorkflowShape:
        data = json.loads(text)
        return cls(data["name"], data["grown"], data["templates"], tuple(data["system"]), data["by_component"],
                   data["tasks"])


def workflow_shape(spec: dict, platform: dict | None = None) -> WorkflowShape:
    """The shape of the Workflow for the pipeline spec `spec` (the IR's first document, as a dict)
    and its platform document (`platforms: kubernetes: ...`)."""
    model = _Workflow(spec, (platform or {}).get("platforms", {}).get("kubernetes", {}))
    model.visit("root", spec.get("root", {}), None)
    return model.shape()


def estimate_workflow(spec: dict, platform: dict | None = None, version: ServerVersion | str | None = None,
                      ) -> WorkflowEstimate:
    """The estimated size of the Workflow for `spec` and `platform` on KFP `version`."""
    return workflow_shape(spec, platform).estimate(version)


class _Workflow:
    """The growing parts of the Workflow, built as the Go compiler builds them."""

    def __init__(self, spec: dict, kubernetes: dict):
        self.spec = spec
        self.components = spec.get("components", {})
        self.executors = spec.get("deploymentSpec", {}).get("executors", {})
        self.kubernetes = kubernetes.get("deploymentSpec", {}).get("executors", {})
        self.name = spec.get("pipelineInfo", {}).get("name", "")
        self.arguments: dict[str, int] = {}  # workflow parameter -> its bytes
        self.templates: dict[str, int] = {}  # template -> its bytes
        self.system: set[str] = {"skeleton", "system-dag-driver"}
        self.visited: set[str] = set()
        self.owner: dict[str, int] = {}  # component -> bytes attributed to it
        self.uses: dict[str, int] = {}  # component -> tasks running it
        self.keys: dict[str, str] = {}
        self.task_json: dict[int, tuple[dict, str]] = {}
        self.dag_tasks: dict[str, int] = {}  # DAG -> bytes of it counted as its tasks' (see `counted`)

    # -- visitor.go Accept -----------------------------------------------------------------------
    def visit(self, name: str, component: dict, parent_task: dict | None) -> None:
        if name in self.visited:
            return
        self.visited.add(name)
        label = component.get("executorLabel")
        if label:
            executor = self.executors.get(label, {})
            if label in self.kubernetes:
                self._argument(f"kubernetes-{name}", go_json(self.kubernetes[label]), name)
            impl = executor.get("container") or executor.get("importer")
            if impl is not None:
                self._argument(f"components-{self._key(name)}", go_json(component), name)
                self._argument(f"implementations-{self._key(name)}", go_json(impl), name)
            return
        tasks = dict(component.get("dag", {}).get("tasks", {}))  # changed as Go changes them, in a copy
        for key in sorted(tasks):
            task = tasks[key]
            if "retryPolicy" not in task and parent_task is not None and "retryPolicy" in parent_task:
                task = tasks[key] = {**task, "retryPolicy": parent_task["retryPolicy"]}
            reference = task.get("componentRef", {}).get("name", "")
            self.visit(reference, self.components.get(reference, {}), task)
        self.dag(name, {**component, "dag": {**component.get("dag", {}), "tasks": tasks}})

    def _json(self, task: dict) -> str:
        """A task's spec as JSON (asked for several times per task)."""
        known = self.task_json.get(id(task))
        if known is None or known[0] is not task:
            known = self.task_json[id(task)] = (task, go_json(task))
        return known[1]

    # -- argo.go ------------------------------------------------------------------------------------
    def _key(self, name: str) -> str:
        """`hashComponentContainer`: a hash of the executor's container, else the component name."""
        if name not in self.keys:
            label = self.components.get(name, {}).get("executorLabel", "")
            container = self.executors.get(label, {}).get("container")
            self.keys[name] = name if container is None else hashlib.sha256(go_json(container).encode()).hexdigest()
        return self.keys[name]

    def _argument(self, name: str, value: str, owner: str) -> None:
        if name in self.arguments:  # `saveProtoToArguments` keeps the first
            return
        size = json_bytes({"name": name, "value": value}) + 1
        self.arguments[name] = size
        self.owner[owner] = self.owner.get(owner, 0) + size

    def _template(self, name: str, template: dict, owner: str) -> None:
        size = json_bytes({**template, "name": name, "metadata": {}, "outputs": {}}) + 1
        self.templates[name] = size
        self.owner[owner] = self.owner.get(owner, 0) + size

    # -- dag.go -------------------------------------------------------------------------------------
    def dag(self, name: str, component: dict) -> None:
        dag = component.get("dag", {})
        tasks = dag.get("tasks", {})
        for key, task in list(tasks.items()):  # addImplicitDependencies
            producers = [spec[kind]["producerTask"] for group in ("parameters", "artifacts")
                         for spec in task.get("inputs", {}).get(group, {}).values()
                         for kind in ("taskOutputParameter", "taskOutputArtifact") if kind in spec]
            missing = [p for p in dict.fromkeys(producers) if p not in task.get("dependentTasks", [])]
            if missing:
                tasks[key] = {**task, "dependentTasks": list(task.get("dependentTasks", [])) + missing}
        self._argument(f"components-{name}", go_json(component), name)
        exits: dict[str, str] = {}
        for key in sorted(tasks):
            task = tasks[key]
            if task.get("triggerPolicy", {}).get("strategy") != "ALL_UPSTREAM_TASKS_COMPLETED":
                continue
            hook = f"exit-hook-{name}-{key}"
            made = self.counted(name, key, task, self.task(key, task, "{{inputs.parameters.parent-dag-id}}"))
            self._template(hook, {"inputs": {"parameters": [{"name": "parent-dag-id"}]}, "dag": {"tasks": made}},
                           name)
            for dependency in task.get("dependentTasks", []):
                exits[dependency] = hook
        dag_tasks = []
        for key in sorted(tasks):
            task = tasks[key]
            if task.get("triggerPolicy", {}).get("strategy") == "ALL_UPSTREAM_TASKS_COMPLETED":
                continue
            dag_tasks += self.counted(name, key, task, self.task(key, task, "{{inputs.parameters.parent-dag-id}}",
                                                                 exit_hook=exits.get(key, "")))
        self._template(name, {"inputs": {"parameters": [{"name": "parent-dag-id"}]}, "dag": {"tasks": dag_tasks}},
                       name)
        if name == "root":
            defaults = {n: d["defaultValue"] for n, d in
                        component.get("inputDefinitions", {}).get("parameters", {}).items() if "defaultValue" in d}
            runtime = go_json({"parameterValues": defaults} if defaults else {})
            driver = self._dag_driver("root-driver", "{{workflow.parameters.components-root}}", runtime=runtime)
            root = {"name": "root", "template": "root", "depends": "root-driver.Succeeded",
                    "arguments": {"parameters": [
                        {"name": "parent-dag-id", "value": "{{tasks.root-driver.outputs.parameters.execution-id}}"},
                        {"name": "condition", "value": ""}]}}
            self._template("entrypoint", {"inputs": {}, "dag": {"tasks": [driver, root]}}, "root")

    def counted(self, dag: str, name: str, task: dict, made: list[dict]) -> list[dict]:
        """`made`, the Argo DAG tasks of an IR task of `dag`; their bytes, and the task's share of
        its DAG's spec, go to the task's component rather than to the DAG."""
        reference = task.get("componentRef", {}).get("name", "")
        self.uses[reference] = self.uses.get(reference, 0) + 1
        share = sum(json_bytes(one) + 1 for one in made) + len(self._json(task)) + len(name) + 4
        self.owner[reference] = self.owner.get(reference, 0) + share
        self.dag_tasks[dag] = self.dag_tasks.get(dag, 0) + share
        return made

    def task(self, name: str, task: dict, parent: str, iteration: str = "", exit_hook: str = "") -> list[dict]:
        """`task` in dag.go: the Argo DAG tasks of one IR task."""
        reference = task.get("componentRef", {}).get("name", "")
        component = self.components.get(reference, {})
        placeholder = f"{{{{workflow.parameters.components-{self._key(reference)}}}}}"
        task_json = self._json(task)
        if not iteration and ("parameterIterator" in task or "artifactIterator" in task):
            return self._iterator(name, task, task_json, parent, reference, placeholder)
        condition = bool(task.get("triggerPolicy", {}).get("condition"))
        is_exit = task.get("triggerPolicy", {}).get("strategy") == "ALL_UPSTREAM_TASKS_COMPLETED"
        depends = "" if iteration or is_exit else _depends(task.get("dependentTasks", []))
        if "dag" in component:
            driver = self._dag_driver(f"{name}-driver", placeholder, parent=parent, task=task_json,
                                      iteration=iteration, task_name=name, depends=depends)
            outputs = f"{{{{tasks.{name}-driver.outputs.parameters"
            dag = {"name": name, "template": reference, "depends": f"{name}-driver.Succeeded",
                   "arguments": {"parameters": [{"name": "parent-dag-id", "value": f"{outputs}.execution-id}}}}"},
                                                {"name": "condition", "value": f"{outputs}.condition}}}}"}]}}
            if condition:
                dag["when"] = f"{outputs}.condition}}}} != false"
            _hook(dag, exit_hook, parent)
            return [driver, dag]
        executor = self.executors.get(component.get("executorLabel", ""), {})
        if "importer" in executor:
            self.system.add("system-importer")
            return [{"name": name, "template": "system-importer", "arguments": {"parameters": [
                {"name": "task", "value": task_json}, {"name": "component", "value": placeholder},
                {"name": "importer", "value": f"{{{{workflow.parameters.implementations-{self._key(reference)}}}}}"},
                {"name": "parent-dag-id", "value": parent}]}}]
        self.system.add("system-container-driver")
        parameters = [{"name": "component", "value": placeholder}, {"name": "task", "value": task_json},
                      {"name": "container",
                       "value": f"{{{{workflow.parameters.implementations-{self._key(reference)}}}}}"},
                      {"name": "task-name", "value": name}, {"name": "parent-dag-id", "value": parent}]
        if iteration:
            parameters.append({"name": "iteration-index", "value": iteration})
        if f"kubernetes-{reference}" in self.arguments:
            parameters.append({"name": "kubernetes-config",
                               "value": f"{{{{workflow.parameters.kubernetes-{reference}}}}}"})
        driver = {"name": f"{name}-driver", "template": "system-container-driver",
                  "arguments": {"parameters": parameters}}
        if depends:
            driver["depends"] = depends
        if executor.get("container", {}).get("image") in _KUBERNETES_ONLY:  # the driver does it all
            driver["name"] = name
            return [driver]
        outputs = f"{{{{tasks.{name}-driver.outputs.parameters"
        template = "system-container-executor"
        arguments = [{"name": "pod-spec-patch", "value": f"{outputs}.pod-spec-patch}}}}"},
                     {"name": "cached-decision", "default": "false", "value": f"{outputs}.cached-decision}}}}"}]
        retry = task.get("retryPolicy")
        if retry:
            template = "retry-" + template
            arguments.append({"name": "retry-max-count", "value": str(retry.get("maxRetryCount", 0))})
            if "backoffDuration" in retry:
                arguments.append({"name": "retry-backoff-duration", "value": str(retry["backoffDuration"])})
            arguments.append({"name": "retry-backoff-factor", "value": str(retry.get("backoffFactor", 0))})
            if "backoffMaxDuration" in retry:
                arguments.append({"name": "retry-backoff-max-duration", "value": str(retry["backoffMaxDuration"])})
        metadata = self.kubernetes.get(component.get("executorLabel", ""), {}).get("podMetadata")
        if metadata:
            template = f"metadata-{len(metadata.get('annotations', {}))}-{len(metadata.get('labels', {}))}-{template}"
            for kind in ("annotations", "labels"):
                for number, (key, value) in enumerate(sorted(metadata.get(kind, {}).items()), 1):
                    arguments += [{"name": f"pod-metadata-{kind[:-1]}-key-{number}", "value": key},
                                  {"name": f"pod-metadata-{kind[:-1]}-val-{number}", "value": value}]
        self.system.add(f"executor:{template}")
        run = {"name": name, "template": template, "depends": f"{name}-driver.Succeeded",
               "arguments": {"parameters": arguments}}
        if condition:
            run["when"] = f"{outputs}.condition}}}} != false"
        _hook(run, exit_hook, parent)
        return [driver, run]

    def _iterator(self, name: str, task: dict, task_json: str, parent: str, reference: str,
                  placeholder: str) -> list[dict]:
        driver = self._dag_driver("iteration-driver", placeholder, parent=parent, task=task_json)
        outputs = "{{tasks.iteration-driver.outputs.parameters"
        iterations = {"name": "iteration-iterations", "template": f"{reference}-iteration",
                      "depends": "iteration-driver.Succeeded", "withSequence": {"count": f"{outputs}.iteration-count}}}}"},
                      "arguments": {"parameters": [
                          {"name": "parent-dag-id", "value": f"{outputs}.execution-id}}}}"},
                          {"name": "iteration-index", "value": "{{item}}"}]}}
        if task.get("triggerPolicy", {}).get("condition"):
            iterations["when"] = f"{outputs}.condition}}}} != false"
        item = self.task("iteration-item", task, "{{inputs.parameters.parent-dag-id}}",
                         iteration="{{inputs.parameters.iteration-index}}")
        self._template(f"{reference}-iteration", {"inputs": {"parameters": [
            {"name": "parent-dag-id"}, {"name": "iteration-index"}]}, "dag": {"tasks": item}}, reference)
        loop = {"inputs": {"parameters": [{"name": "parent-dag-id"}]}, "dag": {"tasks": [driver, iterations]}}
        limit = task.get("iteratorPolicy", {}).get("parallelismLimit")
        if limit:
            loop["parallelism"] = limit
        self._template(f"{reference}-{name}-iterator", loop, reference)
        outer = {"name": name, "template": f"{reference}-{name}-iterator",
                 "arguments": {"parameters": [{"name": "parent-dag-id", "value": parent}]}}
        depends = _depends(task.get("dependentTasks", []))
        if depends:
            outer["depends"] = depends
        return [outer]

    def _dag_driver(self, name: str, component: str, parent: str = "", task: str = "", runtime: str | None = None,
                    iteration: str = "", task_name: str = "", depends: str = "") -> dict:
        parameters = [{"name": "component", "value": component}]
        if iteration:
            parameters.append({"name": "iteration-index", "value": iteration})
        if parent:
            parameters.append({"name": "parent-dag-id", "value": parent})
        if runtime is not None:
            parameters += [{"name": "runtime-config", "value": runtime}, {"name": "driver-type", "value": "ROOT_DAG"}]
        if task:
            parameters.append({"name": "task", "value": task})
        if task_name and task_name != "iteration-item":
            parameters.append({"name": "task-name", "value": task_name})
        driver = {"name": name, "template": "system-dag-driver", "arguments": {"parameters": parameters}}
        if depends:
            driver["depends"] = depends
        return driver

    def shape(self) -> WorkflowShape:
        owner = dict(self.owner)  # the DAGs' templates and specs counted their tasks' bytes a second time
        for name in [name for name in owner if name == "root" or "dag" in self.components.get(name, {})]:
            owner[name] = max(0, owner[name] - self.dag_tasks.get(name, 0))
        grown = sum(self.arguments.values()) + sum(self.templates.values())
        return WorkflowShape(self.name, grown, len(self.templates), tuple(sorted(self.system)), owner,
                             dict(self.uses))


def _depends(tasks: list[str]) -> str:
    return " && ".join(f"{task}.Succeeded" for task in tasks)


def _hook(task: dict, template: str, parent: str) -> None:
    if template:
        task["hooks"] = {"exit": {"template": template, "arguments": {"parameters": [
            {"name": "parent-dag-id", "value": parent}]}}}
