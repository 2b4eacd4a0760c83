"""A Python file of `@step` / `@pipeline` functions -> `StepGraph`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kale_like.errors import KaleLikeError, SourceLocation, raise_collected
from kale_like.frontends.analysis import analyze
from kale_like.frontends.pipeline_function import ProgramState, compile_pipeline, subpipeline
from kale_like.frontends.python_module import read_module
from kale_like.frontends.settings import pipeline_name_from
from kale_like.graph.model import (
    Condition, Expression, Loop, Node, Output, PipelineCall, PipelineSettings, Step, StepGraph, SubPipeline,
)
from kale_like.graph.overrides import checked_service_account
from kale_like.kfp_server import ServerVersion


def python_to_graph(path: str | Path, pipeline: str | None = None, text: str | None = None,
                    locate=None) -> StepGraph:
    """Build the step graph of the pipeline function in a Python file (raises KaleLikeError).

    `text`/`locate`: the module's code and a position mapper, when it comes from notebook cells.
    """
    errors: list[KaleLikeError] = []
    module = read_module(path, errors, text, locate)
    raise_collected(errors)
    main = _main_pipeline(module, pipeline)
    state = ProgramState(module, errors)
    compiled = compile_pipeline(state, module.pipelines[main])
    raise_collected(errors)
    if not compiled.body:
        raise KaleLikeError(f"pipeline '{main}' calls no step", module.pipelines[main].location,
                            "call @step functions in its body")
    subs = tuple(
        _typed_sub(subpipeline(c), state.output_types)
        for name, c in state.compiled.items() if name != main
    )
    settings = module.pipelines[main].settings
    exit_step = _exit_step(module, settings.get("on_exit"), module.pipelines[main], state)
    graph = StepGraph(
        exit_step=exit_step,
        source=str(path),
        settings=PipelineSettings(
            name=str(settings.get("name") or pipeline_name_from(main)),
            description=str(settings.get("description") or ""),
            experiment=str(settings.get("experiment") or ""),
            service_account=checked_service_account(settings.get("service_account", ""),
                                                    "@pipeline(service_account=...)", module.pipelines[main].location),
            kfp_version=str(ServerVersion.parse(settings.get("kfp_version"), "@pipeline(kfp_version=...)",
                                                module.pipelines[main].location)),
        ),
        body=_typed(compiled.body, state.output_types),
        parameters=compiled.parameters,
        warnings=tuple(state.warnings),
        subpipelines=subs,
        returns=compiled.returns,
        return_type=compiled.return_type,  # already typed by what the body inferred (compile_pipeline)
    )
    return replace(graph, warnings=graph.warnings + _unused_statements(module, graph))


def _unused_statements(module, graph: StepGraph) -> tuple[str, ...]:
    """A warning for each module-level statement that runs in none of the pipeline's steps (a step
    carries only the imports, helpers and constants it uses, and the statements that change those)."""
    assert module.prelude is not None  # read_module sets it
    reads = [set(analyze(module.steps[step.function].code).reads) for step in graph.all_steps
             if step.function in module.steps]
    return tuple(f"{where.render()}: '{_shortened(line)}' runs in no step (a step carries only the module-level "
                 "imports, helpers and constants it uses); move it into the steps that need it"
                 for where, line in module.prelude.unused(reads))


def _shortened(line: str, most: int = 60) -> str:
    return line if len(line) <= most else line[:most - 3] + "..."


def _main_pipeline(module, requested: str | None) -> str:
    where = SourceLocation(module.path)
    names = sorted(module.pipelines)
    if requested is not None:
        if requested in module.pipelines:
            return requested
        by_name = [f for f, d in module.pipelines.items() if d.settings.get("name") == requested]
        if len(by_name) == 1:  # the pipeline's name=, as the KFP UI shows it
            return by_name[0]
        raise KaleLikeError(f"no @pipeline function '{requested}'", where, f"pipelines here: {', '.join(names)}")
    if not names:
        raise KaleLikeError("no @pipeline function in this file", where,
                            "decorate the function that calls your steps with @pipeline")
    called = _called_pipelines(module)
    roots = [n for n in names if n not in called]
    if len(roots) == 1:
        return roots[0]
    if not roots:
        first = module.pipelines[names[0]]
        raise KaleLikeError(f"the pipelines {', '.join(names)} call each other in a cycle", first.location,
                            "pipelines cannot be recursive: remove the call that closes the cycle")
    raise KaleLikeError(f"several pipelines could be the main one: {', '.join(roots or names)}", where,
                        "choose one with --pipeline NAME")


def _called_pipelines(module) -> set[str]:
    import libcst as cst

    called: set[str] = set()
    for decorated in module.pipelines.values():
        class Visitor(cst.CSTVisitor):
            def visit_Call(self, node: cst.Call, caller=decorated.function) -> None:
                name = node.func.value if isinstance(node.func, cst.Name) else None
                if name is not None and name in module.pipelines and name != caller:
                    called.add(name)

        decorated.node.body.visit(Visitor())
    return called


def _typed(body: tuple[Node, ...], types: dict) -> tuple[Node, ...]:
    """Apply output types inferred from use (a result looped over is a list) to the steps."""
    result = []
    for node in body:
        if isinstance(node, (Step, Expression)):
            outputs = tuple(Output(o.name, types.get((node.name, o.name), o.type)) for o in node.outputs)
            node = replace(node, outputs=outputs)
        elif isinstance(node, Loop):
            node = replace(node, body=_typed(node.body, types))
        elif isinstance(node, Condition):
            node = replace(node, branches=tuple(replace(b, body=_typed(b.body, types)) for b in node.branches))
        elif isinstance(node, PipelineCall):
            node = replace(node, outputs=tuple(Output(o.name, types.get((node.name, o.name), o.type))
                                               for o in node.outputs))
        result.append(node)
    return tuple(result)


def _typed_sub(sub: SubPipeline, types: dict) -> SubPipeline:
    return replace(sub, body=_typed(sub.body, types))


def _exit_step(module, name: str | None, owner, state: ProgramState) -> Step | None:
    """The `@pipeline(on_exit=fn)` step: called with the pipeline's final status as its one argument."""
    from kale_like.frontends.analysis import analyze
    from kale_like.frontends.packages import distributions_for
    from kale_like.graph.model import CodeBlock, Input, Ref

    if not name:
        return None
    target = module.steps.get(name)
    if target is None or len(target.arguments) != 1:
        raise KaleLikeError(f"on_exit={name} must name a @step function taking one argument (the status)",
                            owner.location, "e.g. @step def notify(status): print(status['state'])")
    argument = target.arguments[0].name
    facts = analyze(target.code)
    prelude, modules = module.prelude.blocks_for(set(facts.reads))
    return Step(
        name=state.unique(str(target.settings.get("name") or target.function)),
        code=(CodeBlock(target.code, target.location), CodeBlock(f"{target.function}({argument}={argument})\n",
                                                                 target.location)),
        location=target.location,
        prelude=prelude,
        inputs=(Input(argument, Ref("final_status"), "dict"),),
        packages=distributions_for(facts.modules | modules),
        function=target.function,
    )
