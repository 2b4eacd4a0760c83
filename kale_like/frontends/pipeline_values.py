"""What the names and expressions of a `@pipeline` body stand for, and their types.

A pipeline body is not run: each name is bound to a `Value` (a reference to a step output, a
parameter, a loop item or a constant) tagged with the control-flow scope it was made in, so the
compiler can tell whether a use is legal where it appears (KFP cannot read a value made inside a
loop or branch from outside it, except through Collected / OneOf).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

import libcst as cst

from kale_like.graph.model import ANY, Ref
from kale_like.graph.types import SCALARS, TypeName, element_of, list_of

Scope = tuple[tuple[str, ...], ...]  # e.g. (("loop", "for-1"), ("branch", "if-2", "0"))
PRIMITIVES = SCALARS  # the types KFP passes as plain parameters (graph/types.py)


@dataclass
class Value:
    """A name's meaning in the pipeline body."""

    ref: Ref
    type: TypeName
    scope: Scope
    line: int = 0


@dataclass
class Collector:
    """A list filled with `.append(step(...))` in a loop (KFP Collected)."""

    scope: Scope
    line: int
    appended: Value | None = None
    append_scope: Scope = ()
    keyed: bool = False  # `d = {}` filled with `d[key] = value`: what is appended is a (key, value) entry


@dataclass
class Partial:
    """A name assigned in only some branches of an `if`: using it later is an error."""

    line: int
    reason: str = ""


@dataclass
class Unknown:
    """A name whose assignment was refused (and reported): its uses are not reported again."""

    line: int


@dataclass
class Env:
    """Bindings visible in the body being compiled."""

    names: dict[str, Value | Collector | Partial | Unknown] = field(default_factory=dict)


def type_of_value(value: object) -> TypeName:
    """Our type name of a Python literal, with the element type of a uniform list."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, (list, tuple)):
        elements = {type_of_value(item) for item in value}
        if elements == {"int", "float"}:
            return list_of("float")
        return list_of(elements.pop()) if len(elements) == 1 else "list"
    return ANY


element_type = element_of  # `int` for `list:int`; ANY when the list's elements are not known


def literal(node: cst.BaseExpression) -> tuple[bool, object]:
    """(True, value) when the expression is a Python literal."""
    if not isinstance(node, (cst.Integer, cst.Float, cst.SimpleString, cst.ConcatenatedString, cst.List,
                             cst.Tuple, cst.Dict, cst.Set, cst.Name, cst.UnaryOperation)):
        return False, None
    if isinstance(node, cst.Name) and node.value not in ("True", "False", "None"):
        return False, None
    try:
        return True, ast.literal_eval(cst.Module([]).code_for_node(node).strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def visible(made: Scope, used: Scope) -> bool:
    """A value made in scope `made` can be read in scope `used` (same scope or nested inside it)."""
    return used[: len(made)] == made
