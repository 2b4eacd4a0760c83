"""What a `@pipeline` body's names and expressions stand for while it is compiled.

`BodyBase` holds the state every part of the body compiler shares — the names bound so far, the
errors, the steps an expression needs made before the statement that reads it — and turns an
expression into a `Value`: a literal, a name, a step call (a task of its own), or any pure
expression (folded now, or computed by a generated step; `pipeline_expressions.py` looks at the
expression itself). Statements live in `pipeline_function.py`, loops in `pipeline_loops.py`,
conditions in `pipeline_conditions.py`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace
from collections.abc import Sequence
from typing import NoReturn

import libcst as cst

from kale_like.errors import KaleLikeError
from kale_like.frontends import pipeline_expressions as expressions
from kale_like.frontends.pipeline_values import (
    Collector, Env, Partial, Scope, Unknown, Value, literal, type_of_value, visible,
)
from kale_like.frontends.python_module import Decorated, PythonModule
from kale_like.graph.conditions import operand_name, python_text
from kale_like.graph.types import TypeName, is_parameter_type, list_of, outer
from kale_like.graph.model import (
    ANY, Comparison, Expression, Input, Node, Output, Parameter, Ref, Step, TakenNames, Test, unique_name,
)

_COMPARE: dict[type[cst.BaseCompOp], Comparison] = {cst.Equal: "==", cst.NotEqual: "!=", cst.LessThan: "<", cst.LessThanEqual: "<=",
            cst.GreaterThan: ">", cst.GreaterThanEqual: ">="}

# builtins a pipeline body may not call, with what they do
_EFFECTS = {
    "print": "prints", "open": "opens a file", "input": "waits for input", "exec": "runs code",
    "eval": "runs code", "setattr": "changes an object", "delattr": "changes an object", "exit": "ends the process",
    "quit": "ends the process", "breakpoint": "stops in the debugger",
}


@dataclass
class CompiledPipeline:
    function: str
    name: str
    parameters: tuple[Parameter, ...]
    body: tuple[Node, ...]
    returns: Ref | None = None
    return_type: TypeName = ANY
    complete: bool = True  # compiled without errors (a caller then reports nothing more about it)


@dataclass
class ProgramState:
    """Shared across every pipeline of the module: unique task names, output types, sub-pipelines."""

    module: PythonModule
    errors: list[KaleLikeError]
    taken: set[str] = field(default_factory=TakenNames)
    output_types: dict[tuple[str, str], TypeName] = field(default_factory=dict)
    compiled: dict[str, CompiledPipeline] = field(default_factory=dict)
    compiling: list[str] = field(default_factory=list)
    counter: int = 0
    warnings: list[str] = field(default_factory=list)

    def unique(self, base: str) -> str:
        return unique_name("".join(c if c.isalnum() else "_" for c in base.lower()).strip("_") or "step", self.taken)

    def next_id(self, kind: str) -> str:
        self.counter += 1
        return f"{kind}-{self.counter}"


class _Refused(Exception):
    """Stops compiling the current statement; the error is already recorded."""


class _NotNative(Exception):
    """A condition KFP cannot evaluate itself: a generated step evaluates it (see `_BodyCompiler.test`)."""



class BodyBase:
    """The state and the value rules shared by the parts of the body compiler."""

    def __init__(self, state: ProgramState, decorated: Decorated, parameters: tuple[Parameter, ...]):
        self.state = state
        self.module = state.module
        self.decorated = decorated
        self.env = Env({p.name: Value(Ref("parameter", p.name), p.type, ()) for p in parameters})
        self.returns: Ref | None = None
        self.return_type: TypeName = ANY
        self.loop_fields: dict[str, tuple[Output, ...]] = {}  # loop id -> the fields of its record items
        self.built_lists: set[str] = set()  # lists filled with .append() outside loops (`xs = xs + [v]`)

    def refuse(self, node: cst.CSTNode, message: str, hint: str = "") -> NoReturn:
        self.state.errors.append(KaleLikeError(message, self.module.where(node), hint))
        raise _Refused

    def _calls_step(self, node: cst.BaseExpression) -> bool:
        return isinstance(node, cst.Call) and self.callee(node) is not None

    def callee(self, call: cst.Call) -> Decorated | None:
        func = call.func
        name = func.value if isinstance(func, cst.Name) else None
        if name is None:
            return None
        return self.module.steps.get(name) or self.module.pipelines.get(name)

    def call(self, call: cst.Call, scope: Scope, names: list[str]) -> list[Node]:
        """The task(s) of a step or nested pipeline call, its result bound to `names` (pipeline_function.py)."""
        raise NotImplementedError

    def comprehension(self, node: cst.ListComp, scope: Scope, name: str) -> list[Node]:
        """The loop of `[step(x) for x in xs]`, collected into `name` (pipeline_loops.py)."""
        raise NotImplementedError

    def block(self, statements: Sequence[cst.BaseStatement | cst.BaseSmallStatement], scope: Scope) -> list[Node]:
        """The nodes of a block of statements (pipeline_function.py)."""
        raise NotImplementedError

    def assign(self, node: cst.Assign, scope: Scope, origin: cst.CSTNode | None = None) -> list[Node]:
        """The nodes of `name = value`, the name bound to the value (pipeline_function.py)."""
        raise NotImplementedError

    def input_type(self, value: Value, annotation: TypeName | None, node: cst.CSTNode) -> TypeName:
        """The type a value has as a KFP input (parameters must have one)."""
        if value.ref.kind in ("task", "collected", "oneof"):
            return value.type
        if annotation is not None and is_parameter_type(annotation):
            if value.type not in (ANY, annotation) and not _compatible(value.type, annotation):
                self.refuse(node, f"a {value.type} is passed where a {annotation} is declared",
                            "make the types agree")
            # an int passed to a float parameter stays an int, as in Python (and as KFP requires)
            return value.type if value.type != ANY else annotation
        return value.type if value.type != ANY else "str"

    def value(self, node: cst.BaseExpression, scope: Scope, name: str = "value",
              declared: TypeName | None = None, owner: str = "") -> Value:
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
        temporary = unique_name(name, set(self.env.names))
        self._pending_nodes.extend(self.comprehension(node, scope, temporary))
        collector = self.env.names.pop(temporary)
        assert isinstance(collector, Collector)  # comprehension() bound it
        return self.collected(node, temporary, collector, scope)

    def expression(self, node: cst.BaseExpression, scope: Scope, name: str = "value",
                   declared: TypeName | None = None, as_bool: bool = False, step_name: str = "",
                   unless: tuple[Test, ...] = ()) -> Value:
        """A pure expression: its value when it reads only constants, else a generated step's result
        (`unless`: tests that, when one holds, make it False without evaluating it: an elif's)."""
        text, tree, values = self._expression_parts(node, scope)
        if as_bool:
            text, tree = f"bool({text})", expressions.parse(f"bool({text})")
        constants = {key: value.ref.value for key, value in values.items() if value.ref.kind == "constant"}
        if len(constants) == len(values) and expressions.foldable(tree, constants):
            ok, result = expressions.fold(text, constants)
            if ok and expressions.plain(result):
                return Value(Ref("constant", value=result), type_of_value(result), scope)
        if unless:
            reserved = set(expressions.free_names(text))
            guards = [f"not ({python_text(test, lambda ref: self._operand(ref, values, reserved, scope))})"
                      for test in unless]
            text = " and ".join(guards + [text])
            tree = expressions.parse(text)
        types = {key: self._known_type(value) for key, value in values.items()}
        kind = "bool" if as_bool else expressions.infer_type(tree, types)
        if kind == ANY and declared is not None and is_parameter_type(declared):
            kind = declared  # the step's result is given the type its reader declares (and converted to it)
        output = name if name.isidentifier() and name not in values else "value"
        return self._expression_step(node, f"{output} = {text}\n", values, (Output(output, kind),), scope,
                                     step_name or name)

    def _operand(self, ref: Ref, values: dict[str, Value], reserved: set[str], scope: Scope) -> str:
        """How an earlier test's operand is written in an expression reading `values`: a literal, or
        the name it is bound to (added to `values`)."""
        if ref.kind == "constant" and expressions.plain(ref.value) and repr(ref.value).isprintable():
            return repr(ref.value)
        for key, value in values.items():
            if value.ref == ref:
                return key
        key = unique_name(operand_name(ref), reserved | set(values))
        kind = self._type_for_condition(ref)
        if ref.kind == "collected":
            kind = list_of(self.state.output_types.get((ref.source, ref.output), ANY))
        values[key] = Value(ref, kind, scope)
        return key

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
            self.refuse(node, *(self.not_a_step(problem.callee) if problem.callee else (problem.what, problem.hint)))
        where = expressions.first_uses(node)
        values: dict[str, Value] = {}
        for free in expressions.free_names(text):
            if free in made:
                values[free] = made[free]
                continue
            known = free in self.env.names or free in self.module.constants
            if not known and expressions.is_builtin(free):
                continue
            if not known and free in self.module.changed:
                self._changed_constant(where.get(free, node), free)
            if not known and self._module_level(free):
                self.refuse(where.get(free, node), f"'{free}' is module-level code (an import or a function), "
                                                   "which a pipeline body cannot run",
                            "use it inside a step function, and pass the step what it needs")
            values[free] = self.lookup(where.get(free, cst.Name(free)), scope)
        return text, tree, values

    def not_a_step(self, callee: str) -> tuple[str, str]:
        """Why `callee(...)` cannot be called in a pipeline body, and what to write instead, after what
        `callee` is: a builtin with an effect, something imported, a plain function of the file."""
        root = callee.split(".")[0].split("(")[0]
        if callee in _EFFECTS:
            return (f"'{callee}(...)' {_EFFECTS[callee]}; a pipeline body only wires steps together and does "
                    "nothing itself", "do it inside a step function")
        prelude = self.module.prelude
        statement = next((s for s in prelude.statements if root in s.defines), None) if prelude else None
        if statement is not None and statement.modules:
            source = ", ".join(sorted(statement.modules))
            return (f"'{callee}(...)' calls code imported from {source}; a pipeline body calls only the @step and "
                    "@pipeline functions defined in its own file",
                    "call it inside a step function (a step written in another module must be defined in this "
                    "file: kale_like reads each step's source from the pipeline's file)")
        if statement is not None:
            return (f"'{callee}' is a plain function, not a @step or @pipeline",
                    f"decorate {root} with @step to run it as a step, or call it inside a step function")
        return (f"'{callee}(...)' cannot run in a pipeline body, which compiles only pure expressions: builtins "
                "such as len, str, sorted and zip, and the methods of str, dict and list that change nothing",
                "call it inside a step function")

    def _changed_constant(self, node: cst.CSTNode, name: str) -> NoReturn:
        line = self.module.changed[name]
        self.refuse(node, f"'{name}' is given a value at module level (line {line}) that kale_like cannot work out "
                          "without running the module, so the pipeline body cannot read it",
                    f"give {name} its value in one assignment of literals and other constants (e.g. "
                    f"{name} = [1, 2, 3, 4]), or make it a pipeline parameter")

    def _module_level(self, name: str) -> bool:
        prelude = self.module.prelude
        return prelude is not None and any(name in statement.defines for statement in prelude.statements)

    def _known_type(self, value: Value) -> TypeName:
        if value.ref.kind == "task":
            return self.state.output_types.get((value.ref.source, value.ref.output), value.type)
        return value.type

    def _expression_step(self, node: cst.CSTNode, code: str, values: dict[str, Value], outputs: tuple[Output, ...],
                         scope: Scope, name: str) -> Value:
        """An `Expression` of the graph running `code` (plain Python binding `outputs`) over `values`,
        made before the statement that reads it; its first output is the value returned."""
        made = self.computed(node, code, values, outputs, name)
        self._pending_nodes.append(made)
        first = outputs[0]
        return Value(Ref("task", made.name, first.name), first.type, scope, made.location.line or 0)

    def computed(self, node: cst.CSTNode, code: str, values: dict[str, Value], outputs: tuple[Output, ...],
                 name: str) -> Expression:
        """The `Expression` computing `outputs` with `code` from `values`, under a unique name from `name`."""
        inputs = tuple(Input(key, value.ref, self.input_type(value, None, node)) for key, value in values.items())
        made = Expression(self.state.unique(name), code, inputs, outputs, self.module.where(node))
        for output in outputs:
            self.state.output_types[(made.name, output.name)] = output.type
        return made

    def lookup(self, node: cst.Name, scope: Scope) -> Value:
        name = node.value
        bound = self.env.names.get(name)
        if bound is None:
            if name in self.module.constants:
                constant = self.module.constants[name]
                return Value(Ref("constant", value=constant), type_of_value(constant), ())
            if name in self.module.changed:
                self._changed_constant(node, name)
            self.refuse(node, f"name '{name}' is not defined in pipeline '{self.decorated.function}'",
                        "use a pipeline parameter, a module-level constant or a step's result")
        if isinstance(bound, Unknown):
            raise _Refused  # its assignment was refused, and reported
        if isinstance(bound, Partial):
            if bound.reason:
                self.refuse(node, f"'{name}' cannot be used after the if at line {bound.line}: {bound.reason}",
                            "give it a value of one type in every branch: annotate the steps' return types (e.g. "
                            "-> int), or convert the values (int(...), str(...)), or use it inside the branches")
            self.refuse(node, f"'{name}' is assigned in only some branches of the if at line {bound.line}",
                        "assign it in every branch (with an else), or use it inside the branch")
        if isinstance(bound, Collector) and bound.keyed:
            if bound.appended is None:
                return Value(Ref("constant", value={}), "dict", bound.scope)
            entries = self.collected(node, name, bound, scope)
            return self._expression_step(node, f"{name} = dict(entries)\n", {"entries": entries},
                                         (Output(name, ANY),), scope, f"{name}_dict")
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
        ref = Ref("collected", element.ref.source, element.ref.output)
        return Value(ref, list_of(element.type), collector.scope, collector.line)

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

    def _take_pending(self) -> list[Node]:
        taken = list(self._pending_nodes)
        self._pending_nodes.clear()
        return taken

    @property
    def _pending_nodes(self) -> list[Node]:
        return self.__dict__.setdefault("_pending", [])

    def _type_for_condition(self, ref: Ref) -> TypeName:
        if ref.kind == "constant":
            return type_of_value(ref.value)
        if ref.kind in ("parameter", "oneof"):  # (a OneOf: its options' one type, ConditionCompiler._merge_branches)
            return next((v.type for v in self.env.names.values() if isinstance(v, Value) and v.ref == ref), ANY)
        if ref.kind == "task":
            return self.state.output_types.get((ref.source, ref.output), ANY)
        if ref.kind == "item":
            for bound in self.env.names.values():
                if isinstance(bound, Value) and bound.ref == ref:
                    return bound.type
        return ANY

    def _infer(self, value: Value, kind: TypeName) -> None:
        key = (value.ref.source, value.ref.output)
        self.state.output_types[key] = kind
        self.state.warnings.append(
            f"{self.module.path}:{value.line}: the result of step '{value.ref.source}' is used as a {kind}; "
            f"annotate its return type (-> {kind}) to make this explicit")


class _Hoist(cst.CSTTransformer):
    """Replaces each step call in an expression by a name bound (in `made`) to the call's result: the
    call becomes a task of its own, made before the step that computes the expression."""

    def __init__(self, compiler: BodyBase, scope: Scope, made: dict[str, Value], root: cst.CSTNode):
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
        return unique_name(name, taken)

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode):
        if original_node in self.replaced:
            return cst.Name(self.replaced[original_node])
        return updated_node


def _compatible(given: TypeName, declared: TypeName) -> bool:
    if declared == "float" and given == "int":
        return True
    return outer(given) == outer(declared)


def _name(node) -> str | None:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return node.attr.value
    return None


def _text(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node)
