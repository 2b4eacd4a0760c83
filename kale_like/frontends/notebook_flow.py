"""Control flow for tagged notebook steps: `foreach:ITEM:LIST`, `parallelism:N`, `when:NAME:OP:VALUE`.

A `foreach` step runs once per element of LIST (a pipeline parameter or a variable an earlier step
defines), with ITEM bound to the element; later steps that read its variables get lists (KFP
Collected). A `when` step runs only if NAME (a parameter or an earlier step's variable) compares as
given with VALUE (a Python literal or a pipeline parameter's name; without OP and VALUE, NAME's truth); no other step may read its
variables or run after it, because KFP cannot depend on a task that might not run.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import replace

from kale_like.errors import KaleLikeError, SourceLocation, did_you_mean
from kale_like.graph.conditions import ConditionError, normalize
from kale_like.graph.types import TypeName, element_of, is_list
from kale_like.graph.model import ANY, Branch, Condition, Input, Loop, Node, Output, Ref, Step, Test

FLOW_TAGS = ("foreach", "parallelism", "when")


def flow_reads(tags) -> tuple[set[str], set[str]]:
    """(names the flow tags read, names they provide) for one step's tags."""
    reads, provides = set(), set()
    for tag, _ in tags:
        if tag.kind == "foreach":
            reads.add(tag.get("items"))
            provides.add(tag.get("item"))
        elif tag.kind == "when":
            reads.add(tag.get("name"))
    return reads, provides


def apply_flow(steps: list[Step], tags_of: dict, code_reads: dict[str, set[str]], parameter_types: Mapping[str, TypeName],
               errors: list[KaleLikeError]) -> tuple[Node, ...]:
    """Wrap steps with flow tags into Loop / Condition nodes and retype what crosses them."""
    flows = {s.name: _flow_of(s, tags_of.get(s.name, ()), errors) for s in steps}
    typed: dict[tuple[str, str], TypeName] = {}
    loops: dict[str, tuple[str, Ref, TypeName]] = {}
    tests: dict[str, tuple[Test, SourceLocation]] = {}
    for step in steps:
        flow = flows[step.name]
        if flow.get("foreach"):
            item, items, where = flow["foreach"]
            loops[step.name] = (item,) + _loop_source(step, items, where, parameter_types, typed, errors)
        if flow.get("when"):
            tests[step.name] = _condition(step, flow["when"], parameter_types, typed, errors)
    body: list[Node] = []
    for step in steps:
        step = _rewire(step, loops, tests, errors)
        step = replace(step, outputs=tuple(Output(o.name, typed.get((step.name, o.name), o.type))
                                           for o in step.outputs))
        inputs = list(step.inputs)
        flow = flows[step.name]
        if step.name in loops:
            item, ref, item_type = loops[step.name]
            items_name = flow["foreach"][1]
            inputs = [i for i in inputs if i.name != items_name or items_name in code_reads[step.name]]
            inputs.append(Input(item, Ref("item", f"foreach-{step.name}"), item_type if item_type != ANY else "str"))
        if step.name in tests:
            when_name = flow["when"][0]
            inputs = [i for i in inputs if i.name != when_name or when_name in code_reads[step.name]]
        node: Node = replace(step, inputs=tuple(inputs))
        if step.name in tests:
            node = Condition(f"when-{step.name}", (Branch(tests[step.name][0], (node,)),), tests[step.name][1])
        if step.name in loops:
            _, ref, item_type = loops[step.name]
            node = Loop(f"foreach-{step.name}", ref, item_type, (node,), step.location, flow.get("parallelism"),
                        header=f"for {loops[step.name][0]} in {flow['foreach'][1]}")
        body.append(node)
    return tuple(body)


def _flow_of(step: Step, tags, errors: list) -> dict:
    flow: dict = {}
    for tag, where in tags:
        if tag.kind == "foreach":
            flow["foreach"] = (tag.get("item"), tag.get("items"), where)
        elif tag.kind == "parallelism":
            if int(tag.get("count")) > 2**31 - 1:
                errors.append(KaleLikeError(f"'{tag.raw}' is too large", where, "e.g. parallelism:8"))
                continue
            flow["parallelism"] = int(tag.get("count"))
            flow["parallelism_where"] = where
        elif tag.kind == "when":
            flow["when"] = (tag.get("name"), tag.get("op"), tag.get("value"), where)
    if "parallelism" in flow and "foreach" not in flow:
        errors.append(KaleLikeError("parallelism: needs a foreach: tag on the same step", flow["parallelism_where"],
                                    "add foreach:ITEM:LIST, or remove parallelism:"))
    return flow


def _loop_source(step: Step, items: str, where, parameter_types, typed, errors) -> tuple[Ref, TypeName]:
    source = next((i.ref for i in step.inputs if i.name == items), None)
    if source is None:
        errors.append(KaleLikeError(f"foreach: list '{items}' is not defined by an earlier step or parameter",
                                    where, "name a variable an earlier step assigns, or a pipeline parameter"))
        return Ref("constant", value=[]), ANY
    if source.kind == "parameter":
        kind = parameter_types.get(items, ANY)
        if not is_list(kind):
            errors.append(KaleLikeError(f"foreach: parameter '{items}' is a {kind}, not a list", where))
        return source, element_of(kind)
    typed[(source.source, source.output)] = "list"
    return source, ANY


def _condition(step: Step, when, parameter_types, typed, errors) -> tuple[Test, SourceLocation]:
    name, op, text, where = when
    source = next((i.ref for i in step.inputs if i.name == name), None)
    if source is None:
        errors.append(KaleLikeError(f"when: '{name}' is not defined by an earlier step or parameter", where))
        return Test("truth", (Ref("parameter", name),)), where
    if op is None:
        test, kind = Test("truth", (source,)), "bool"
    else:
        refused = len(errors)
        operand, kind = _operand(name, op, text, where, parameter_types, errors)
        if len(errors) > refused:
            return Test(op, (source, operand)), where
        test = Test(op, (source, operand))
    if source.kind == "task":
        typed[(source.source, source.output)] = kind
    known = {**{("parameter", p): t for p, t in parameter_types.items()}}
    try:
        normalize(test, lambda ref: known.get((ref.kind, ref.source)) if ref.kind == "parameter"
                  else type(ref.value).__name__ if ref.kind == "constant" else kind)
    except ConditionError as error:
        errors.append(KaleLikeError(str(error), where, "change the when: tag"))
    return test, where


def _rewire(step: Step, loops: dict, tests: dict, errors: list) -> Step:
    """Inputs from a foreach step become lists (Collected); from a when step, an error."""
    inputs = []
    for value in step.inputs:
        producer = value.ref.source if value.ref.kind == "task" else None
        if producer in tests and producer != step.name:
            errors.append(KaleLikeError(
                f"step '{step.name}' reads '{value.name}' from step '{producer}', which runs only when its "
                "when: condition holds", step.location,
                "read it inside a step with the same when: tag merged into that step, or drop the when: tag"))
        if producer is not None and producer in loops and producer != step.name:
            value = replace(value, ref=Ref("collected", producer, value.ref.output))
        inputs.append(value)
    for parent in step.after:
        if parent in tests:
            errors.append(KaleLikeError(f"step '{step.name}' has prev:{parent}, which runs only when its "
                                        "when: condition holds", step.location,
                                        "KFP cannot wait for a step that may not run; remove the prev: tag"))
    return replace(step, inputs=tuple(inputs))


_KIND_OF_LITERAL: dict[type, TypeName] = {bool: "bool", int: "float", float: "float", str: "str"}


def _operand(name: str, op: str, text: str, where: SourceLocation, parameter_types: Mapping[str, TypeName],
             errors: list[KaleLikeError]) -> tuple[Ref, TypeName]:
    """What `when:NAME:OP:VALUE` compares NAME with, and the type NAME's producer then gets.

    VALUE is a Python literal or the name of a pipeline parameter (compared at run time); any other
    text is refused rather than read as a string, which would compare with a constant nobody wrote."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    else:
        return Ref("constant", value=value), _KIND_OF_LITERAL.get(type(value), ANY)
    if text in parameter_types:
        kind = parameter_types[text]
        return Ref("parameter", text), "float" if kind == "int" else kind
    known = ", ".join(sorted(parameter_types)) or "none"
    guess = did_you_mean(text, parameter_types)
    errors.append(KaleLikeError(
        f"when: '{text}' in 'when:{name}:{op}:{text}' is neither a Python literal nor a pipeline parameter "
        f"(parameters: {known})", where,
        (f"did you mean when:{name}:{op}:{guess}? " if guess else "")
        + f"quote a string (when:{name}:{op}:'{text}'), write a number, or define '{text}' in the pipeline-parameters cell"))
    return Ref("constant", value=text), ANY
