"""StepGraph -> the source of a readable KFP v2 DSL module.

The module is the single source of truth for the compiled pipeline: kale_like compiles the YAML by
importing exactly this file, and a user can run `python <module>.py` to get the same bytes. Each
step becomes a self-contained lightweight component (`components.py`); steps whose components
would be the same but for the step's name share one (`sharing.py`: one function, called under each
step's name); the pipeline functions are written by `pipeline_body.py`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kale_like.backends.kfp.components import (ComponentShape, Shared, component_shape, component_source,
                                               step_argument)
from kale_like.backends.kfp.naming import python_identifier
from kale_like.backends.kfp.pipeline_body import BodyWriter, _all_nodes, _output_types
from kale_like.graph.model import Condition, Loop, Step, StepGraph
from kale_like.lowering import lower


def generate_module(graph: StepGraph, yaml_name: str = "pipeline.yaml", pipeline_function: str = "pipeline") -> str:
    """The whole DSL module for `graph`, deterministic for the same graph."""
    graph = lower(graph)  # what the KFP backend needs to run the graph as the user's Python means it
    taken: set[str] = {pipeline_function}
    taken |= {p.name for p in graph.parameters} | {p.name for sub in graph.subpipelines for p in sub.parameters}
    steps = [node for node in _all_nodes(graph) if isinstance(node, Step)]
    steps += [graph.exit_step] if graph.exit_step is not None else []
    types = _output_types(graph)
    output_type_of = lambda task, output: types.get((task, output), "any")  # noqa: E731
    taken |= {"_kl_named", "_kl_share_components", "_kl_pipeline", "_kl_subpipeline", "_kl_pass_inputs",
              "_kl_own_group_names"}
    shapes = {s.name: component_shape(s, python_identifier(s.name, taken), output_type_of) for s in steps}
    functions = {sub.name: python_identifier(sub.name.replace("-", "_"), taken) for sub in graph.subpipelines}
    uses_kubernetes = any(s.settings.secrets or s.settings.labels or s.settings.annotations or s.settings.node_selector
                          or s.settings.tolerations or s.settings.timeout for s in steps)
    parts = [_header(graph, uses_kubernetes)]
    components, sharing = _components(graph, steps, shapes, taken)
    parts += components
    # the kfp defects ir_repair.py repairs need loops, or groups in nested pipelines
    groups = [node for node in _all_nodes(graph) if isinstance(node, (Loop, Condition))]
    needs_fixes = any(isinstance(node, Loop) for node in groups) or bool(groups and graph.subpipelines)
    if needs_fixes:
        parts.append(embedded_source("ir_repair.py"))
    writer = BodyWriter(graph, shapes, functions, "_kl_subpipeline" if needs_fixes else "dsl.pipeline")
    for sub in graph.subpipelines:
        parts.append(
            writer.pipeline_function(sub.name, functions[sub.name], "", sub.parameters, sub.body, sub.returns,
                                     sub.return_type)
        )
    writer.decorator = "_kl_pipeline" if needs_fixes else "dsl.pipeline"
    parts.append(
        writer.pipeline_function(graph.settings.name, pipeline_function, graph.settings.description,
                                 graph.parameters, graph.body, graph.returns, graph.return_type)
    )
    if sharing:
        parts.append(f"_kl_share_components({pipeline_function})\n")
    parts.append(embedded_source("yaml_writer.py"))
    parts.append(
        'if __name__ == "__main__":\n'
        f"    _kl_yaml({pipeline_function}, os.path.join(os.path.dirname(os.path.abspath(__file__)), {yaml_name!r}))\n"
    )
    return "\n\n".join(parts)


def _components(graph: StepGraph, steps: list[Step], shapes: dict[str, ComponentShape],
                taken: set[str]) -> tuple[list[str], bool]:
    """The component functions, and whether some are shared.

    Steps are grouped by the text their component has when the step's name is a task input; a
    group of one keeps the plain form (the name written in), a larger group gets one function
    named after the steps' function, called under each step's name."""
    groups: dict[str, list[Step]] = {}
    for step in steps:
        shape = shapes[step.name]
        shared = Shared(step_argument(shape), step.function or step.name)
        groups.setdefault(component_source(graph, step, replace(shape, function="_kl_"), shared), []).append(step)
    parts: list[str] = []
    aliases: list[str] = []
    for members in groups.values():
        first = members[0]
        if len(members) == 1:
            parts.append(component_source(graph, first, shapes[first.name]))
            continue
        shape = shapes[first.name]
        shared = Shared(step_argument(shape), first.function or first.name)
        function = python_identifier(shared.label, taken)
        parts.append(component_source(graph, first, replace(shape, function=function), shared))
        aliases += [f"{shapes[s.name].function} = _kl_named({function}, {shapes[s.name].function!r}, "
                    f"{shared.argument}={s.name!r})" for s in members]
    if not aliases:
        return parts, False
    parts.append(embedded_source("sharing.py"))
    parts.append("# one task per step: each calls its shared component under the step's name\n" + "\n".join(aliases)
                 + "\n")
    return parts, True


def embedded_source(file_name: str) -> str:
    """The self-contained part of a module of this package, as embedded in the generated module."""
    text = (Path(__file__).parent / file_name).read_text(encoding="utf-8")
    return text.split("# --- embedded below: keep self-contained ---\n", 1)[1].strip("\n") + "\n"


def _header(graph: StepGraph, uses_kubernetes: bool) -> str:
    lines = [
        f'"""KFP v2 pipeline {graph.settings.name!r}, generated by kale_like from {Path(graph.source).name}.',
        "",
        "Edit the source, not this file. `python <this file>` compiles it to the YAML beside it.",
        '"""',
        "",
        "import os",
        "from typing import List, NamedTuple",
        "",
        "from kfp import dsl",
    ]
    if uses_kubernetes:
        lines.append("from kfp import kubernetes")
    lines.append("from kfp.dsl import Dataset, Input, Metrics, Output")
    return "\n".join(lines) + "\n"
