"""What the targeted KFP server cannot run, or may get wrong: checked on the compiled IR.

The kfp SDK compiles shapes that some backend releases cannot run (their driver, in Go, is where a
pipeline's meaning is decided; see `kale_like.kfp_server`). Each such shape is one row of
`FEATURES`: the first release that runs it at all (older targets are refused, at compile time,
naming the task and the fix) and the first release that runs it as written (older targets get a
warning). The README's "Which KFP server versions" table is this table; a test keeps them equal.

Every fact was read in kubeflow/pipelines at tags 2.14.0, 2.15.0, 2.16.0 and 2.17.0 (the commit that
changed it is named with the issue or pull request), except one taken from a user's report on an
issue still open (#12390), which says so.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Iterator

import yaml

from kale_like.errors import KaleLikeError, KaleLikeErrors, SourceLocation
from kale_like.kfp_server import SUPPORTED, ServerVersion


@dataclass(frozen=True, slots=True)
class ServerFeature:
    """A shape of compiled IR whose meaning depends on the KFP server release."""

    key: str
    shape: str  # the IR shape, in the user's words
    needs: str | None  # first release that runs it; older targets are refused (None: every release runs it)
    reliable_from: str | None  # first release that runs it as written; older targets are warned (None: none yet)
    on_older: str  # what an older server does, as a clause: "on KFP 2.14 <on_older>"
    ref: str  # the issue to read, for messages
    source: str  # where it was read: issue / pull request, release, and the Go code


FEATURES: tuple[ServerFeature, ...] = (
    ServerFeature(
        "env_optional", "`optional` on a secret or config map read as environment variables",
        "2.15", "2.15", "the server refuses to create the run ('unknown field \"optional\"': its protos lack it)",
        "kubeflow/pipelines#12216",
        "kubeflow/pipelines#12216 (commit 55ec846, first in 2.15.0); argocompiler/container.go unmarshals the "
        "Kubernetes settings strictly"),
    ServerFeature(
        "artifact_oneof", "`dsl.OneOf` of artifacts (an untyped value assigned in every branch of an if/else)",
        "2.17", "2.17", "the reader's input is looked up in the last branch only: when another branch "
        "ran, the reader fails",
        "kubeflow/pipelines#13436",
        "kubeflow/pipelines#13436, fixed by #13437 (first in 2.17.0); driver/resolve.go GetProducerTask"),
    ServerFeature(
        "nested_oneof", "`dsl.OneOf` whose branch holds a nested DAG (a nested pipeline, a loop, an inner if)",
        "2.17", "2.17", "the branch is never marked complete, so the reader fails ('processing OneOf: No "
        "successful task found')", "kubeflow/pipelines#13322",
        "kubeflow/pipelines#13322 (first in 2.17.0); metadata/client.go UpdateDAGExecutionsState"),
    ServerFeature(
        "loop_in_exit_handler", "`dsl.ParallelFor` inside a `dsl.ExitHandler` (a loop in a pipeline with an "
        "exit step)", "2.15", "2.15", "such a run was reported to fail with no clear error",
        "kubeflow/pipelines#12390",
        "kubeflow/pipelines#12390 (open; reported on 2.14.3, no report on a later release)"),
    ServerFeature(
        "exit_status_nested", "an exit handler around a nested DAG (a loop, an if or a nested pipeline)",
        None, "2.17", "the exit step's status holds the group's state before it is final ('RUNNING')",
        "kubeflow/pipelines#13321",
        "kubeflow/pipelines#13321 and #11979, fixed by #13322 (first in 2.17.0); driver/resolve.go "
        "TaskFinalStatus reads the state metadata/client.go UpdateDAGExecutionsState sets"),
    ServerFeature(
        "cached_oneof", "a `dsl.OneOf` branch whose last step KFP serves from its cache",
        None, None, "a cache hit skips the launcher, the only code that marks the branch complete, so the "
        "reader fails ('processing OneOf: No successful task found')", "driver/container.go",
        "driver/container.go (a cache hit publishes CACHED, no launcher runs); metadata/client.go "
        "UpdateDAGExecutionsState is called by the launcher only; unchanged in 2.17.0"),
)
BY_KEY = {feature.key: feature for feature in FEATURES}


def markdown_table() -> str:
    """`FEATURES` as the README shows it (a test keeps the README's copy equal to this)."""
    rows = ["| shape in the compiled pipeline | refused on | warned on | what an older server does | source |",
            "|---|---|---|---|---|"]
    for feature in FEATURES:
        refused = [v for v in SUPPORTED if feature.needs and not ServerVersion.parse(v).at_least(feature.needs)]
        warned = [v for v in SUPPORTED if v not in refused and (
            feature.reliable_from is None or not ServerVersion.parse(v).at_least(feature.reliable_from))]
        rows.append(f"| {feature.shape} | {_span(refused)} | {_span(warned)} | {feature.on_older} | "
                    f"{feature.source} |")
    return "\n".join(rows)


def _span(versions: list[str]) -> str:
    if not versions:
        return "—"
    return versions[0] if len(versions) == 1 else f"{versions[0]}–{versions[-1]}"


@dataclass(frozen=True, slots=True)
class Finding:
    """One shape of this pipeline that the target server refuses or may get wrong."""

    feature: ServerFeature
    task: str  # the task (step) concerned, as KFP names it
    detail: str  # what in this pipeline has the shape
    hint: str  # what to change

    def message(self, version: ServerVersion) -> str:
        return f"{self.detail}; on KFP {version} {self.feature.on_older} ({self.feature.ref})"


def check_for_server(spec: dict, version: ServerVersion,
                     platform: dict | None = None) -> tuple[list[Finding], list[Finding]]:
    """(refusals, warnings) for running the compiled pipeline `spec` (and its `platform` document,
    the kfp-kubernetes settings) on a KFP server of `version`."""
    refusals: list[Finding] = []
    warnings: list[Finding] = []
    for finding in _findings(spec, platform or {}):
        feature = finding.feature
        if feature.needs is not None and not version.at_least(feature.needs):
            refusals.append(finding)
        elif feature.reliable_from is None or not version.at_least(feature.reliable_from):
            warnings.append(finding)
    return refusals, warnings


def checked_spec(spec: dict, version: ServerVersion, source: str, platform: dict | None = None) -> list[str]:
    """Raise KaleLikeError (exit 2) for what `version` cannot run; return the warnings' text."""
    refusals, warnings = check_for_server(spec, version, platform)
    where = SourceLocation(source)
    errors = [KaleLikeError(f.message(version), where, f.hint) for f in refusals]
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise KaleLikeErrors(errors)
    return [f"{f.message(version)}\n  hint: {f.hint}" for f in warnings]


def checked_yaml(text: str, version: ServerVersion, source: str) -> list[str]:
    """`checked_spec` on compiled YAML text (parsed once per text, however often it is checked)."""
    spec, platform = _documents(text)
    return checked_spec(spec, version, source, platform)


def check_compiled(text: str, graph) -> list[str]:
    """The compile path's check: refuse for the graph's target version; the warnings' text (with the
    shapes the lowering passes could not rewrite)."""
    from kale_like.lowering import lowering_warnings

    return lowering_warnings(graph) + checked_yaml(text, ServerVersion.parse(graph.settings.kfp_version),
                                                   str(graph.source))


server_warnings = check_compiled  # the surfaces print what the compile path returned


@functools.lru_cache(maxsize=4)  # the compile path and the surface that prints its warnings
def _documents(text: str) -> tuple[dict, dict]:
    """The pipeline spec (without its executors) and the platform document of compiled YAML, each
    parsed only when it holds what a check reads.

    Parsing YAML is slow (~1 s a MB) and compiling a large pipeline again from the cache takes a
    fraction of a second: the executors (each step's code, most of the bytes) are cut out first, and
    the platform document (every step's Kubernetes settings) is read only when it has an `optional`."""
    head, separator, tail = text.partition("\n---\n")
    spec: dict = {}
    platform = _load(tail) if separator and "optional:" in tail else {}
    if platform:  # the messages name the tasks that run each executor: every component is needed
        spec = _load(_without_executors(head)) or _load(head)
    elif "Selectors" in head or "taskFinalStatus" in head:
        spec = _load(_dags_only(_without_executors(head))) or _load(head)
    return spec, platform if "platforms" in platform else {}


def _load(text: str) -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        document = yaml.load(text, Loader=loader)
    except yaml.YAMLError:
        return {}
    return document if isinstance(document, dict) else {}


_TOP_LEVEL = re.compile(r"^\S", re.MULTILINE)


def _dags_only(text: str) -> str:
    """`text` with only the DAG components under `components:` (kfp writes each component's keys
    sorted, so a DAG component's first line is `dag:`); a check treats a missing one as a step."""
    lines = text.split("\n")
    kept: list[str] = []
    inside, keep = False, True
    for index, line in enumerate(lines):
        if line and not line.startswith(" "):
            inside, keep = line == "components:", True
        elif inside and line.startswith("  ") and not line.startswith("   "):
            keep = index + 1 < len(lines) and lines[index + 1] == "    dag:"
        if keep:
            kept.append(line)
    return "\n".join(kept)


def _without_executors(text: str) -> str:
    """`text` without the top-level `deploymentSpec:` block (every line below it is indented)."""
    start = text.find("\ndeploymentSpec:\n")
    if start < 0:
        return text
    end = _TOP_LEVEL.search(text, start + len("\ndeploymentSpec:\n"))
    return text[:start + 1] + (text[end.start():] if end else "")


# ---------------------------------------------------------------------------------------------
# the shapes


def _hint_version(version: str, instead: str) -> str:
    return (f"if your KFP server is {version} or newer, target it (--kfp-version {version}, notebook metadata "
            f"kubeflow_notebook.kfp_version, @pipeline(kfp_version=\"{version}\") or the panel's setting); "
            f"otherwise {instead}")


def _findings(spec: dict, platform: dict) -> Iterator[Finding]:
    components = spec.get("components", {}) or {}
    dags = {"root": spec.get("root", {}) or {}}
    dags.update({name: c for name, c in components.items() if isinstance(c, dict) and "dag" in c})
    yield from _env_optional(spec, platform)
    for name, component in dags.items():
        yield from _oneofs(component, components)
        yield from _exit_handlers(component, components)


def _env_optional(spec: dict, platform: dict) -> Iterator[Finding]:
    executors = (platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
                 .get("executors", {})) or {}
    users = _executor_tasks(spec)
    for executor, config in sorted(executors.items()):
        for kind, setting in (("secretAsEnv", "secret"), ("configMapAsEnv", "config map")):
            for item in (config or {}).get(kind, []) or []:
                if isinstance(item, dict) and "optional" in item:
                    name = item.get("secretName") or item.get("configMapName") or "?"
                    task = users.get(executor, executor)
                    yield Finding(BY_KEY["env_optional"], task,
                                  f"task '{task}' reads {setting} '{name}' as environment variables with "
                                  f"optional: {str(item['optional']).lower()}",
                                  _hint_version("2.15", "leave `optional` out (kale_like never writes it; a YAML "
                                                "compiled elsewhere must be compiled without optional=)"))


def _executor_tasks(spec: dict) -> dict[str, str]:
    """executor label -> a task name that runs it (for messages)."""
    component_executor = {name: c.get("executorLabel") for name, c in (spec.get("components") or {}).items()
                          if isinstance(c, dict)}
    result: dict[str, str] = {}
    for dag in [spec.get("root", {})] + list((spec.get("components") or {}).values()):
        for task_name, task in ((dag or {}).get("dag", {}).get("tasks", {}) or {}).items():
            label = component_executor.get(task.get("componentRef", {}).get("name", ""))
            if label:
                result.setdefault(label, task_name)
    return result


def _oneofs(component: dict, components: dict) -> Iterator[Finding]:
    """The OneOfs that tasks of this DAG read (an if/else group task whose outputs choose a branch)."""
    tasks = component.get("dag", {}).get("tasks", {}) or {}
    for group_name, group_task in sorted(tasks.items()):
        group = _dag_of(group_task, components)
        if group is None:
            continue
        inner = group["dag"].get("tasks", {}) or {}
        outputs = group["dag"].get("outputs", {}) or {}
        for key, spec in sorted((outputs.get("parameters", {}) or {}).items()):
            selectors = (spec or {}).get("valueFromOneof", {}).get("parameterSelectors", []) or []
            if selectors:
                name = _readers(tasks, group_name, key)
                yield from _oneof_branches(name, [s.get("producerSubtask", "") for s in selectors], inner,
                                           components)
        for key, spec in sorted((outputs.get("artifacts", {}) or {}).items()):
            selectors = (spec or {}).get("artifactSelectors", []) or []
            if len(selectors) < 2:  # one selector is a plain output passed up; several are a OneOf
                continue
            name = _readers(tasks, group_name, key)
            branches = [s.get("producerSubtask", "") for s in selectors]
            steps = [_leaf_task(b, s.get("outputArtifactKey", ""), inner, components)
                     for b, s in zip(branches, selectors)]
            yield Finding(BY_KEY["artifact_oneof"], steps[0],
                          f"{name} comes from whichever of the steps {_names(steps)} ran (an if/else of untyped "
                          f"results travels as artifacts)",
                          _hint_version("2.17", "annotate those steps' return type (e.g. `-> float`, `-> list`) so "
                                        "the value travels as a parameter, whose OneOf every version resolves"))
            yield from _oneof_branches(name, branches, inner, components)


def _oneof_branches(name: str, branches: list[str], tasks: dict, components: dict) -> Iterator[Finding]:
    cached: list[str] = []
    for branch in branches:
        body = _dag_of(tasks.get(branch, {}), components)
        if body is None:
            continue
        inner = body.get("dag", {}).get("tasks", {}) or {}
        nested = [task for task, spec in sorted(inner.items()) if _dag_of(spec, components) is not None]
        if nested:
            yield Finding(BY_KEY["nested_oneof"], nested[0],
                          f"{name} is set in a branch ('{branch}') that runs {_described(nested, body, components)}",
                          _hint_version("2.17", "call the steps directly in that branch, not through a nested "
                                        "pipeline, a loop or an inner if"))
            continue
        cached += [task for task in _sinks(inner) if inner[task].get("cachingOptions", {}).get("enableCache")]
    if cached:
        yield Finding(BY_KEY["cached_oneof"], cached[0],
                      f"{name} is set by the step{'s' * (len(cached) > 1)} {_names(cached)} in an if/else, which "
                      f"KFP may serve from its cache (a rerun with the same inputs)",
                      "end each branch with a step that is never cached (kfp: `.set_caching_options(False)`; "
                      "kale_like: `@step(cache=False)` or the tag cache:disabled) so that every run marks its "
                      "branch complete")


def _readers(tasks: dict, group: str, key: str) -> str:
    """'the value read as x by task y' for the OneOf output `key` of task `group` (for messages)."""
    readers = []
    for name, task in sorted(tasks.items()):
        inputs = task.get("inputs", {}) or {}
        for argument, spec in sorted(list((inputs.get("parameters") or {}).items())
                                     + list((inputs.get("artifacts") or {}).items())):
            ref = (spec or {}).get("taskOutputParameter") or (spec or {}).get("taskOutputArtifact") or {}
            if ref.get("producerTask") == group and key in (ref.get("outputParameterKey"),
                                                            ref.get("outputArtifactKey")):
                readers.append(f"'{argument}' of '{name}'")
    return f"the value {' and '.join(readers)}" if readers else f"the if/else result '{_variable(key)}'"


def _exit_handlers(component: dict, components: dict) -> Iterator[Finding]:
    tasks = component.get("dag", {}).get("tasks", {}) or {}
    for exit_name, task in sorted(tasks.items()):
        for spec in (task.get("inputs", {}).get("parameters", {}) or {}).values():
            group = (spec or {}).get("taskFinalStatus", {}).get("producerTask")
            body = _dag_of(tasks.get(group, {}), components) if group else None
            if body is None:
                continue
            loops, nested = _nested_dags(body, components)
            if loops:
                yield Finding(BY_KEY["loop_in_exit_handler"], loops[0],
                              f"the exit step '{exit_name}' runs after a group holding "
                              f"{_described(loops, body, components)}",
                              _hint_version("2.15", "drop the exit step (on_exit= or the exit-handler cell) or run "
                                            "the loop in a pipeline of its own"))
            if nested:
                yield Finding(BY_KEY["exit_status_nested"], exit_name,
                              f"the exit step '{exit_name}' reads the final status of a group holding "
                              f"{_described(nested, body, components)}",
                              _hint_version("2.17", "do not rely on status['state'] in the exit step (read the "
                                            "outcome from your own outputs)"))


def _described(names: list[str], body: dict, components: dict) -> str:
    """"a loop ('for-loop-2'), an if ('condition-3')": what each nested DAG is, in the user's words."""
    tasks = _all_tasks(body, components)
    parts = []
    for name in names:
        task = tasks.get(name, {})
        kind = ("a loop" if "parameterIterator" in task or "artifactIterator" in task
                else "an if" if name.startswith("condition-") else "a nested pipeline")
        parts.append(f"{kind} ('{name}')")
    return ", ".join(parts)


def _all_tasks(body: dict, components: dict) -> dict[str, dict]:
    tasks: dict[str, dict] = {}
    pending = [body]
    while pending and len(tasks) < 100_000:
        dag = pending.pop()
        for name, task in (dag.get("dag", {}).get("tasks", {}) or {}).items():
            if name not in tasks:
                tasks[name] = task
                inner = _dag_of(task, components)
                if inner is not None:
                    pending.append(inner)
    return tasks


def _nested_dags(body: dict, components: dict) -> tuple[list[str], list[str]]:
    """(loops, every nested DAG) at any depth below `body`, as task names."""
    loops: list[str] = []
    nested: list[str] = []
    pending = [body]
    seen: set[int] = set()
    while pending:
        dag = pending.pop()
        if id(dag) in seen:
            continue
        seen.add(id(dag))
        for name, task in sorted((dag.get("dag", {}).get("tasks", {}) or {}).items()):
            inner = _dag_of(task, components)
            if inner is None:
                continue
            if "parameterIterator" in task or "artifactIterator" in task:
                loops.append(name)
            if dag is body:
                nested.append(name)
            pending.append(inner)
    return loops, nested


def _dag_of(task: dict, components: dict) -> dict | None:
    component = components.get((task or {}).get("componentRef", {}).get("name", ""))
    return component if isinstance(component, dict) and "dag" in component else None


def _leaf_task(task: str, output: str, tasks: dict, components: dict) -> str:
    """The step that produces `output` of task `task`, following DAG outputs down (for messages)."""
    for _ in range(32):
        body = _dag_of(tasks.get(task, {}), components)
        if body is None:
            return task
        selectors = (body["dag"].get("outputs", {}).get("artifacts", {}).get(output, {}) or {}).get(
            "artifactSelectors", []) or []
        if not selectors:
            return task
        task, output = selectors[-1].get("producerSubtask", task), selectors[-1].get("outputArtifactKey", "")
        tasks = body["dag"].get("tasks", {}) or {}
    return task


def _sinks(tasks: dict) -> list[str]:
    """Tasks of one DAG that no other task of it waits for (the ones that finish it)."""
    upstream: set[str] = set()
    for task in tasks.values():
        upstream.update(task.get("dependentTasks", []) or [])
        inputs = task.get("inputs", {}) or {}
        for spec in list((inputs.get("parameters") or {}).values()) + list((inputs.get("artifacts") or {}).values()):
            for kind in ("taskOutputParameter", "taskOutputArtifact"):
                if kind in (spec or {}):
                    upstream.add(spec[kind].get("producerTask", ""))
    return sorted(name for name in tasks if name not in upstream)


def _variable(key: str) -> str:
    """`pipelinechannel--condition-branches-1-oneof-1` -> a readable name for messages."""
    return key.removeprefix("pipelinechannel--")


def _names(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)
