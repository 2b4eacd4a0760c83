"""The body of a `@pipeline` function -> steps, loops, conditions and nested pipeline calls.

Each supported statement maps to one KFP construct: a step call is a task, `for` over a list is a
ParallelFor, `.append(step(...))` (or a list comprehension of step calls) used after the loop is
Collected, `if/elif/else` is If/Elif/Else, a value assigned in every branch is OneOf, and a
`@pipeline` called inside a pipeline is a nested pipeline. Everything else is refused with its
position and what to write instead: never silently wrong IR.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace
from typing import NoReturn

import libcst as cst

from kale_like.errors import KaleLikeError, SourceLocation
from kale_like.frontends import pipeline_expressions as expressions
from kale_like.frontends.analysis import analyze
from kale_like.frontends.packages import distributions_for
from kale_like.frontends.pipeline_values import (
    PRIMITIVES, Collector, Env, Partial, Scope, Unknown, Value, element_type, literal, type_of_value, visible,
)
from kale_like.frontends.pipeline_returns import assigned_names, returns_as_one_value
from kale_like.frontends.python_module import Decorated, PythonModule
from kale_like.frontends.settings import step_settings_from
from kale_like.graph.conditions import ConditionError, normalize
from kale_like.graph.model import (
    ANY, JSON, Branch, CodeBlock, Condition, Input, Loop, Node, Output, Parameter, PipelineCall, Ref, Step,
    SubPipeline, Test,
)

_COMPARE = {cst.Equal: "==", cst.NotEqual: "!=", cst.LessThan: "<", cst.LessThanEqual: "<=",
            cst.GreaterThan: ">", cst.GreaterThanEqual: ">="}
_UNSUPPORTED = {
    cst.While: ("a while loop", "use `for x in items:` over a list (it becomes a parallel loop)"),
    cst.Try: ("try/except", "handle errors inside a step function"),
    cst.With: ("a with block", "put it inside a step function"),
    cst.Break: ("break", "filter the items before the loop, or inside a step"),
    cst.Continue: ("continue", "use an if inside the loop"),
    cst.AugAssign: ("computation on step results", "compute it inside a step function"),
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


@dataclass
class CompiledPipeline:
    function: str
    name: str
    parameters: tuple[Parameter, ...]
    body: tuple[Node, ...]
    returns: Ref | None = None
    return_type: str = ANY
    complete: bool = True  # compiled without errors (a caller then reports nothing more about it)


@dataclass
class ProgramState:
    """Shared across every pipeline of the module: unique task names, output types, sub-pipelines."""

    module: PythonModule
    errors: list[KaleLikeError]
    taken: set[str] = field(default_factory=set)
    output_types: dict[tuple[str, str], str] = field(default_factory=dict)
    compiled: dict[str, CompiledPipeline] = field(default_factory=dict)
    compiling: list[str] = field(default_factory=list)
    counter: int = 0
    warnings: list[str] = field(default_factory=list)

    def unique(self, base: str) -> str:
        base = "".join(c if c.isalnum() else "_" for c in base.lower()).strip("_") or "step"
        candidate, number = base, 2
        while candidate in self.taken:
            candidate, number = f"{base}_{number}", number + 1
        self.taken.add(candidate)
        return candidate

    def next_id(self, kind: str) -> str:
        self.counter += 1
        return f"{kind}-{self.counter}"


class _Refused(Exception):
    """Stops compiling the current statement; the error is already recorded."""


class _NotNative(Exception):
    """A condition KFP cannot evaluate itself: a generated step evaluates it (see `_BodyCompiler.test`)."""


def compile_pipeline(state: ProgramState, decorated: Decorated) -> CompiledPipeline:
    """Compile one pipeline function (and, on the way, the pipelines it calls)."""
    if decorated.function in state.compiled:
        return state.compiled[decorated.function]
    state.compiling.append(decorated.function)
    errors_before = len(state.errors)
    parameters = _parameters(state, decorated)
    compiler = _BodyCompiler(state, decorated, parameters)
    statements = decorated.node.body.body
    if isinstance(decorated.node.body, cst.IndentedBlock):
        statements = returns_as_one_value(decorated.node.body.body, state.module.positions)
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


def _parameters(state: ProgramState, decorated: Decorated) -> tuple[Parameter, ...]:
    result = []
    for argument in decorated.arguments:
        where = decorated.location
        kind = argument.annotation or (type_of_value(argument.default) if argument.has_default else None)
        if argument.annotation and argument.has_default and argument.annotation.startswith("list") \
                and isinstance(argument.default, list) and ":" not in argument.annotation:
            kind = type_of_value(argument.default) if type_of_value(argument.default).startswith("list") else "list"
        if kind is None or kind == ANY:
            state.errors.append(KaleLikeError(
                f"pipeline parameter '{argument.name}' of '{decorated.function}' needs a type hint or a default",
                where, f"e.g. {argument.name}: int = 3"))
            continue
        default = argument.default
        if kind == "float" and type(default) is int:
            default = float(default)
        if isinstance(default, tuple):
            default = list(default)
        result.append(Parameter(argument.name, kind, default, where, required=not argument.has_default))
    return tuple(result)


class _BodyCompiler:
    """Compiles one pipeline function's statements."""

    def __init__(self, state: ProgramState, decorated: Decorated, parameters: tuple[Parameter, ...]):
        self.state = state
        self.module = state.module
        self.decorated = decorated
        self.env = Env({p.name: Value(Ref("parameter", p.name), p.type, ()) for p in parameters})
        self.returns: Ref | None = None
        self.return_type = ANY
        self.loop_types: dict[str, str] = {}
        self.loop_items: dict[str, Ref] = {}  # loop id -> what it iterates over

    # -- errors ---------------------------------------------------------------------------------

    def refuse(self, node: cst.CSTNode, message: str, hint: str = "") -> NoReturn:
        self.state.errors.append(KaleLikeError(message, self.module.where(node), hint))
        raise _Refused

    # -- statements -----------------------------------------------------------------------------

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
        names = self.target_names(target)
        value = node.value
        if isinstance(value, cst.Call) and self.callee(value) is not None:
            return self.call(value, scope, names)
        if len(names) != 1:
            self.refuse(origin, "only a step's result can be unpacked into several names",
                        "unpack inside a step, or return a tuple from a step")
        name = names[0]
        if isinstance(value, cst.List) and not value.elements:
            self.env.names[name] = Collector(scope, self.module.where(node).line or 0)
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
            self.refuse(call, f"'{_text(func)}' is not a @step or @pipeline function",
                        "only steps and pipelines can be called in a pipeline body; decorate it with @step")
        return self.call(call, scope, [])

    def _calls_step(self, node: cst.BaseExpression) -> bool:
        return isinstance(node, cst.Call) and self.callee(node) is not None

    def callee(self, call: cst.Call) -> Decorated | None:
        func = call.func
        name = func.value if isinstance(func, cst.Name) else None
        if name is None:
            return None
        return self.module.steps.get(name) or self.module.pipelines.get(name)

    # -- calls ----------------------------------------------------------------------------------

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
            returns = target.returns or ""
            outputs = [Output(names[0], returns if returns in PRIMITIVES + ("list", "dict")
                              or returns.startswith("list:") else ANY)]
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
            given = self._type_for_condition(value.ref) if value.ref.kind != "constant" else value.type
            if declared != ANY and given != declared.partition(":")[0] and given.partition(":")[0] != declared:
                if not (given.startswith("list") and declared.startswith("list")):
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

    def input_type(self, value: Value, annotation: str | None, node: cst.CSTNode) -> str:
        """The type a value has as a KFP input (parameters must have one)."""
        if value.ref.kind in ("task", "collected", "oneof"):
            return value.type
        if value.type == JSON:  # decoded by the step, then given the declared type
            known = annotation in PRIMITIVES + ("list", "dict") or (annotation or "").startswith("list:")
            return f"{JSON}:{annotation}" if known else JSON
        if annotation is not None and (annotation in PRIMITIVES + ("list", "dict") or annotation.startswith("list:")):
            if value.type not in (ANY, annotation) and not _compatible(value.type, annotation):
                self.refuse(node, f"a {value.type} is passed where a {annotation} is declared",
                            "make the types agree")
            # an int passed to a float parameter stays an int, as in Python (and as KFP requires)
            return value.type if value.type != ANY else annotation
        return value.type if value.type != ANY else "str"

    # -- values ---------------------------------------------------------------------------------

    def value(self, node: cst.BaseExpression, scope: Scope, name: str = "value",
              declared: str | None = None, owner: str = "") -> Value:
        """What an expression of the body stands for. A step call, or a list comprehension of step
        calls, becomes its task(s) (made before the statement that reads it); any other pure
        expression is folded now when it reads only constants, otherwise computed by a generated step
        whose result is named `name` (the step itself `<owner>_<name>` for an argument of step
        `owner`; `declared`: the type its reader declares, for a result whose type does not follow
        from the expression)."""
        ok, constant = literal(node)
        if ok:
            return Value(Ref("constant", value=constant), type_of_value(constant), scope)
        if isinstance(node, cst.Name):
            return self.lookup(node, scope)
        if self._calls_step(node):
            assert isinstance(node, cst.Call)
            return self._call_value(node, scope, name)
        if isinstance(node, cst.ListComp) and self._calls_step(node.elt):
            return self._comprehension_value(node, scope, name)
        return self.expression(node, scope, name, declared, step_name=f"{owner}_{name}" if owner else name)

    def _call_value(self, call: cst.Call, scope: Scope, name: str) -> Value:
        """A step (or nested pipeline) called where a value is needed: its result, the output named `name`."""
        temporary = f"_kl_call_{self.state.next_id('value')}"
        nodes = self.call(call, scope, [temporary])
        made = self.env.names.pop(temporary)
        assert isinstance(made, Value)  # call() bound the result to the name
        value = self._rename_output(nodes, made, name if name.isidentifier() else "value")
        self._pending_nodes.extend(nodes)
        return value

    def _comprehension_value(self, node: cst.ListComp, scope: Scope, name: str) -> Value:
        """`[step(x) for x in xs]` where a value is needed: the loop, and its collected results."""
        temporary = next(n for n in (name, *(f"{name}_{i}" for i in range(2, 1000))) if n not in self.env.names)
        self._pending_nodes.extend(self.comprehension(node, scope, temporary))
        collector = self.env.names.pop(temporary)
        assert isinstance(collector, Collector)  # comprehension() bound it
        return self.collected(node, temporary, collector, scope)

    # -- expressions ----------------------------------------------------------------------------

    def expression(self, node: cst.BaseExpression, scope: Scope, name: str = "value",
                   declared: str | None = None, as_bool: bool = False, step_name: str = "") -> Value:
        """A pure expression: its value when it reads only constants, else a generated step's result."""
        text, tree, values = self._expression_parts(node, scope)
        if as_bool:
            text, tree = f"bool({text})", expressions.parse(f"bool({text})")
        constants = {key: value.ref.value for key, value in values.items() if value.ref.kind == "constant"}
        if len(constants) == len(values) and expressions.foldable(tree, constants):
            ok, result = expressions.fold(text, constants)
            if ok and expressions.plain(result):
                return Value(Ref("constant", value=result), type_of_value(result), scope)
        types = {key: self._known_type(value) for key, value in values.items()}
        kind = expressions.infer_type(tree, types)
        if kind == ANY and declared is not None and (declared in PRIMITIVES + ("list", "dict")
                                                      or declared.startswith("list:")):
            kind = declared  # the step's result is given the type its reader declares (and converted to it)
        output = name if name.isidentifier() and name not in values else "value"
        return self._expression_step(node, f"{output} = {text}\n", values, (Output(output, kind),), scope,
                                     step_name or name)

    def _expression_parts(self, node: cst.BaseExpression, scope: Scope) -> tuple[str, ast.Expression, dict[str, Value]]:
        """The expression's text (step calls in it replaced by names bound to their results), its syntax
        tree, and the value of each name it reads."""
        made: dict[str, Value] = {}
        rewritten = node.visit(_Hoist(self, scope, made, node))
        assert isinstance(rewritten, cst.BaseExpression)
        text = _text(rewritten).strip()
        tree = expressions.parse(text)
        problem = expressions.impurity(tree)
        if problem is not None:
            self.refuse(node, problem.what, problem.hint)
        where = {n.value: n for n in expressions.names_in(node)}
        values: dict[str, Value] = {}
        for free in expressions.free_names(text):
            if free in made:
                values[free] = made[free]
                continue
            known = free in self.env.names or free in self.module.constants
            if not known and expressions.is_builtin(free):
                continue
            if not known and self._module_level(free):
                self.refuse(where.get(free, node), f"'{free}' is module-level code (an import or a function), "
                                                   "which a pipeline body cannot run",
                            "use it inside a step function, and pass the step what it needs")
            values[free] = self.lookup(where.get(free, cst.Name(free)), scope)
        return text, tree, values

    def _module_level(self, name: str) -> bool:
        prelude = self.module.prelude
        return prelude is not None and any(name in statement.defines for statement in prelude.statements)

    def _known_type(self, value: Value) -> str:
        if value.ref.kind == "task":
            return self.state.output_types.get((value.ref.source, value.ref.output), value.type)
        return value.type

    def _expression_step(self, node: cst.CSTNode, code: str, values: dict[str, Value], outputs: tuple[Output, ...],
                         scope: Scope, name: str) -> Value:
        """A generated step running `code` (plain Python) over `values`: constants are written into its
        code, the rest are its inputs. It is made before the statement that reads it."""
        where = self.module.where(node)
        written = {key: value for key, value in values.items()
                   if value.ref.kind == "constant" and expressions.writable(value.ref.value)}
        lines = "".join(f"{key} = {value.ref.value!r}\n" for key, value in written.items())
        inputs = tuple(Input(key, value.ref, self.input_type(value, None, node))
                       for key, value in values.items() if key not in written)
        step = Step(name=self.state.unique(name), code=(CodeBlock(lines + code, where),), location=where,
                    inputs=inputs, outputs=outputs, generated=True)
        for output in outputs:
            self.state.output_types[(step.name, output.name)] = output.type
        self._pending_nodes.append(step)
        first = outputs[0]
        return Value(Ref("task", step.name, first.name), first.type, scope, where.line or 0)

    def lookup(self, node: cst.Name, scope: Scope) -> Value:
        name = node.value
        bound = self.env.names.get(name)
        if bound is None:
            if name in self.module.constants:
                constant = self.module.constants[name]
                return Value(Ref("constant", value=constant), type_of_value(constant), ())
            self.refuse(node, f"name '{name}' is not defined in pipeline '{self.decorated.function}'",
                        "use a pipeline parameter, a module-level constant or a step's result")
        if isinstance(bound, Unknown):
            raise _Refused  # its assignment was refused, and reported
        if isinstance(bound, Partial):
            if bound.reason:
                self.refuse(node, f"'{name}' cannot be used after the if at line {bound.line}: {bound.reason}",
                            "use it inside the branches, or split the test into plain comparisons (if/elif/else)")
            self.refuse(node, f"'{name}' is assigned in only some branches of the if at line {bound.line}",
                        "assign it in every branch (with an else), or use it inside the branch")
        if isinstance(bound, Collector):
            return self.collected(node, name, bound, scope)
        if not visible(bound.scope, scope):
            if bound.scope and bound.scope[-1][0] == "loop":
                self.refuse(node, f"'{name}' is made inside a for loop (line {bound.line}) and used outside it",
                            "collect it: results = [] before the loop, results.append(...) inside it")
            self.refuse(node, f"'{name}' is made inside a branch of an if (line {bound.line}) and used outside it",
                        "assign it in every branch (with an else) to use it after the if")
        return bound

    def collected(self, node: cst.CSTNode, name: str, collector: Collector, scope: Scope) -> Value:
        if collector.appended is None:
            return Value(Ref("constant", value=[]), "list", collector.scope)
        if not visible(collector.scope, scope) or visible(collector.append_scope, scope):
            self.refuse(node, f"'{name}' is used where its items are still being appended",
                        "use the collected list after the loop")
        element = collector.appended
        element_type = self.state.output_types.get((element.ref.source, element.ref.output), element.type)
        if element_type == ANY and len(scope) > len(collector.scope):
            self.refuse(node, f"'{name}' collects untyped step results (artifacts); KFP cannot pass such a list "
                              "into a loop or branch", f"annotate the return type of step '{element.ref.source}' "
                              "(e.g. -> float) so the list travels as a parameter")
        kind = f"list:{element.type}" if element.type in PRIMITIVES else ("list" if element.type != ANY else ANY)
        ref = Ref("collected", element.ref.source, element.ref.output)
        return Value(ref, kind if kind != ANY else "list", collector.scope, collector.line)

    def append(self, call: cst.Call, owner: cst.Name, scope: Scope) -> list[Node]:
        collector = self.env.names.get(owner.value)
        if not isinstance(collector, Collector):
            self.refuse(call, f"'{owner.value}' is not a list created with {owner.value} = [] in this pipeline",
                        f"write {owner.value} = [] before the loop")
        if len(call.args) != 1:
            self.refuse(call, ".append() takes one value", f"e.g. {owner.value}.append(train(x))")
        inner = scope[len(collector.scope):]
        if not inner or any(kind != "loop" for kind, *_ in inner):
            self.refuse(call, f"'{owner.value}.append(...)' must be inside a for loop (and not inside an if)",
                        "KFP collects the results of a loop's iterations")
        if collector.appended is not None:
            self.refuse(call, f"'{owner.value}' is already appended to at line {collector.line}",
                        "append one step result per list")
        argument = call.args[0].value
        nodes: list[Node] = []
        if isinstance(argument, cst.Call) and self.callee(argument) is not None:
            temporary = f"_kl_{owner.value}_item"
            nodes = self.call(argument, scope, [temporary])
            made = self.env.names.pop(temporary)
            assert isinstance(made, Value)  # call() bound the step's result to the name
            value = self._rename_output(nodes, made, owner.value)
        else:
            value = self.value(argument, scope)
            if value.ref.kind != "task" or value.scope != scope:
                self.refuse(call, "only a step result made in this loop can be appended",
                            f"e.g. {owner.value}.append(train(x))")
        collector.appended = value
        collector.append_scope = scope
        collector.line = self.module.where(call).line or 0
        return nodes

    def _rename_output(self, nodes: list[Node], value: Value, name: str) -> Value:
        """Give an appended step's result a readable output name."""
        index = next(i for i, n in enumerate(nodes) if getattr(n, "name", None) == value.ref.source)
        node = nodes[index]
        if isinstance(node, Step):
            old = value.ref.output
            renamed = replace(
                node,
                outputs=tuple(replace(o, name=name) if o.name == old else o for o in node.outputs),
                code=node.code[:-1] + (replace(node.code[-1], code=node.code[-1].code.replace(old, name, 1)),),
            )
            nodes[index] = renamed
            self.state.output_types[(node.name, name)] = self.state.output_types.pop((node.name, old))
            return Value(Ref("task", node.name, name), value.type, value.scope, value.line)
        return value

    # -- loops ----------------------------------------------------------------------------------

    def loop(self, node: cst.For, scope: Scope) -> list[Node]:
        if node.orelse is not None:
            self.refuse(node.orelse, "for/else is not supported in a pipeline body", "remove the else")
        if node.asynchronous is not None:
            self.refuse(node, "async for is not supported in a pipeline body")
        loop_id = self.state.next_id("for")
        items, item_type, parallelism, binder = self.iterable(node.iter, node.target, scope, loop_id)
        self._register_loop(node.iter, scope, loop_id, items)
        inner: Scope = scope + (("loop", loop_id),)
        saved = dict(self.env.names)
        binder(inner)
        helpers = self._take_pending()
        body = self.block(node.body.body, inner)
        self._close_scope(saved, inner)
        return helpers + [Loop(loop_id, items, item_type, tuple(body), self.module.where(node), parallelism)]

    def _register_loop(self, node: cst.CSTNode, scope: Scope, loop_id: str, items: Ref) -> None:
        """kfp names a loop's item after the list it runs over: two nested loops over one list collide."""
        for level in scope:
            if level[0] == "loop" and items.kind in ("parameter", "task") and self.loop_items.get(level[1]) == items:
                self.refuse(node, "this loop runs over the same list as a loop it is nested in; KFP gives both loops' "
                                  "items the same name and cannot compile it",
                            "loop once over the pairs, e.g. from a step returning [[a, b] for a in xs for b in xs]")
        self.loop_items[loop_id] = items

    def comprehension(self, node: cst.ListComp, scope: Scope, name: str) -> list[Node]:
        if len(node.for_in.ifs) or node.for_in.inner_for_in is not None:
            self.refuse(node, "a comprehension with if or several for clauses is not supported",
                        "write the for loop out")
        if not (isinstance(node.elt, cst.Call) and self.callee(node.elt) is not None):
            self.refuse(node.elt, "a list comprehension in a pipeline body must call a step",
                        "e.g. scores = [train(s) for s in seeds]")
        loop_id = self.state.next_id("for")
        items, item_type, parallelism, binder = self.iterable(node.for_in.iter, node.for_in.target, scope, loop_id)
        self._register_loop(node.for_in.iter, scope, loop_id, items)
        inner: Scope = scope + (("loop", loop_id),)
        saved = dict(self.env.names)
        binder(inner)
        helpers = self._take_pending()
        collector = Collector(scope, self.module.where(node).line or 0)
        self.env.names[name] = collector
        temporary = f"_kl_{name}_item"
        body = self.call(node.elt, inner, [temporary])
        body = self._take_pending() + body  # what its arguments compute runs in each iteration
        value = self.env.names.pop(temporary)
        assert isinstance(value, Value)  # call() bound the step's result to the name
        collector.appended = self._rename_output(body, value, name)
        collector.append_scope = inner
        self._close_scope(saved, inner, keep=(name,))
        return helpers + [Loop(loop_id, items, item_type, tuple(body), self.module.where(node), parallelism)]

    def _take_pending(self) -> list[Node]:
        taken = list(self._pending_nodes)
        self._pending_nodes.clear()
        return taken

    def _close_scope(self, saved: dict, inner: Scope, keep: tuple[str, ...] = ()) -> None:
        """Names bound inside a loop stay known (to report misuse) but keep their inner scope."""
        for name, bound in list(self.env.names.items()):
            if name in saved and saved[name] is bound or name in keep:
                continue
            if isinstance(bound, Value) and bound.ref.kind == "item":
                if name in saved:
                    self.env.names[name] = saved[name]
                else:
                    del self.env.names[name]

    def iterable(self, node: cst.BaseExpression, target, scope: Scope, loop_id: str):
        parallelism = None
        if isinstance(node, cst.Call) and _name(node.func) == "parallel":
            node, parallelism = self.parallel_arguments(node)
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
                and node.func.attr.value in ("items", "keys", "values") and not node.args:
            return self.dict_iterable(node, target, scope, loop_id, node.func.attr.value, parallelism)
        if isinstance(target, (cst.Tuple, cst.List)) or not (isinstance(node, cst.Name) or self._calls_step(node)
                                                             or literal(node)[0]):
            return self.loop_source(node, target, scope, loop_id, parallelism)
        value = self.value(node, scope)
        if value.ref.kind == "constant":
            if isinstance(value.ref.value, dict):
                return self.dict_items(node, value, target, scope, loop_id, "keys", parallelism)
            if not isinstance(value.ref.value, (list, tuple)):
                self.refuse(node, f"cannot loop over a {type(value.ref.value).__name__}", "loop over a list")
            if not _static_items(list(value.ref.value)):
                return self.loop_source(node, target, scope, loop_id, parallelism)
            return self._static(node, list(value.ref.value), target, scope, loop_id, parallelism)
        if value.type == "dict":
            return self.dict_items(node, value, target, scope, loop_id, "keys", parallelism)
        if value.ref.kind in ("collected", "oneof"):
            self.refuse(node, "KFP cannot loop over a collected list", "loop over the original items instead")
        if value.type in PRIMITIVES:
            self.refuse(node, f"cannot loop over a {value.type}", "loop over a list")
        if value.ref.kind == "task" and value.type == ANY:
            if value.ref.output == "":  # a nested pipeline's result: its type is fixed by its return
                self.refuse(node, f"'{_text(node)}' is the untyped result of a nested pipeline, which KFP cannot "
                                  "loop over", "annotate the return type of the step that nested pipeline returns "
                                  "(e.g. -> list)")
            self._infer(value, "list")
            value = replace(value, type="list")
        name = self.single_target(target)
        item_type = element_type(value.type)
        return value.ref, item_type, parallelism, self._binder(name, Ref("item", loop_id), item_type)

    def loop_source(self, node: cst.BaseExpression, target, scope: Scope, loop_id: str, parallelism):
        """A loop over what an expression makes (`range(n)`, `enumerate(xs)`, `zip(a, b)`, `sorted(xs)`,
        a literal list of dicts, ...): a generated step lists the items; a loop unpacking its items
        (`for i, x in enumerate(xs)`) gets each item as named fields, JSON texts the steps decode."""
        names = self._loop_names(target)
        ok, constant = literal(node)
        if ok and isinstance(constant, (list, tuple)) and _static_items(list(constant)) and len(names) == 1:
            return self._static(node, list(constant), target, scope, loop_id, parallelism)
        label = "_".join(names) or "items"
        text, tree, values = self._expression_parts(node, scope)
        known = _known_items(text, tree, {key: value.ref.value for key, value in values.items()
                                          if value.ref.kind == "constant"}, len(values))
        if known is not None and _static_items(known) and len(names) == 1:
            return self._static(node, known, target, scope, loop_id, parallelism)  # e.g. range(3)
        if len(names) == 1:
            kind = expressions.infer_type(expressions.parse(f"list({text})"),
                                          {key: self._known_type(value) for key, value in values.items()})
            if kind.startswith("list:"):  # items of a known type: the driver hands them over as they are
                code, item_type = f"items = list({text})\n", element_type(kind)
            else:  # the driver would make text of them (see lowering/loop_items.py): JSON texts the steps decode
                code, kind, item_type = f"import json\nitems = [json.dumps(item) for item in {text}]\n", "list:str", JSON
            made = self._expression_step(node, code, values, (Output("items", kind),), scope, f"{label}_items")
            return made.ref, item_type, parallelism, self._binder(names[0], Ref("item", loop_id), item_type)
        # field names clear of kfp's own attributes of a loop item (`item.name` is the item's name)
        fields = ", ".join(f"'field_{name}': json.dumps({name})" for name in names)
        code = (f"import json\nitems = []\nfor {', '.join(names)} in {text}:\n"
                f"    items.append({{{fields}}})\n")
        made = self._expression_step(node, code, values, (Output("items", "list"),), scope, f"{label}_items")

        def bind(inner: Scope) -> None:
            for name in names:
                self.env.names[name] = Value(Ref("item", loop_id, f"field_{name}"), JSON, inner)

        return made.ref, "dict", parallelism, bind

    def _loop_names(self, target) -> list[str]:
        if isinstance(target, cst.Name):
            return [target.value]
        parts = [e.value for e in target.elements] if isinstance(target, (cst.Tuple, cst.List)) else []
        names = [part.value for part in parts if isinstance(part, cst.Name)]
        if parts and len(names) == len(parts):
            if len(set(names)) == len(names):
                return names
        self.refuse(target, "a loop here unpacks each item into plain names only",
                    "e.g. for i, x in enumerate(xs): (unpack deeper inside a step)")
        return []

    def parallel_arguments(self, call: cst.Call):
        items, parallelism = None, None
        for index, argument in enumerate(call.args):
            key = argument.keyword.value if argument.keyword else ("items" if index == 0 else "parallelism")
            if key == "items":
                items = argument.value
            elif key == "parallelism":
                ok, parallelism = literal(argument.value)
                if not ok or type(parallelism) is not int or parallelism < 1:
                    self.refuse(argument, "parallelism must be a positive int literal", "e.g. parallelism=4")
            else:
                self.refuse(argument, f"parallel() has no argument '{key}'", "parallel(items, parallelism=N)")
        if items is None:
            self.refuse(call, "parallel() needs the items to loop over", "parallel(items, parallelism=N)")
        return items, parallelism

    def single_target(self, target) -> str:
        if isinstance(target, cst.Name):
            return target.value
        self.refuse(target, "unpacking loop items works only with dict.items()",
                    "loop over one name, or over d.items() as `for key, value in d.items()`")
        return ""

    def _binder(self, name: str, ref: Ref, item_type: str, line: int = 0):
        def bind(scope: Scope) -> None:
            self.env.names[name] = Value(ref, item_type, scope, line)

        return bind

    def _static(self, node, items: list, target, scope: Scope, loop_id: str, parallelism):
        name = self.single_target(target)
        if not items:
            self.refuse(node, "the loop's list is empty, so KFP cannot build it", "give the loop at least one item")
        kinds = {type_of_value(i) for i in items}
        if len(kinds) > 1 and kinds != {"int", "float"}:
            self.refuse(node, "the loop's items have different types, which KFP cannot type",
                        "loop over items of one type")
        item_type = type_of_value(items).partition(":")[2] or ("dict" if kinds == {"dict"} else ANY)
        if kinds == {"dict"}:
            self.refuse(node, "looping over a literal list of dicts is not supported (KFP mistypes their fields)",
                        "loop over a pipeline parameter holding the list instead")
        if item_type == ANY:
            self.refuse(node, "loop items must be ints, floats, strings or bools", "loop over a list of those")
        if kinds == {"int", "float"}:
            items = [float(i) for i in items]
        return Ref("constant", value=items), item_type, parallelism, self._binder(name, Ref("item", loop_id),
                                                                                   item_type)

    def dict_iterable(self, node: cst.Call, target, scope, loop_id, method, parallelism):
        assert isinstance(node.func, cst.Attribute)  # iterable() checked: d.items(), d.keys() or d.values()
        owner = self.value(node.func.value, scope)
        if owner.type != "dict" and not (owner.ref.kind == "constant" and isinstance(owner.ref.value, dict)):
            if owner.ref.kind == "task" and owner.type == ANY:
                self._infer(owner, "dict")
                owner = replace(owner, type="dict")
            else:
                self.refuse(node, f".{method}() needs a dict", "loop over a dict parameter or a step's dict result")
        return self.dict_items(node, owner, target, scope, loop_id, method, parallelism)

    def dict_items(self, node, owner: Value, target, scope: Scope, loop_id: str, method: str, parallelism):
        """Loop over a dict: static keys/values when known; otherwise a small step lists them."""
        if owner.ref.kind == "constant" and method in ("keys", "values"):
            values = list(owner.ref.value.keys() if method == "keys" else owner.ref.value.values())
            return self._static(node, values, target, scope, loop_id, parallelism)
        names = [self.single_target(target)] if method != "items" else self._pair(target)
        helper = self._items_step(node, owner, method, scope)
        ref = Ref("task", helper.name, helper.outputs[0].name)
        if method == "items":
            key, value = names

            def bind(inner: Scope) -> None:
                self.env.names[key] = Value(Ref("item", loop_id, "entry_key"), "str", inner)
                self.env.names[value] = Value(Ref("item", loop_id, "entry_value"), JSON, inner)

            self._pending_nodes.append(helper)
            return ref, "dict", parallelism, bind
        self._pending_nodes.append(helper)
        return ref, "str" if method == "keys" else ANY, parallelism, self._binder(names[0], Ref("item", loop_id),
                                                                                  "str" if method == "keys" else ANY)

    def _pair(self, target) -> list[str]:
        if isinstance(target, (cst.Tuple, cst.List)) and len(target.elements) == 2:
            names = [e.value.value for e in target.elements if isinstance(e.value, cst.Name)]
            if len(names) == 2:
                return names
        self.refuse(target, "loop over .items() with two names", "for key, value in d.items():")
        return []

    def _items_step(self, node, owner: Value, method: str, scope: Scope) -> Step:
        name = self.state.unique(f"list_{method}")
        where = self.module.where(node)
        code = {
            # a value of unknown type travels as its JSON text (see kale_like/lowering/loop_items.py)
            "items": "import json\nitems = [{'entry_key': str(k), 'entry_value': json.dumps(v)} for k, v in "
                     "mapping.items()]\n",
            "keys": "items = [str(k) for k in mapping]\n",
            "values": "items = list(mapping.values())\n",
        }[method]
        kind = "list:str" if method == "keys" else "list"
        step = Step(name=name, code=(CodeBlock(code, where),), location=where,
                    inputs=(Input("mapping", owner.ref, "dict" if owner.ref.kind != "task" else owner.type),),
                    outputs=(Output("items", kind),), generated=True)
        self.state.output_types[(name, "items")] = kind
        return step

    @property
    def _pending_nodes(self) -> list[Node]:
        return self.__dict__.setdefault("_pending", [])

    def _infer(self, value: Value, kind: str) -> None:
        key = (value.ref.source, value.ref.output)
        self.state.output_types[key] = kind
        self.state.warnings.append(
            f"{self.module.path}:{value.line}: the result of step '{value.ref.source}' is used as a {kind}; "
            f"annotate its return type (-> {kind}) to make this explicit")

    # -- conditions -----------------------------------------------------------------------------

    def condition(self, node: cst.If, scope: Scope) -> list[Node]:
        condition_id = self.state.next_id("if")
        arms: list[tuple[cst.BaseExpression | None, cst.BaseSuite]] = []
        current: cst.If | cst.Else | None = node
        while current is not None:
            if isinstance(current, cst.If):
                arms.append((current.test, current.body))
                current = current.orelse
            else:
                arms.append((None, current.body))
                current = None
        saved = dict(self.env.names)
        branches, bound_per_branch = [], []
        helpers: list[Node] = []  # steps the tests need, run before the if
        for index, (test_node, body) in enumerate(arms):
            test = self.test(test_node, scope) if test_node is not None else None
            helpers += self._take_pending()
            inner: Scope = scope + (("branch", condition_id, str(index)),)
            before = dict(self.env.names)
            nodes = self.block(body.body, inner)
            made = {k: v for k, v in self.env.names.items() if before.get(k) is not v and isinstance(v, Value)}
            bound_per_branch.append(made)
            self.env.names = dict(before)
            branches.append(Branch(test, tuple(nodes)))
        self.env.names = saved
        shared = _assigned_in_every_branch(branches, bound_per_branch)
        if shared and not _simple_tests(branches):
            # KFP's OneOf needs plain comparisons: each test is made by a generated step, the branch tests its bool
            self._take_pending()
            branches = [replace(b, test=self._expression_test(test_node, scope)) if test_node is not None else b
                        for b, (test_node, _) in zip(branches, arms)]
            helpers = self._take_pending()
        branches = self._hand_over(node, branches, bound_per_branch, shared, condition_id, scope)
        self._merge_branches(node, branches, bound_per_branch, scope)
        return helpers + [Condition(condition_id, tuple(branches), self.module.where(node))]

    def _hand_over(self, node: cst.CSTNode, branches: list[Branch], bound_per_branch: list[dict[str, Value]],
                   shared: list[str], condition_id: str, scope: Scope) -> list[Branch]:
        """A name every branch assigns, where a branch gives it a constant, a parameter or a loop item
        (`mode = "fast"` / `mode = "safe"`): the branch ends with a generated step that hands the value
        on, so the value after the if is the output of whichever step ran (a OneOf)."""
        where = self.module.where(node)
        result = list(branches)
        for index, bound in enumerate(bound_per_branch):
            added: list[Node] = []
            inner: Scope = scope + (("branch", condition_id, str(index)),)
            for name in shared:
                value = bound[name]
                if value.ref.kind == "task" and value.scope[:len(inner)] == inner:
                    continue  # made in this branch (a value made before the if is handed on too)
                constant = value.ref.kind == "constant" and expressions.writable(value.ref.value)
                code = f"{name} = {value.ref.value!r}\n" if constant else f"{name} = value\n"
                inputs = () if constant else (Input("value", value.ref, self.input_type(value, None, node)),)
                step = Step(name=self.state.unique(f"{name}_value"), code=(CodeBlock(code, where),), location=where,
                            inputs=inputs, outputs=(Output(name, value.type),), generated=True)
                self.state.output_types[(step.name, name)] = value.type
                bound[name] = Value(Ref("task", step.name, name), value.type, inner, where.line or 0)
                added.append(step)
            result[index] = replace(result[index], body=result[index].body + tuple(added))
        return result

    def _merge_branches(self, node, branches, bound_per_branch, scope: Scope) -> None:
        has_else = branches[-1].test is None
        names = set().union(*(b.keys() for b in bound_per_branch)) if bound_per_branch else set()
        simple = _simple_tests(branches)
        line = self.module.where(node).line or 0
        for name in sorted(names):
            values = [b.get(name) for b in bound_per_branch]
            if not has_else or any(v is None for v in values):
                self.env.names[name] = Partial(line)
                continue
            if any(v.ref.kind != "task" for v in values):
                self.env.names[name] = Partial(line)
                continue
            if not simple:
                self.env.names[name] = Partial(line, "every branch assigns it, but the if tests use and/or/not/in, "
                                                     "and KFP's OneOf needs plain comparisons")
                continue
            types = {self.state.output_types.get((v.ref.source, v.ref.output), v.type) for v in values}
            if len(types) != 1:
                self.env.names[name] = Partial(line, "its branches give it values of different types "
                                                     f"({', '.join(sorted(types))}), which KFP's OneOf refuses")
                continue
            kind = types.pop()
            self.env.names[name] = Value(Ref("oneof", options=tuple(v.ref for v in values)), kind, scope, line)

    def test(self, node: cst.BaseExpression, scope: Scope) -> Test:
        """An if's test. One KFP's condition language states the way Python means it compiles to that
        condition; any other pure test (`metrics["auc"] > 0.9`, `len(xs) > 2`, a loop item compared) is
        computed by a generated step returning its bool, and the branch tests that bool."""
        if self._native_shape(node):
            mark = len(self._pending_nodes)
            try:
                test = self._exact_comparisons(node, self._test(node, scope))
                normalize(test, self._type_for_condition)
                return test
            except _NotNative:
                pass
            except ConditionError as error:
                if "never" in str(error) or "both sides" in str(error):  # valid Python, but surely a mistake
                    self.refuse(node, str(error), "compare with a value of the same type (or compute the decision "
                                                  "inside a step and return a bool)")
            del self._pending_nodes[mark:]
        return self._expression_test(node, scope)

    def _expression_test(self, node: cst.BaseExpression, scope: Scope) -> Test:
        """The test computed in Python by a generated step `test`; the branch tests its bool."""
        value = self.expression(node, scope, "test", as_bool=True)
        if value.ref.kind == "constant":
            self.refuse(node, f"this test is always {value.ref.value} (it reads only constants)",
                        "remove the if, or test a parameter or a step's result")
        return Test("==", (value.ref, Ref("constant", value=True)))

    def _native_shape(self, node: cst.BaseExpression) -> bool:
        """Names, literals and step calls joined by comparisons, and/or and not."""
        if isinstance(node, cst.BooleanOperation):
            return self._native_shape(node.left) and self._native_shape(node.right)
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Not):
            return self._native_shape(node.expression)
        if isinstance(node, cst.Comparison):
            return self._native_shape(node.left) and all(self._native_shape(t.comparator) for t in node.comparisons)
        return isinstance(node, cst.Name) or literal(node)[0] or self._calls_step(node)

    def _exact_comparisons(self, node: cst.BaseExpression, test: Test) -> Test:
        """Tests KFP cannot make the way Python does become a small generated step that makes them.

        KFP writes `double(int(a)) > double(b)` for an int compared with a float value (wrong beyond
        ±2**53), and cannot read an untyped step result (a serialised artifact) at all. The step
        receives the values, compares them in Python, and the branch tests its bool.
        """
        if test.tests:
            return replace(test, tests=tuple(self._exact_comparisons(node, t) for t in test.tests))
        if test.op == "truth":
            (ref,) = test.operands
            return self._comparison_step(node, "bool(value)", (("value", ref),)) if self._untyped(ref) else test
        if test.op not in _COMPARE.values():
            return test
        types = {self._type_for_condition(ref) for ref in test.operands if ref.kind != "constant"}
        if not (types == {"int", "float"} or any(self._untyped(ref) for ref in test.operands)):
            return test
        sides = [repr(ref.value) if ref.kind == "constant" else side for side, ref in zip(("left", "right"),
                                                                                            test.operands)]
        inputs = tuple((side, ref) for side, ref in zip(("left", "right"), test.operands) if ref.kind != "constant")
        return self._comparison_step(node, f"{sides[0]} {test.op} {sides[1]}", inputs)

    def _untyped(self, ref: Ref) -> bool:
        return ref.kind == "task" and self._type_for_condition(ref) == ANY

    def _comparison_step(self, node: cst.CSTNode, expression: str, inputs: tuple[tuple[str, Ref], ...]) -> Test:
        name = self.state.unique("compare")
        where = self.module.where(node)
        step = Step(name=name, code=(CodeBlock(f"result = {expression}\n", where),), location=where,
                    inputs=tuple(Input(side, ref, self._type_for_condition(ref)) for side, ref in inputs),
                    outputs=(Output("result", "bool"),), generated=True)
        self.state.output_types[(name, "result")] = "bool"
        self._pending_nodes.append(step)
        return Test("==", (Ref("task", name, "result"), Ref("constant", value=True)))

    def _type_for_condition(self, ref: Ref) -> str:
        if ref.kind == "constant":
            return type_of_value(ref.value)
        if ref.kind == "parameter":
            return next((v.type for v in self.env.names.values() if isinstance(v, Value) and v.ref == ref), ANY)
        if ref.kind == "task":
            return self.state.output_types.get((ref.source, ref.output), ANY)
        if ref.kind == "oneof":
            kinds = {self.state.output_types.get((o.source, o.output), ANY) for o in ref.options}
            return kinds.pop() if len(kinds) == 1 else ANY
        if ref.kind == "item":
            for bound in self.env.names.values():
                if isinstance(bound, Value) and bound.ref == ref:
                    return bound.type
        return ANY

    def _test(self, node: cst.BaseExpression, scope: Scope) -> Test:
        if isinstance(node, cst.BooleanOperation):
            op = "and" if isinstance(node.operator, cst.And) else "or"
            return Test(op, tests=(self._test(node.left, scope), self._test(node.right, scope)))
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Not):
            return Test("not", tests=(self._test(node.expression, scope),))
        if isinstance(node, cst.Comparison):
            parts, left = [], node.left
            for target in node.comparisons:
                parts.append(self._comparison(left, target, scope))
                left = target.comparator
            return parts[0] if len(parts) == 1 else Test("and", tests=tuple(parts))
        value = self.value(node, scope)
        self._condition_operand(value, node)
        return Test("truth", (value.ref,))

    def _comparison(self, left_node, target: cst.ComparisonTarget, scope: Scope) -> Test:
        operator = type(target.operator)
        left = self.value(left_node, scope)
        if operator in (cst.In, cst.NotIn):
            ok, options = literal(target.comparator)
            if not ok or not isinstance(options, (list, tuple, set)) or not options:
                raise _NotNative  # `x in allowed`, `key in config`: a generated step tests it
            self._condition_operand(left, left_node)
            if self._untyped(left.ref):
                keyword = "in" if operator is cst.In else "not in"
                listed = sorted(options, key=repr)
                return self._comparison_step(target, f"value {keyword} {listed!r}", (("value", left.ref),))
            options = _matchable(options, self._type_for_condition(left.ref))
            if not options:
                self.refuse(target, f"no value in the list can equal a {self._type_for_condition(left.ref)}, so "
                                    "this test never changes", "compare with values of the same type")
            equal = "==" if operator is cst.In else "!="
            tests = tuple(Test(equal, (left.ref, Ref("constant", value=o))) for o in sorted(options, key=repr))
            return tests[0] if len(tests) == 1 else Test("or" if operator is cst.In else "and", tests=tests)
        if operator not in _COMPARE:
            self.refuse(target, f"'{_text(target.operator).strip()}' is not supported in a condition",
                        "use ==, !=, <, <=, >, >=, in or not in")
        right = self.value(target.comparator, scope)
        for value, where in ((left, left_node), (right, target.comparator)):
            self._condition_operand(value, where)
        return Test(_COMPARE[operator], (left.ref, right.ref))

    def _condition_operand(self, value: Value, node) -> None:
        """Values KFP's conditions cannot read as Python does: a collected list, a value chosen by an
        earlier if (a OneOf), a loop item (the driver hands items to conditions as strings). A generated
        step then makes the test (see `test`)."""
        if value.ref.kind in ("collected", "oneof"):
            raise _NotNative
        if value.ref.kind == "item" and (value.ref.output or value.type not in PRIMITIVES):
            raise _NotNative


class _Hoist(cst.CSTTransformer):
    """Replaces each step call in an expression by a name bound (in `made`) to the call's result: the
    call becomes a task of its own, made before the step that computes the expression."""

    def __init__(self, compiler: _BodyCompiler, scope: Scope, made: dict[str, Value], root: cst.CSTNode):
        super().__init__()
        self.compiler, self.scope, self.made = compiler, scope, made
        self.replaced: dict[cst.CSTNode, str] = {}
        self.conditional = expressions.conditionally_evaluated(root)

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.ListComp) and self.compiler._calls_step(node.elt) and node not in self.conditional:
            # `sum([score(k) for k in ks])`: the loop of tasks, and its collected results
            target = self.compiler.callee(node.elt)  # type: ignore[arg-type]
            assert target is not None
            name = self._unique(f"{target.function}_results")
            self.made[name] = self.compiler._comprehension_value(node, self.scope, name)
            self.replaced[node] = name
            return False
        if isinstance(node, cst.Call) and self.compiler._calls_step(node):
            target = self.compiler.callee(node)
            assert target is not None
            if node in self.conditional:
                self.compiler.refuse(node, f"'{target.function}(...)' is called where Python may call it any number "
                                           "of times or not at all (in a comprehension's element or condition, a "
                                           "lambda, a branch of `x if c else y`, or after `and`/`or`)",
                                     "call it in a statement of its own (a for loop or an if), and use its result "
                                     "here")
            name = self._unique(f"{target.function}_result")
            self.made[name] = self.compiler._call_value(node, self.scope, name)
            self.replaced[node] = name
            return False
        return True

    def _unique(self, name: str) -> str:
        taken = set(self.made) | set(self.compiler.env.names)
        return next(n for n in (name, *(f"{name}_{i}" for i in range(2, 1000))) if n not in taken)

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode):
        if original_node in self.replaced:
            return cst.Name(self.replaced[original_node])
        return updated_node


def _untyped_description(ref: Ref) -> str:
    return {"item": "a loop item of unknown type", "parameter": "a parameter of unknown type"}.get(
        ref.kind, "an untyped step result")


def _known_items(text: str, tree: ast.Expression, constants: dict[str, object], reads: int) -> list | None:
    """The items of a loop source that reads only constants, when listing them now is quick."""
    if len(constants) != reads:
        return None
    body = tree.body
    if isinstance(body, ast.Call) and isinstance(body.func, ast.Name) and body.func.id == "range":
        ok, made = expressions.fold(text, constants)  # a range object: its length is known without listing it
        return list(made) if ok and isinstance(made, range) and len(made) <= 10_000 else None
    if not expressions.foldable(tree, constants):
        return None
    ok, made = expressions.fold(f"list({text})", constants)
    return made if ok and isinstance(made, list) else None


def _assigned_in_every_branch(branches: list[Branch], bound_per_branch: list[dict[str, Value]]) -> list[str]:
    """Names an if/elif/else chain with an else assigns in every branch (a OneOf after it)."""
    if not branches or branches[-1].test is not None:
        return []
    names = set.intersection(*(set(bound) for bound in bound_per_branch))
    return sorted(names)


def _simple_tests(branches: list[Branch]) -> bool:
    return all(b.test is None or b.test.op in _COMPARE.values() or b.test.op == "truth" for b in branches)


def _static_items(items: list) -> bool:
    """Items KFP can loop over as they are written: a non-empty list of ints, floats, strs or bools,
    all of one type (ints and floats mix as floats)."""
    kinds = {type_of_value(item) for item in items}
    return bool(items) and kinds <= set(PRIMITIVES) and len(kinds) == 1


def _matchable(options, kind: str) -> list:
    """The options of `x in [...]` that can equal an x of type `kind` (Python drops the others)."""
    numeric = kind in ("int", "float", "bool")
    return [o for o in options
            if (numeric and isinstance(o, (int, float)) and (kind != "int" or float(o).is_integer()))
            or (kind == "str" and isinstance(o, str)) or kind == ANY]


def _compatible(given: str, declared: str) -> bool:
    if declared == "float" and given == "int":
        return True
    return given.partition(":")[0] == declared.partition(":")[0]


def _name(node) -> str | None:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return node.attr.value
    return None


def _text(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node)


def subpipeline(compiled: CompiledPipeline) -> SubPipeline:
    return SubPipeline(compiled.name, compiled.parameters, compiled.body, compiled.returns, compiled.return_type)


__all__ = ["CompiledPipeline", "ProgramState", "compile_pipeline", "subpipeline", "SourceLocation"]
