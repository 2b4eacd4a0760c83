"""Branch conditions reduced to what KFP evaluates correctly.

KFP compiles `and` by dropping a clause, inverts `bool == 1`, quotes int-vs-string comparisons and
cannot escape quotes in strings (measured on kfp 2.17). So a condition is only ever emitted as
`channel <op> literal-of-the-channel's-type` (or channel <op> channel): `not` is pushed into the
comparisons, truth tests become comparisons, literals are converted to the operand's type exactly
as Python would compare them, and `and`/`or` become nested `If` blocks (see `exclusive_paths`).
Anything whose Python meaning cannot be kept raises `ConditionError` for the frontend to report.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from kale_like.graph.model import ANY, Comparison, Ref, Test, TestOp

COMPARISONS: tuple[Comparison, ...] = ("==", "!=", "<", "<=", ">", ">=")
_AS_COMPARISON: dict[TestOp, Comparison] = {op: op for op in COMPARISONS}
_NEGATED: dict[Comparison, Comparison] = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_FLIPPED: dict[Comparison, Comparison] = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


class ConditionError(ValueError):
    """A condition KFP cannot evaluate the way Python would. `pointless`: Python itself answers it the
    same way every time (it compares constants, or values that can never be equal): surely a
    mistake, refused rather than computed some other way."""

    def __init__(self, message: str, pointless: bool = False):
        super().__init__(message)
        self.pointless = pointless


def normalize(test: Test, type_of: Callable[[Ref], str | None], negate: bool = False) -> Test:
    """Push `not` down, turn truth tests into comparisons, convert literals; keep and/or.

    `type_of` gives an operand's type name (None when it is not known)."""
    if test.op == "not":
        return normalize(test.tests[0], type_of, not negate)
    if test.op in ("and", "or"):
        op = test.op if not negate else ("or" if test.op == "and" else "and")
        return Test(op, tests=tuple(normalize(t, type_of, negate) for t in test.tests))
    if test.op == "truth":
        return _comparison(_truth(test.operands[0], type_of), type_of, negate)
    return _comparison(test, type_of, negate)


def python_text(test: Test, operand: Callable[[Ref], str]) -> str:
    """The test as a Python expression meaning what it means in the pipeline, each operand written as
    `operand` gives it (a name the code binds, or a literal)."""
    if test.op in ("and", "or"):
        return f" {test.op} ".join(f"({python_text(t, operand)})" for t in test.tests)
    if test.op == "not":
        return f"not ({python_text(test.tests[0], operand)})"
    if test.op == "truth":
        return f"bool({operand(test.operands[0])})"
    left, right = test.operands
    return f"{operand(left)} {test.op} {operand(right)}"


def operand_name(ref: Ref) -> str:
    """A readable Python name for a test's operand in code that computes the test: the parameter's,
    the loop field's, the step's."""
    text = {"parameter": ref.source, "item": ref.output.removeprefix("field_") or "item",
            "task": ref.source, "collected": ref.source}.get(ref.kind, "value")
    text = "".join(c if c.isalnum() else "_" for c in text).strip("_") or "value"
    return text if text.isidentifier() and not text[0].isdigit() else f"value_{text}"


def is_atom(test: Test) -> bool:
    return test.op in COMPARISONS


def dnf(test: Test) -> list[list[Test]]:
    """Disjunctive normal form of a normalized test: a list of conjunctions of comparisons."""
    if is_atom(test):
        return [[test]]
    parts = [dnf(t) for t in test.tests]
    if test.op == "or":
        return [conjunction for part in parts for conjunction in part]
    result: list[list[Test]] = [[]]
    for part in parts:
        result = [left + right for left in result for right in part]
    return result


def negate(test: Test) -> Test:
    """The negation of a normalized test (still normalized)."""
    if is_atom(test):
        return Test(_NEGATED[_AS_COMPARISON[test.op]], test.operands)
    return Test("or" if test.op == "and" else "and", tests=tuple(negate(t) for t in test.tests))


def exclusive_paths(tests: list[Test | None]) -> list[tuple[int, list[Test]]]:
    """For an if/elif/else chain of normalized tests: (branch, conjunction) pairs, mutually exclusive.

    Branch i runs when its test holds and no earlier one does. Its condition in disjunctive normal
    form is split into terms no two of which can hold together (`_exclusive`), so a body reached
    by several terms still runs at most once; different branches exclude each other already.
    """
    paths: list[tuple[int, list[Test]]] = []
    earlier: list[Test] = []
    for index, test in enumerate(tests):
        parts = [negate(t) for t in earlier] + ([test] if test is not None else [])
        if not parts:
            paths.append((index, []))
        else:
            paths += [(index, term) for term in _exclusive(dnf(Test("and", tests=tuple(parts))))]
        if test is not None:
            earlier.append(test)
    return paths


def _exclusive(terms: list[list[Test]]) -> list[list[Test]]:
    """Rewrite a disjunction of conjunctions so that no two terms can hold at once.

    Each new term is cut against every term already kept: T and not (p1 and ... and pk) is
    split into T and not p1, T and p1 and not p2, ..., which exclude each other and the kept term.
    """
    kept: list[list[Test]] = []
    for term in terms:
        pieces = [term] if _satisfiable(term) else []
        for previous in kept:
            cut = []
            for piece in pieces:
                for index, atom in enumerate(previous):
                    candidate = piece + previous[:index] + [negate(atom)]
                    if _satisfiable(candidate):
                        cut.append(_dedupe(candidate))
            pieces = cut
        kept += pieces
    return kept


def _dedupe(term: list[Test]) -> list[Test]:
    seen, result = set(), []
    for atom in term:
        key = (atom.op, atom.operands)
        if key not in seen:
            seen.add(key)
            result.append(atom)
    return result


def _satisfiable(conjunction: list[Test]) -> bool:
    """Drop conjunctions holding an atom and its exact negation."""
    atoms = {(_AS_COMPARISON[t.op], t.operands) for t in conjunction}
    return not any((_NEGATED[op], operands) in atoms for op, operands in atoms)


def _truth(ref: Ref, type_of: Callable[[Ref], str | None]) -> Test:
    kind = type_of(ref)
    if kind == "bool":
        return Test("==", (ref, Ref("constant", value=True)))
    if kind in ("int", "float"):
        return Test("!=", (ref, Ref("constant", value=0)))
    if kind == "str":
        return Test("!=", (ref, Ref("constant", value="")))
    raise ConditionError(_untyped(kind, "a truth test"))


def _comparison(test: Test, type_of: Callable[[Ref], str | None], negate_it: bool) -> Test:
    left, right = test.operands
    op = _AS_COMPARISON[test.op]
    if left.kind == "constant" and right.kind == "constant":
        raise ConditionError("both sides of the comparison are constants; compare a step result or a parameter",
                             pointless=True)
    if left.kind == "constant":
        left, right, op = right, left, _FLIPPED[op]
    if negate_it:
        op = _NEGATED[op]
    kind = type_of(left)
    if kind not in ("int", "float", "str", "bool"):
        raise ConditionError(_untyped(kind, "a comparison"))
    if right.kind != "constant":
        other = type_of(right)
        numeric = {"int", "float"}
        if not (kind == other or (kind in numeric and other in numeric)):
            raise ConditionError(f"cannot compare a {kind} with a {other} the way Python does in KFP")
        if op not in ("==", "!=") and kind in ("str", "bool"):
            raise ConditionError(f"KFP cannot order {kind} values; compare with == or !=")
        return Test(op, (left, right))
    return _with_literal(left, op, right.value, kind)


def _with_literal(channel: Ref, op: Comparison, value: object, kind: str) -> Test:
    if kind == "bool":
        if isinstance(value, str):
            raise ConditionError(
                f"comparing a bool with the string {value!r} is never true in Python; compare with True or False",
                pointless=True,
            )
        written = value
        if type(value) in (int, float) and value in (0, 1):
            value = bool(value)
        if type(value) is not bool or op not in ("==", "!="):
            raise ConditionError(f"a bool can only be compared with == or != to True or False, not {written!r}")
        return Test(op, (channel, _constant(value)))
    if kind == "str":
        if not isinstance(value, str):
            raise ConditionError(f"comparing a str with {value!r} is never true in Python; compare with a string",
                                 pointless=True)
        if "'" in value or "\\" in value or any(ord(ch) < 32 for ch in value):
            raise ConditionError("KFP cannot compare with a string holding ', \\ or a control character (it "
                                 "writes it into the condition unescaped); choose a simpler value")
        return Test(op, (channel, _constant(value)))
    if isinstance(value, str) or not isinstance(value, (int, float)):
        raise ConditionError(f"comparing a {kind} with {value!r} is never true in Python; compare with a number",
                             pointless=True)
    if kind == "float":
        if type(value) is int and float(value) != value:
            raise ConditionError(f"{value} has no exact float value, so KFP cannot compare it the way Python does")
        return Test(op, (channel, _constant(float(value))))
    return _int_with_number(channel, op, value)


def _constant(value: object) -> Ref:
    return Ref("constant", value=value)


def _int_with_number(channel: Ref, op: Comparison, value: float | int) -> Test:
    """`n > 0.5` on an int is `n >= 1`: rewrite so both sides are ints, as KFP requires."""
    if isinstance(value, bool) or float(value).is_integer():
        return Test(op, (channel, _constant(int(value))))
    if op in ("==", "!="):
        raise ConditionError(f"an int is never equal to {value!r}; this test would always be {op == '!='}",
                             pointless=True)
    if op in (">", ">="):
        return Test(">=", (channel, _constant(math.ceil(value))))
    return Test("<=", (channel, _constant(math.floor(value))))


def _untyped(kind: str | None, what: str) -> str:
    if kind == ANY:
        return f"{what} needs a typed value: annotate the step's return type (e.g. -> float)"
    return f"KFP cannot use a {kind} in {what}; compare one of its values instead"
