"""Plain Python expressions in a `@pipeline` body: what they read, whether they are pure, their type,
and their value when everything they read is known when compiling.

KFP itself can only pass a value from one task to the next. The body compiler
(`pipeline_function.py`) compiles any side-effect-free expression over parameters, constants and
step results anyway — `path = f"s3://{bucket}/v{version}/train.csv"`, `lr=base_lr * 10`,
`sizes = [small, 64, large]`, `if metrics["auc"] > 0.9:` — folded here when every name it reads is a
constant, otherwise run by a small generated step that receives those names and computes exactly
what Python computes. This module holds the parts of that which look only at the expression.

What counts as pure: names, literals, operators, subscripts, attributes, comprehensions, lambdas,
conditional expressions, f-strings, and calls of the builtins in `BUILTINS` or of the methods in
`METHODS` (none of them changes its receiver). Anything else is a call into code kale_like cannot
vouch for, and is refused with the rewrite that works (compute it in a step).
"""

from __future__ import annotations

import ast
import builtins
import symtable
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import libcst as cst

from kale_like.graph.model import ANY
from kale_like.graph.types import SCALARS, TypeName, element_of, is_list, list_of

BUILTINS = frozenset({
    "abs", "all", "any", "bin", "bool", "chr", "dict", "divmod", "enumerate", "filter", "float", "format",
    "frozenset", "hex", "int", "isinstance", "len", "list", "map", "max", "min", "oct", "ord", "pow", "range",
    "repr", "reversed", "round", "set", "sorted", "str", "sum", "tuple", "type", "zip",
})
METHODS = frozenset({
    # str
    "capitalize", "casefold", "center", "count", "endswith", "find", "format", "index", "isalnum", "isalpha",
    "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "join", "ljust", "lower",
    "lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition",
    "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper", "zfill",
    # dict, list, set (reading only)
    "copy", "get", "items", "keys", "values", "difference", "intersection", "issubset", "issuperset", "union",
    "symmetric_difference", "isdisjoint", "is_integer", "bit_length",
})
_NUMBERS = ("int", "float")
_NEVER = (ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom)


@dataclass(frozen=True)
class Impurity:
    """Why an expression cannot be compiled: the offending part's text and the rewrite that works."""

    what: str
    hint: str
    callee: str = ""  # the function called, when the cause is a call (`open`, `os.path.join`)


def parse(text: str) -> ast.Expression:
    """The expression's syntax tree (`text` may span lines: it came from inside brackets)."""
    return ast.parse(f"(\n{text}\n)", mode="eval")


def impurity(tree: ast.Expression) -> Impurity | None:
    """The first part of the expression that may have an effect or calls unknown code, if any (a call
    of a plain name before a method call: `open(p).read()` is reported as `open`)."""
    calls: list[ast.Call] = []
    for node in ast.walk(tree):
        if isinstance(node, _NEVER):
            return Impurity(f"'{ast.unparse(node)}' changes a name or waits; a pipeline body computes only pure "
                            "expressions", "compute it inside a step function")
        if isinstance(node, ast.Call) and not _known_call(node, tree):
            calls.append(node)
    if not calls:
        return None
    call = min(calls, key=lambda c: (not isinstance(c.func, ast.Name), c.lineno, c.col_offset))
    return Impurity(f"'{ast.unparse(call.func)}(...)' cannot run in a pipeline body, which compiles only pure "
                    "expressions: builtins such as len, str, sorted and zip, and the methods of str, dict and "
                    "list that change nothing", "call it inside a step function", ast.unparse(call.func))


def _known_call(call: ast.Call, tree: ast.Expression) -> bool:
    func = call.func
    if isinstance(func, ast.Lambda):
        return True  # its body is checked as part of the expression
    if isinstance(func, ast.Name):
        return func.id in BUILTINS or _bound_by_lambda(tree, func.id)
    return isinstance(func, ast.Attribute) and func.attr in METHODS


def _bound_by_lambda(tree: ast.Expression, name: str) -> bool:
    return any(isinstance(node, ast.Lambda) and name in {a.arg for a in node.args.args}
               for node in ast.walk(tree))


def free_names(text: str) -> list[str]:
    """The names the expression reads from outside it, in order of first use (comprehension and
    lambda variables are its own; builtins are listed too, the caller tells them apart)."""
    table = symtable.symtable(f"_kl_expression = (\n{text}\n)\n", "<expression>", "exec")
    free: set[str] = set()

    def visit(scope: symtable.SymbolTable, top: bool) -> None:
        for symbol in scope.get_symbols():
            if symbol.is_referenced() and (symbol.is_global() or (top and not symbol.is_assigned())):
                free.add(symbol.get_name())
        for child in scope.get_children():
            visit(child, False)

    visit(table, True)
    free.discard("_kl_expression")
    uses = sorted((n.lineno, n.col_offset, n.id) for n in ast.walk(parse(text)) if isinstance(n, ast.Name))
    order = list(dict.fromkeys(name for _, _, name in uses))
    return sorted(free, key=lambda name: order.index(name) if name in order else len(order))


def is_builtin(name: str) -> bool:
    return name in BUILTINS or name in ("True", "False", "None")


def infer_type(tree: ast.Expression, types: Mapping[str, TypeName]) -> TypeName:
    """The type of the expression's value where it follows from the types of its names (ANY where not:
    the value then travels as an artifact, which keeps any Python value exactly)."""
    return _infer(tree.body, types)


def _infer(node: ast.expr, types: Mapping[str, TypeName]) -> TypeName:
    if isinstance(node, ast.Constant):
        value = node.value
        constants: dict[type, TypeName] = {bool: "bool", int: "int", float: "float", str: "str"}
        return constants.get(type(value), ANY)
    if isinstance(node, ast.Name):
        return types.get(node.id, ANY)
    if isinstance(node, ast.JoinedStr):
        return "str"
    if isinstance(node, (ast.Compare,)) or (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
        return "bool"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _infer(node.operand, types)
        return inner if inner in _NUMBERS else ANY
    if isinstance(node, ast.BinOp):
        return _binary(node, types)
    if isinstance(node, ast.IfExp):
        return _one({_infer(node.body, types), _infer(node.orelse, types)})
    if isinstance(node, ast.BoolOp):
        return _one({_infer(value, types) for value in node.values})
    if isinstance(node, ast.List):  # a list of values of one known type; other lists may hold tuples, objects...
        inner = _one({_infer(e, types) for e in node.elts}) if node.elts else ANY
        return list_of(inner) if inner in SCALARS else ANY
    if isinstance(node, ast.ListComp):  # `[x for x in xs if ...]` keeps xs's element type; other elements: unknown
        (first, *more) = node.generators
        if not more and isinstance(first.target, ast.Name) and isinstance(node.elt, ast.Name) \
                and node.elt.id == first.target.id and element_of(_infer(first.iter, types)) != ANY:
            return _infer(first.iter, types)
        return ANY
    if isinstance(node, ast.Dict):  # KFP passes a dict as JSON: only str keys and JSON values survive it
        keys_ok = all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in node.keys)
        plain = all(_infer(v, types) in SCALARS + ("dict",) or is_list(_infer(v, types)) for v in node.values)
        return "dict" if keys_ok and plain else ANY
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return _call(node, types)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr in ("lower", "upper", "strip", "lstrip", "rstrip", "replace", "title", "join", "format",
                              "capitalize", "zfill", "removeprefix", "removesuffix"):
            return "str"
        if node.func.attr in ("split", "rsplit", "splitlines"):
            return "list:str"
        if node.func.attr in ("startswith", "endswith", "isdigit", "isalpha", "is_integer"):
            return "bool"
    return ANY


def _one(kinds: set[TypeName]) -> TypeName:
    return next(iter(kinds)) if len(kinds) == 1 else ANY


def _binary(node: ast.BinOp, types: Mapping[str, TypeName]) -> TypeName:
    left, right = _infer(node.left, types), _infer(node.right, types)
    if isinstance(node.op, ast.Div) and left in _NUMBERS and right in _NUMBERS:
        return "float"
    if isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)) and left in _NUMBERS \
            and right in _NUMBERS:
        return "float" if "float" in (left, right) else "int"
    if isinstance(node.op, ast.Add) and left == right == "str":
        return "str"
    if isinstance(node.op, ast.Mod) and left == "str":
        return "str"
    if isinstance(node.op, ast.Mult) and {left, right} == {"str", "int"}:
        return "str"
    if isinstance(node.op, ast.Add) and is_list(left) and is_list(right):
        return left if left == right else "list"
    return ANY


def _call(node: ast.Call, types: Mapping[str, TypeName]) -> TypeName:
    assert isinstance(node.func, ast.Name)
    name = node.func.id
    argument = _infer(node.args[0], types) if node.args else ANY
    if name in ("str", "repr", "format", "chr", "hex", "bin", "oct"):
        return "str"
    if name in ("int", "len", "ord") or (name == "round" and len(node.args) == 1):
        return "int"
    if name == "float":
        return "float"
    if name in ("bool", "all", "any", "isinstance"):
        return "bool"
    if name in ("sorted", "list") and node.args and isinstance(node.args[0], ast.Call) \
            and isinstance(node.args[0].func, ast.Name) and node.args[0].func.id == "range":
        return "list:int"
    if name in ("sorted", "list") and is_list(argument):
        return argument
    if name in ("min", "max") and len(node.args) > 1:
        return _one({_infer(a, types) for a in node.args})
    if name in ("min", "max") and element_of(argument) != ANY:
        return element_of(argument)
    if name == "sum" and argument == "list:int" and len(node.args) == 1:
        return "int"  # (a sum of floats is the int 0 when the list is empty)
    if name == "abs" and argument in _NUMBERS:
        return argument
    return ANY


def foldable(tree: ast.Expression, constants: dict[str, object]) -> bool:
    """Whether evaluating it now, with `constants` for its names, is sure to be quick: no power, no
    repetition of a sequence, no `range` (`"x" * 10 ** 9` is Python too; it then runs in a step, as
    it would at run time)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Pow, ast.LShift)):
            return False
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult) \
                and not (_number(node.left, constants) and _number(node.right, constants)):
            return False
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("range", "pow"):
            return False
    return True


def _number(node: ast.expr, constants: dict[str, object]) -> bool:
    """The expression is arithmetic on numbers only (so `*` on it cannot repeat a sequence)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (int, float))
    if isinstance(node, ast.Name):
        return isinstance(constants.get(node.id), (int, float))
    if isinstance(node, ast.UnaryOp):
        return _number(node.operand, constants)
    if isinstance(node, ast.BinOp):
        return _number(node.left, constants) and _number(node.right, constants)
    return False


def fold(text: str, constants: dict[str, object]) -> tuple[bool, object]:
    """(True, value) of the expression evaluated now with `constants` for its names; (False, None) when
    it raises (it then runs in a step, and raises there, at run time, as in Python)."""
    allowed = {name: getattr(builtins, name) for name in BUILTINS}
    try:
        code = compile(f"(\n{text}\n)", "<pipeline expression>", "eval")
        # one namespace: a comprehension's own scope reads the constants as globals
        return True, eval(code, {**constants, "__builtins__": allowed})  # noqa: S307 - pure, checked above
    except Exception:  # noqa: BLE001 - any error Python would raise belongs to the run, not to compiling
        return False, None


def conditionally_evaluated(root: cst.CSTNode) -> set[cst.CSTNode]:
    """The parts of an expression Python evaluates any number of times or maybe not at all: the right
    side of `and`/`or`, the branches of `x if c else y`, a lambda's body, everything in a comprehension
    but the iterable of its first `for`."""
    maybe: list[cst.CSTNode] = []

    class Find(cst.CSTVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            if isinstance(node, cst.BooleanOperation):
                maybe.append(node.right)
            elif isinstance(node, cst.IfExp):
                maybe.extend((node.body, node.orelse))
            elif isinstance(node, cst.Lambda):
                maybe.append(node.body)
            elif isinstance(node, (cst.ListComp, cst.SetComp, cst.GeneratorExp)):
                maybe.append(node.elt)
                maybe.extend(_comprehension_parts(node.for_in))
            elif isinstance(node, cst.DictComp):
                maybe.extend((node.key, node.value))
                maybe.extend(_comprehension_parts(node.for_in))
            return True

    root.visit(Find())
    inside: set[cst.CSTNode] = set()

    class Collect(cst.CSTVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            inside.add(node)
            return True

    for part in maybe:
        part.visit(Collect())
    return inside


def _comprehension_parts(first: cst.CompFor) -> list[cst.CSTNode]:
    """A comprehension's conditions and inner `for`s (evaluated per item); not its first iterable."""
    parts: list[cst.CSTNode] = [*first.ifs]
    if first.inner_for_in is not None:
        parts.append(first.inner_for_in)
    return parts


def first_uses(node: cst.CSTNode) -> dict[str, cst.Name]:
    """Each name the expression reads, and the Name node of its first use (where an error points)."""
    found: dict[str, cst.Name] = {}

    class Names(cst.CSTVisitor):
        def visit_Name(self, name: cst.Name) -> None:
            found.setdefault(name.value, name)

        def visit_Attribute(self, attribute: cst.Attribute) -> bool:
            attribute.value.visit(self)  # `x.attr`: the attribute's name is not a name read
            return False

    node.visit(Names())
    return found


def plain(value: object) -> bool:
    """A value KFP passes as a constant and gives back unchanged (a tuple would come back a list)."""
    if isinstance(value, bool) or isinstance(value, (int, str)):
        return True
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, list):
        return all(plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and plain(item) for key, item in value.items())
    return False


class PositionKeeping(cst.CSTTransformer):
    """A source rewrite whose rebuilt nodes keep the source position of the node they replace
    (`positions`, the module's PositionProvider map), so errors still point at the user's line."""

    def __init__(self, positions: dict):
        super().__init__()
        self.positions = positions

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode):
        result = super().on_leave(original_node, updated_node)
        if isinstance(result, cst.CSTNode) and result is not original_node and result not in self.positions \
                and original_node in self.positions:
            self.positions[result] = self.positions[original_node]
        return result


def calls_any(node: cst.CSTNode, functions: set[str]) -> bool:
    """Whether the node calls one of `functions` by name anywhere in it."""
    class Find(cst.CSTVisitor):
        found = False

        def visit_Call(self, call: cst.Call) -> None:
            if isinstance(call.func, cst.Name) and call.func.value in functions:
                Find.found = True

    node.visit(Find())
    return Find.found


def if_arms(node: cst.If) -> list[tuple[cst.BaseExpression | None, cst.BaseSuite]]:
    """The (test, body) of each branch of an if/elif/else chain, in order; the else's test is None."""
    arms: list[tuple[cst.BaseExpression | None, cst.BaseSuite]] = []
    current: cst.If | cst.Else | None = node
    while current is not None:
        if isinstance(current, cst.If):
            arms.append((current.test, current.body))
            current = current.orelse
        else:
            arms.append((None, current.body))
            current = None
    return arms


def grouped(node: cst.BaseExpression) -> cst.BaseExpression:
    """The expression in parentheses unless it is a name: code a rewrite builds reads as it means."""
    if isinstance(node, cst.Name) or node.lpar:
        return node
    return node.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def names_in(nodes: Sequence[cst.CSTNode]) -> set[str]:
    """Every name the nodes mention (a rewrite picks new names outside them)."""
    names: set[str] = set()

    class Names(cst.CSTVisitor):
        def visit_Name(self, node: cst.Name) -> None:
            names.add(node.value)

    for node in nodes:
        node.visit(Names())
    return names
