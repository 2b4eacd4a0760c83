"""One step -> the source of one self-contained KFP lightweight component.

A component is the step's own code, the calls that run it and the parts of the step runtime it
needs (`packed_runtime.py`). What names the step (its name in the runtime call and the lineage)
can instead be left to a task input, `shared=`: then steps whose code, interface and settings are
the same have the same component text, and the generated module defines it once (`sharing.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kale_like.backends.kfp.naming import input_argument, output_argument, python_string
from kale_like.backends.kfp.packed_runtime import packed_runtime, unpacking_lines
from kale_like.errors import cell_name
from kale_like.graph.model import ANY, Input, Step, StepGraph
from kale_like.graph.types import SCALARS, TypeName, inner, is_json, is_list, list_of, outer

ALWAYS_INSTALLED = ("cloudpickle",)  # the runtime's fallback serialiser
SINGLE_OUTPUT_KEY = "Output"  # KFP's name for a component's one returned value
# An exit handler reads the state of the pipeline's tasks as the KFP driver records it in ML Metadata:
# COMPLETE after success (kubeflow/pipelines 2.14-2.17, backend/src/v2/driver/resolve.go, the
# TaskFinalStatus case of resolveInputParameter; KFP's critical test pipeline_with_input_status_state
# asserts it). User code sees the words of KFP's run states, locally and on every server alike.
RUN_STATES = {"COMPLETE": "SUCCEEDED", "CACHED": "SUCCEEDED"}


@dataclass(frozen=True, slots=True)
class Shared:
    """How a component shared by several steps learns which one it runs."""

    argument: str  # the input holding the step's name
    label: str  # what its code blocks are labelled with in tracebacks (the function's name)


def input_type(value: Input, output_type_of) -> tuple[str, TypeName]:
    """(kind, type) of a step input: kind is `parameter`, `artifact` or `artifacts` (a list)."""
    ref = value.ref
    if ref.kind == "collected":
        element = output_type_of(ref.source, ref.output)
        return ("artifacts", ANY) if element == ANY else ("parameter", list_of(element))
    if ref.kind == "task":
        produced = output_type_of(ref.source, ref.output)
        return ("artifact", ANY) if produced == ANY else ("parameter", produced)
    if ref.kind == "oneof":
        produced = output_type_of(ref.options[0].source, ref.options[0].output)
        return ("artifact", ANY) if produced == ANY else ("parameter", produced)
    if ref.kind == "final_status":
        return "status", "dict"
    return "parameter", value.type


@dataclass(frozen=True, slots=True)
class ComponentShape:
    """How a step's values map to component arguments and KFP output keys."""

    function: str
    parameters: dict[str, TypeName]  # variable -> declared type ("int", "list:int", ...)
    artifacts: dict[str, str]  # variable -> argument
    artifact_lists: dict[str, str]  # variable -> argument (collected artifacts)
    outputs: dict[str, str]  # artifact output variable -> argument (= KFP output key)
    typed_outputs: dict[str, TypeName]  # parameter output variable -> type
    metrics_argument: str = "metrics"
    statuses: tuple[str, ...] = ()  # arguments receiving the pipeline's final status (exit steps)
    arguments: dict[str, str] = field(default_factory=dict)  # every input variable -> its argument name
    fields: dict[str, str] = field(default_factory=dict)  # typed output variable -> NamedTuple field (2+ outputs)

    def output_key(self, variable: str) -> str:
        if variable in self.outputs:
            return self.outputs[variable]
        if len(self.typed_outputs) == 1:
            return SINGLE_OUTPUT_KEY
        return (self.fields or {}).get(variable, variable)


def component_shape(step: Step, function: str, output_type_of) -> ComponentShape:
    parameters, artifacts, artifact_lists, statuses, arguments = {}, {}, {}, [], {}
    taken: set[str] = set()
    for value in step.inputs:
        kind, type_name = input_type(value, output_type_of)
        argument = arguments[value.name] = input_argument(value.name, taken)
        if kind == "status":
            statuses.append(argument)
        elif kind == "parameter":
            parameters[value.name] = type_name
        elif kind == "artifact":
            artifacts[value.name] = argument
        else:
            artifact_lists[value.name] = argument
    outputs = {o.name: output_argument(o.name, taken) for o in step.outputs if o.type == ANY}
    typed: dict[str, TypeName] = {o.name: o.type for o in step.outputs if o.type != ANY}
    fields = {name: output_argument(name, taken) for name in typed} if len(typed) > 1 else {}
    metrics_argument = next(n for n in ("metrics", "step_metrics", "kale_like_metrics") if n not in taken)
    return ComponentShape(function, parameters, artifacts, artifact_lists, outputs, typed, metrics_argument,
                          tuple(statuses), arguments, fields)


def annotation(type_name: TypeName) -> str:
    """The Python annotation KFP understands for one of our parameter types.

    A list of known element type is `List[int]` etc.: KFP then types the items of a loop over it,
    and compares them as numbers in conditions (a plain `list` item is compared as a string).
    """
    if is_list(type_name) and inner(type_name) in SCALARS:
        return f"List[{inner(type_name)}]"
    if is_json(type_name):
        return "str"  # the value's JSON text; the step runtime decodes it
    return outer(type_name)


def step_argument(shape: ComponentShape) -> str:
    """The input a shared component receives the step's name in (clear of the step's own names)."""
    taken = set((shape.arguments or {}).values()) | set(shape.outputs.values()) | set((shape.fields or {}).values())
    return input_argument("step_name", taken | {shape.metrics_argument})


def runtime_parts(graph: StepGraph, step: Step, shape: ComponentShape) -> frozenset[str]:
    """The parts of the step runtime (`packed_runtime.PARTS`) this step can call."""
    parts = set()
    if shape.parameters or shape.statuses or shape.typed_outputs:
        parts.add("coerce")
    if shape.artifacts or shape.artifact_lists:
        parts.add("load")
    if any(name.startswith(("_kl_run_if", "_kl_empty_unless__")) for name in shape.parameters):
        parts.add("flags")  # a loop's filler iteration may tell it to stand still (lowering/empty_loops.py)
    if shape.outputs:
        parts.add("save")
    if step.metrics:
        parts.add("metrics")
    if any("kale_like" in block.code for block in step.prelude + step.code):
        parts.add("sdk")
    image = (step.settings.image or graph.settings.image).split("/")[-1]
    if not image.startswith("python:") or any(p.lower().startswith("opentelemetry") for p in step.packages):
        parts.add("span")  # its spans need the OpenTelemetry SDK, which a stock python image does not have
    return frozenset(parts)


def component_source(graph: StepGraph, step: Step, shape: ComponentShape, shared: Shared | None = None) -> str:
    """The `@dsl.component` function for `step`; with `shared`, one that does not name the step."""
    signature = [f"{name}: dsl.PipelineTaskFinalStatus" for name in shape.statuses]
    signature += [f"{shape.arguments[name]}: {annotation(t)}" for name, t in shape.parameters.items()]
    signature += [f"{argument}: Input[Dataset]" for argument in shape.artifacts.values()]
    signature += [f"{argument}: Input[List[Dataset]]" for argument in shape.artifact_lists.values()]
    if shared is not None:
        signature.append(f"{shared.argument}: str")
    signature += [f"{argument}: Output[Dataset]" for argument in shape.outputs.values()]
    if step.metrics:
        signature.append(f"{shape.metrics_argument}: Output[Metrics]")
    returns = ""
    if len(shape.typed_outputs) == 1:
        returns = f" -> {annotation(next(iter(shape.typed_outputs.values())))}"
    elif shape.typed_outputs:
        fields = ", ".join(f"({shape.fields[n]!r}, {annotation(t)})" for n, t in shape.typed_outputs.items())
        returns = f" -> NamedTuple('Outputs', [{fields}])"
    packages = sorted(set(step.packages) | set(ALWAYS_INSTALLED))
    image = step.settings.image or graph.settings.image
    decorator = f"@dsl.component(base_image={image!r}, packages_to_install={packages!r}"
    if graph.settings.pip_index_urls:
        decorator += f", pip_index_urls={list(graph.settings.pip_index_urls)!r}"
    decorator += ")"
    defaults = {p.name: p.default for p in graph.parameters}
    for sub in graph.subpipelines:
        defaults.update({p.name: p.default for p in sub.parameters})
    if shared is None:
        doc = f'    """Step {step.name!r} ({_origin(step)})."""'
    else:
        doc = f'    """Code of {shared.label!r} ({_origin(step)}), for every step that runs it."""'
    runtime = unpacking_lines(packed_runtime(runtime_parts(graph, step, shape)))
    body = [doc] + runtime + _call(graph, step, shape, defaults, shared)
    return f"{decorator}\ndef {shape.function}({', '.join(signature)}){returns}:\n" + "\n".join(body) + "\n"


def _origin(step: Step) -> str:
    cells = [str(b.location.cell_index + 1) for b in step.code if b.location.cell_index is not None]
    if cells:  # numbered from 1, as cell_name() does
        return "notebook cell" + ("s " if len(cells) > 1 else " ") + ", ".join(cells)
    return f"{Path(step.location.path).name}, line {step.location.line}"


def _dict_key_orders(step: Step, defaults: dict) -> dict[str, list[str]]:
    """Key order of the dict parameters a step reads, from their defaults."""
    orders = {}
    for value in step.inputs:
        default = defaults.get(value.ref.source) if value.ref.kind == "parameter" else None
        if isinstance(default, dict):
            orders[value.name] = [str(k) for k in default]
    return orders


def _lineage(graph: StepGraph, step: Step, shared: bool = False) -> dict[str, str]:
    """Metadata every output artifact carries: where its code came from (never parameter values).

    A shared component leaves out the step's name, which the runtime adds."""
    from kale_like import __version__

    # numbered from 1, as JupyterLab shows the cells (cell_index counts from 0 in the notebook's list)
    cells = [str(b.location.cell_index + 1) for b in step.code if b.location.cell_index is not None]
    where = f"{step.code[0].location.path.split('/')[-1]}:{step.code[0].location.line}"
    origin = {"notebook_cells": ",".join(cells)} if cells else {"function": f"{step.function} ({where})"
                                                                if step.function else where}
    named = {} if shared else {"step": step.name}
    return {**dict(graph.provenance), **origin, **named, "code_sha256": step.code_hash,
            "image": step.settings.image or graph.settings.image, "kale_like_version": __version__,
            "parameters": ",".join(i.name for i in step.inputs if i.ref.kind == "parameter")}


def _call(graph: StepGraph, step: Step, shape: ComponentShape, defaults: dict, shared: Shared | None) -> list[str]:
    prefix = "    return _kl._kl_run_step(" if shape.typed_outputs else "    _kl._kl_run_step("
    call = [prefix, f"        step={shared.argument if shared else repr(step.name)},"]
    if step.prelude:
        call.append("        prelude=" + _blocks(step.prelude, "prelude") + ",")
    call.append("        cells=" + _blocks(step.code, shared.label if shared else step.name) + ",")
    if shape.parameters or shape.statuses:
        plain = [f"{n!r}: {shape.arguments[n]}" for n in shape.parameters]
        status_of = {a: v for v, a in shape.arguments.items()}
        plain += [f"{status_of[n]!r}: {{'state': {RUN_STATES!r}.get({n}.state, {n}.state), 'error_code': "
                  f"{n}.error_code, 'error_message': "
                  f"{n}.error_message, 'task': {n}.pipeline_task_name}}" for n in shape.statuses]
        call.append("        values={" + ", ".join(plain) + "},")
        typed = {n: t for n, t in shape.parameters.items() if t != ANY}
        call.append(f"        types={typed!r},")
        orders = _dict_key_orders(step, defaults)
        if orders:
            call.append(f"        key_order={orders!r},")
    loaded = {**shape.artifacts, **shape.artifact_lists}
    if loaded:
        call.append("        inputs={" + ", ".join(f"{v!r}: {a}" for v, a in loaded.items()) + "},")
    if shape.outputs:
        call.append("        outputs={" + ", ".join(f"{v!r}: {a}" for v, a in shape.outputs.items()) + "},")
    lineage = _lineage(graph, step, shared is not None)
    call.append(f"        lineage={lineage!r},")
    if step.metrics:
        call.append(f"        metrics={list(step.metrics)!r},")
        call.append(f"        metrics_artifact={shape.metrics_argument},")
    if shape.typed_outputs:
        call.append(f"        result={list(shape.typed_outputs.items())!r},")
    call.append("    )")
    return call


def _blocks(blocks, what: str) -> str:
    lines = "".join(
        f"            ({_label(b.location, what)!r}, {python_string(_ending(b.code))}),\n" for b in blocks
    )
    return "[\n" + lines + "        ]"


def _label(location, what: str) -> str:
    if location.cell_index is not None:
        return f"{cell_name(location.cell_index)} ({what})"
    if location.line is not None:
        return f"{Path(location.path).name}:{location.line} ({what})"
    return what


def _ending(code: str) -> str:
    return code if code.endswith("\n") else code + "\n"
