"""The body of a `@pipeline` function -> steps, loops, conditions and nested pipeline calls.

Each supported statement maps to one KFP construct: a step call is a task, `for` over a list is a
ParallelFor, `.append(step(...))` (or a list comprehension of step calls) used after the loop is
Collected, `if/elif/else` is If/Elif/Else, a value assigned in every branch is OneOf, and a
`@pipeline` called inside a pipeline is a nested pipeline; a pure expression is folded or computed
by a generated step. Everything else is refused with its position and what to write instead: never
silently wrong IR. This module compiles statements and calls; loops, conditions and the values of
names and expressions are the classes `_BodyCompiler` builds on (pipeline_loops.py,
pipeline_conditions.py, pipeline_body_base.py).
"""

from __future__ import annotations

from dataclasses import replace

import libcst as cst

from kale_like.errors import KaleLikeError, SourceLocation
from kale_like.frontends.analysis import analyze
from kale_like.frontends.packages import distributions_for
from kale_like.frontends.pipeline_body_base import (
    CompiledPipeline, ProgramState, _Refused, _text,
)
from kale_like.frontends.pipeline_choices import choices_as_ifs
from kale_like.frontends.pipeline_conditions import ConditionCompiler
from kale_like.frontends.pipeline_filters import filtered_loops
from kale_like.frontends.pipeline_lazy_tests import lazy_tests
from kale_like.frontends.pipeline_loops import LoopCompiler
from kale_like.frontends.pipeline_returns import assigned_names, returns_as_one_value
from kale_like.frontends.pipeline_values import (
    Collector, Scope, Unknown, Value, literal, type_of_value,
)
from kale_like.frontends.python_module import Decorated
from kale_like.frontends.settings import step_settings_from
from kale_like.graph.model import ANY, CodeBlock, Input, Node, Output, Parameter, PipelineCall, Ref, Step, SubPipeline
from kale_like.graph.types import is_list, is_parameter_type, outer

_UNSUPPORTED = {
    cst.While: ("a while loop", "use `for x in items:` over a list (it becomes a parallel loop)"),
    cst.Try: ("try/except", "handle errors inside a step function"),
    cst.With: ("a with block", "put it inside a step function"),
    cst.Break: ("break", "filter the items before the loop, or inside a step"),
    cst.Continue: ("continue", "use an if inside the loop"),
    cst.Del: ("del", "remove the statement"),
    cst.Global: ("global", "pass values as step arguments"),
    cst.Nonlocal: ("nonlocal", "pass values as step arguments"),
    cst.Import: ("an import", "import at module level or inside a step function"),
    cst.ImportFrom: ("an import", "import at module level or inside a step function"),
    cst.FunctionDef: ("a nested function", "define steps with @step at module level"),
    cst.ClassDef: ("a class", "define classes at module level"),
    cst.Raise: ("raise", "raise inside a step function"),
    cst.Assert: ("assert", "check inside a step function"),
}


def compile_pipeline(state: ProgramState, decorated: Decorated) -> CompiledPipeline:
    """Compile one pipeline function (and, on the way, the pipelines it calls)."""
    if decorated.function in state.compiled:
        return state.compiled[decorated.function]
    state.compiling.append(decorated.function)
    errors_before = len(state.errors)
    parameters, refused = _parameters(state, decorated)
    compiler = _BodyCompiler(state, decorated, parameters)
    for name in refused:  # reported once: the body's uses of it say nothing more
        compiler.env.names[name] = Unknown(decorated.location.line or 0)
    statements = decorated.node.body.body
    if isinstance(decorated.node.body, cst.IndentedBlock):
        positions = state.module.positions
        callable_names = set(state.module.steps) | set(state.module.pipelines)
        statements = choices_as_ifs(decorated.node.body.body, callable_names, positions)
        statements = returns_as_one_value(filtered_loops(statements, callable_names, positions), positions)
        statements = lazy_tests(statements, callable_names, positions)
    body = compiler.block(statements, ())
    state.compiling.pop()
    name = str(decorated.settings.get("name") or decorated.function.replace("_", "-"))
    return_type = compiler.return_type
    if compiler.returns is not None and compiler.returns.kind == "task":
        # the body may have typed the result after the return was read (a loop over it makes it a list)
        return_type = state.output_types.get((compiler.returns.source, compiler.returns.output), return_type)
    result = CompiledPipeline(decorated.function, name, parameters, tuple(body), compiler.returns, return_type,
                              complete=len(state.errors) == errors_before)
    state.compiled[decorated.function] = result
    return result


def _parameters(state: ProgramState, decorated: Decorated) -> tuple[tuple[Parameter, ...], list[str]]:
    """The pipeline's parameters, and the names of those refused (each reported here)."""
    result = []
    refused = []
    for argument in decorated.arguments:
        where = decorated.location
        kind = argument.annotation or argument.optional_type \
            or (type_of_value(argument.default) if argument.has_default else None)
        if argument.annotation == "list" and argument.has_default and isinstance(argument.default, list):
            kind = type_of_value(argument.default) if is_list(type_of_value(argument.default)) else "list"
        if kind is None or kind == ANY:
            state.errors.append(KaleLikeError(
                f"pipeline parameter '{argument.name}' of '{decorated.function}' needs a type hint or a default",
                where, f"e.g. {argument.name}: int = 3"))
            refused.append(argument.name)
            continue
        default = argument.default
        if kind == "float" and type(default) is int:
            default = float(default)
        if isinstance(default, tuple):
            default = list(default)
        result.append(Parameter(argument.name, kind, default, where, required=not argument.has_default))
    return tuple(result), refused


class _BodyCompiler(LoopCompiler, ConditionCompiler):
    """Compiles one pipeline function's statements (loops and conditions in the classes it builds on)."""

    def block(self, statements, scope: Scope) -> list[Node]:
        nodes: list[Node] = []
        for index, statement in enumerate(statements):
            try:
                made = self.statement(statement, scope, last=index == len(statements) - 1)
            except _Refused:
                self._take_pending()
                for name in assigned_names(statement):  # reported once: later uses say nothing more
                    self.env.names[name] = Unknown(self.module.where(statement).line or 0)
                continue
            nodes += self._take_pending() + made  # steps that compute its expressions come first
        return nodes

    def statement(self, statement, scope: Scope, last: bool) -> list[Node]:
        if isinstance(statement, cst.SimpleStatementLine):
            nodes: list[Node] = []
            for small in statement.body:
                nodes += self.small(small, scope, last)
            return nodes
        if isinstance(statement, cst.For):
            return self.loop(statement, scope)
        if isinstance(statement, cst.If):
            return self.condition(statement, scope)
        return self.unsupported(statement)

    def unsupported(self, node: cst.CSTNode) -> list[Node]:
        what, hint = _UNSUPPORTED.get(type(node), (f"this statement ({type(node).__name__})",
                                                   "pipeline bodies call steps, loop with for and branch with if"))
        self.refuse(node, f"{what} is not supported in a pipeline body", hint)
        return []

    def small(self, small, scope: Scope, last: bool) -> list[Node]:
        if isinstance(small, cst.Pass):
            return []
        if isinstance(small, cst.Expr):
            if isinstance(small.value, (cst.SimpleString, cst.ConcatenatedString)):
                return []  # a docstring
            if isinstance(small.value, cst.Call):
                return self.call_statement(small.value, scope)
            self.refuse(small, "an expression that is not a step call does nothing in a pipeline body",
                        "call a step, or remove the line")
        if isinstance(small, cst.Assign):
            return self.assign(small, scope)
        if isinstance(small, cst.AugAssign):
            return self.augmented(small, scope)
        if isinstance(small, cst.AnnAssign) and small.value is not None:
            return self.assign(cst.Assign([cst.AssignTarget(small.target)], small.value), scope, small)
        if isinstance(small, cst.Return):
            return self.return_statement(small, scope, last)
        return self.unsupported(small)

    def return_statement(self, node: cst.Return, scope: Scope, last: bool) -> list[Node]:
        if scope or not last:
            self.refuse(node, "return must be the last statement of the pipeline, outside loops and ifs",
                        "collect values with .append() and return the list after the loop")
        if node.value is None:
            return []
        nodes: list[Node] = []
        # `return step(x)`, `return [step(x) for x in xs]`, `return f"{a}-{b}"`: computed, then returned
        value = self.value(node.value, scope, "result")
        if value.ref.kind == "collected" and self.state.output_types.get((value.ref.source, value.ref.output),
                                                                          ANY) == ANY:
            self.refuse(node, "a pipeline cannot return a collected list of untyped step results",
                        f"annotate the return type of step '{value.ref.source}' (e.g. -> float)")
        self.returns, self.return_type = value.ref, value.type
        return nodes

    def assign(self, node: cst.Assign, scope: Scope, origin: cst.CSTNode | None = None) -> list[Node]:
        origin = origin or node
        if len(node.targets) != 1:
            self.refuse(origin, "chained assignment is not supported in a pipeline body", "assign one name")
        target = node.targets[0].target
        if isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name) \
                and isinstance(self.env.names.get(target.value.value), Collector):
            return self.keyed_append(node, target, scope)
        names = self.target_names(target)
        value = node.value
        callee = self.callee(value) if isinstance(value, cst.Call) else None
        if isinstance(value, cst.Call) and callee is not None and not (callee.kind == "pipeline" and len(names) > 1):
            return self.call(value, scope, names)
        if len(names) != 1:  # (`x, y = inner()`: a nested pipeline's one value, unpacked by a generated step)
            return self.unpack(value, names, scope)
        name = names[0]
        if isinstance(value, (cst.List, cst.Dict)) and not value.elements:
            self.env.names[name] = Collector(scope, self.module.where(node).line or 0, keyed=isinstance(value, cst.Dict))
            return []
        if isinstance(value, cst.ListComp) and self._calls_step(value.elt):
            return self.comprehension(value, scope, name)
        ok, constant = literal(value)
        if ok:
            self.env.names[name] = Value(Ref("constant", value=constant), type_of_value(constant), scope)
            return []
        bound = self.value(value, scope, name)
        self.env.names[name] = bound if bound.ref.kind != "constant" else replace(bound, scope=scope)
        return []

    def augmented(self, node: cst.AugAssign, scope: Scope) -> list[Node]:
        """`n += 1` is `n = n + 1`; in a loop it would add up across iterations, which KFP runs apart."""
        written = _text(node).strip()
        if any(level[0] == "loop" for level in scope):
            self.refuse(node, f"'{written}' inside a loop adds up across its iterations, which KFP runs in parallel "
                              "and apart", "collect the values (values.append(x)) and combine them after the loop, "
                              "e.g. total = sum(values)")
        operator = getattr(cst, type(node.operator).__name__.removesuffix("Assign"))()
        value = cst.BinaryOperation(left=node.target, operator=operator, right=node.value)
        self.module.positions[value] = self.module.positions.get(node)
        return self.assign(cst.Assign([cst.AssignTarget(node.target)], value), scope, node)

    def unpack(self, value: cst.BaseExpression, names: list[str], scope: Scope) -> list[Node]:
        """`a, b = x, y` binds each name to its own value (all computed before any is bound, as in
        Python: `a, b = b, a` swaps); `lo, hi = bounds` is one generated step with an output per name
        (it raises as Python does when the count differs)."""
        elements = value.elements if isinstance(value, (cst.Tuple, cst.List)) else None
        if elements is not None and len(elements) == len(names) \
                and not any(isinstance(e, cst.StarredElement) for e in elements):
            values = [self.value(e.value, scope, name) for e, name in zip(elements, names)]
            for name, bound in zip(names, values):
                self.env.names[name] = bound if bound.ref.kind != "constant" else replace(bound, scope=scope)
            return []
        text, _, values_read = self._expression_parts(value, scope)
        outputs = tuple(Output(name, ANY) for name in names)
        first = self._expression_step(value, f"{', '.join(names)} = {text}\n", values_read, outputs, scope,
                                      "_".join(names))
        for name in names:
            self.env.names[name] = Value(Ref("task", first.ref.source, name), ANY, scope, first.line)
        return []

    def target_names(self, target) -> list[str]:
        if isinstance(target, cst.Name):
            return [target.value]
        if isinstance(target, (cst.Tuple, cst.List)):
            names = [e.value.value for e in target.elements if isinstance(e.value, cst.Name)]
            if len(names) == len(target.elements):
                return names
        self.refuse(target, "only plain names can be assigned in a pipeline body", "e.g. data = prepare()")
        return []

    def call_statement(self, call: cst.Call, scope: Scope) -> list[Node]:
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value == "append" and isinstance(func.value, cst.Name):
            return self.append(call, func.value, scope)
        if self.callee(call) is None:
            self.refuse(call, *self.not_a_step(_innermost_callee(func)))
        return self.call(call, scope, [])

    def call(self, call: cst.Call, scope: Scope, names: list[str]) -> list[Node]:
        target = self.callee(call)
        assert target is not None  # every caller checked that a step or pipeline is called
        arguments = self.bind_arguments(call, target, scope)
        if target.kind == "pipeline":
            return [self.pipeline_call(call, target, arguments, scope, names)]
        return [self.step_call(call, target, arguments, scope, names)]

    def bind_arguments(self, call: cst.Call, target: Decorated, scope: Scope) -> dict[str, Value]:
        declared = [a.name for a in target.arguments]
        bound: dict[str, Value] = {}
        for index, argument in enumerate(call.args):
            if argument.star:
                self.refuse(argument, "*args / **kwargs in a step call are not supported", "pass each argument")
            if argument.keyword is not None:
                key = argument.keyword.value
                if key not in declared:
                    self.refuse(argument, f"'{target.function}' has no parameter '{key}' "
                                          f"(called from pipeline '{self.decorated.function}')",
                                f"its parameters: {', '.join(declared) or 'none'}")
            else:
                if index >= len(declared):
                    count = len(declared)
                    self.refuse(argument, f"'{target.function}' takes {count} argument{'s' if count != 1 else ''} "
                                          f"(called from pipeline '{self.decorated.function}')",
                                f"its parameters: {', '.join(declared) or 'none'}")
                key = declared[index]
            if key in bound:
                self.refuse(argument, f"'{key}' is given twice", "give each argument once")
            annotation = next((a.annotation for a in target.arguments if a.name == key), None)
            bound[key] = self.value(argument.value, scope, key, annotation, owner=target.function)
        missing = [a.name for a in target.arguments if not a.has_default and a.name not in bound]
        if missing:
            self.refuse(call, f"'{target.function}' is called without {', '.join(missing)} "
                              f"(in pipeline '{self.decorated.function}')",
                        f"pass {', '.join(missing)}, e.g. {target.function}({missing[0]}=...)")
        return bound

    def step_call(self, call: cst.Call, target: Decorated, arguments: dict[str, Value], scope: Scope,
                  names: list[str]) -> Step:
        where = self.module.where(call)
        settings = target.settings
        name = self.state.unique(str(settings.get("name") or target.function))
        declared = {a.name: a for a in target.arguments}
        inputs = []
        for key, value in arguments.items():
            inputs.append(Input(key, value.ref, self.input_type(value, declared[key].annotation, call)))
        call_line = f"{target.function}(" + ", ".join(f"{k}={k}" for k in arguments) + ")"
        if names:
            call_line = f"{', '.join(names)} = {call_line}"
        outputs = []
        if len(names) == 1:
            returns = target.returns
            outputs = [Output(names[0], returns if returns is not None and is_parameter_type(returns) else ANY)]
        elif names:
            outputs = [Output(n) for n in names]
        facts = analyze(target.code)
        assert self.module.prelude is not None  # read_module sets it
        prelude, modules = self.module.prelude.blocks_for(set(facts.reads))
        packages = set(distributions_for(facts.modules | modules))
        step_settings = step_settings_from(settings, target.location, self.state.errors)
        packages.update(step_settings.extra_packages)
        step = Step(
            name=name,
            code=(CodeBlock(target.code, target.location), CodeBlock(call_line + "\n", where)),
            location=where,
            prelude=prelude,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            packages=tuple(sorted(packages)),
            settings=replace(step_settings, extra_packages=()),
            function=target.function,
        )
        for output in outputs:
            self.state.output_types[(name, output.name)] = output.type
            self.env.names[output.name] = Value(Ref("task", name, output.name), output.type, scope,
                                                where.line or 0)
        return step

    def pipeline_call(self, call: cst.Call, target: Decorated, arguments: dict[str, Value], scope: Scope,
                      names: list[str]) -> PipelineCall:
        where = self.module.where(call)
        if target.function in self.state.compiling:
            self.refuse(call, f"pipeline '{target.function}' calls itself (through '{self.decorated.function}')",
                        "pipelines cannot be recursive")
        compiled = compile_pipeline(self.state, target)
        types = {p.name: p.type for p in compiled.parameters}
        inputs: list[Input] = []
        for key, value in arguments.items():
            declared = types.get(key, ANY)
            if value.ref.kind == "constant" and declared == "float" and type(value.ref.value) is int:
                value = Value(Ref("constant", value=float(value.ref.value)), "float", value.scope)
            given = value.type if value.ref.kind in ("constant", "collected") else self._type_for_condition(value.ref)
            if declared != ANY and given != outer(declared) and outer(given) != declared:
                if not (is_list(given) and is_list(declared)):
                    self.refuse(call, f"pipeline '{target.function}' declares '{key}' as {declared} but is given "
                                      f"{_untyped_description(value.ref) if given == ANY else 'a ' + given}",
                                "KFP checks nested pipeline inputs strictly: annotate the step's return type, or "
                                "declare the parameter with the same type")
            inputs.append(Input(key, value.ref, self.input_type(value, declared, call)))
        name = self.state.unique(target.function)
        if len(names) > 1:
            self.refuse(call, "a nested pipeline returns one value", "assign it to one name")
        outputs: tuple[Output, ...] = ()
        if names:
            if compiled.returns is None and not compiled.complete:
                raise _Refused  # its own errors are reported; its missing result is one of them
            if compiled.returns is None:
                self.refuse(call, f"pipeline '{target.function}' returns nothing", "add a return statement to it")
            outputs = (Output("", compiled.return_type),)
            self.state.output_types[(name, "")] = compiled.return_type
            self.env.names[names[0]] = Value(Ref("task", name, ""), compiled.return_type, scope, where.line or 0)
        return PipelineCall(name, compiled.name, tuple(inputs), where, outputs)


def _innermost_callee(func: cst.BaseExpression) -> str:
    """The function a call statement runs first: `open` for `open(p).write(...)`, `os.makedirs` for itself."""
    inner = func
    while isinstance(inner, (cst.Attribute, cst.Call)):
        if isinstance(inner, cst.Call):
            return _innermost_callee(inner.func)
        inner = inner.value
    return _text(func).strip()


def _untyped_description(ref: Ref) -> str:
    return {"item": "a loop item of unknown type", "parameter": "a parameter of unknown type"}.get(
        ref.kind, "an untyped step result")


def subpipeline(compiled: CompiledPipeline) -> SubPipeline:
    return SubPipeline(compiled.name, compiled.parameters, compiled.body, compiled.returns, compiled.return_type)


__all__ = ["CompiledPipeline", "ProgramState", "compile_pipeline", "subpipeline", "SourceLocation"]
