"""Unit tests of kale_like/graph/conditions.py: the lowering of Python `if` tests to what KFP evaluates.

KFP compiles `and` by dropping a clause, inverts `bool == 1` and quotes int-vs-str comparisons
(measured on kfp 2.17), so kale_like only ever hands KFP `channel <op> literal` with
the literal of the channel's own type; `not` is pushed into comparisons, truth tests become
comparisons, and `and`/`or` become nested `dsl.If` blocks, one per conjunction of
`exclusive_paths`. The property at the end checks the whole pipeline of functions against Python's
own if/elif/else on random trees and random values.
"""

from __future__ import annotations

import math
import operator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kale_like.graph.conditions import (
    COMPARISONS, ConditionError, dnf, exclusive_paths, is_atom, negate, normalize,
)
from kale_like.graph.model import ANY, Ref
from kale_like.graph.model import Test as Cond  # not `Test`: pytest would try to collect it

CHANNELS = {"i": "int", "j": "int", "f": "float", "g": "float", "b": "bool", "c": "bool", "d": "bool", "e": "bool",
            "s": "str", "t": "str", "l": "list:int", "u": ANY}
OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
       ">=": operator.ge}


def ch(name: str) -> Ref:
    return Ref("parameter", name)


def k(value) -> Ref:
    return Ref("constant", value=value)


def cmp(op: str, left, right) -> Cond:
    left = ch(left) if isinstance(left, str) and left in CHANNELS else left
    right = ch(right) if isinstance(right, str) and right in CHANNELS else right
    left = left if isinstance(left, Ref) else k(left)
    right = right if isinstance(right, Ref) else k(right)
    return Cond(op, (left, right))


def truth(name: str) -> Cond:
    return Cond("truth", (ch(name),))


def NOT(test: Cond) -> Cond:  # noqa: N802 - reads like the Python keyword
    return Cond("not", tests=(test,))


def AND(*tests: Cond) -> Cond:  # noqa: N802
    return Cond("and", tests=tests)


def OR(*tests: Cond) -> Cond:  # noqa: N802
    return Cond("or", tests=tests)


def type_of(ref: Ref) -> str:
    assert ref.kind == "parameter", f"type_of asked about a non-channel {ref!r}"
    return CHANNELS[ref.source]


def norm(test: Cond) -> Cond:
    return normalize(test, type_of)


def atom(op: str, name: str, value) -> Cond:
    """The expected normalized atom `channel <op> constant`."""
    return Cond(op, (ch(name), k(value)))


def literal_of(test: Cond):
    value = test.operands[1].value
    return type(value), value


# ---------------------------------------------------------------------------------------------
# normalize: not, truth tests, literal coercion


def test_not_is_pushed_into_the_comparison():
    assert norm(NOT(cmp(">", "i", 3))) == atom("<=", "i", 3)
    assert norm(NOT(NOT(cmp("==", "s", "a")))) == atom("==", "s", "a")


@pytest.mark.parametrize(("op", "negated"), [("==", "!="), ("!=", "=="), ("<", ">="), ("<=", ">"), (">", "<="),
                                             (">=", "<")])
def test_every_comparison_negates_to_its_complement(op, negated):
    assert norm(NOT(cmp(op, "f", 1.5))) == atom(negated, "f", 1.5)


def test_not_of_and_is_or_of_negations():
    test = NOT(AND(cmp(">", "i", 1), cmp("==", "s", "x")))
    assert norm(test) == OR(atom("<=", "i", 1), atom("!=", "s", "x"))


def test_not_of_or_is_and_of_negations():
    test = NOT(OR(cmp("<", "i", 0), truth("b")))
    assert norm(test) == AND(atom(">=", "i", 0), atom("!=", "b", True))


def test_and_or_are_kept_for_exclusive_paths():
    test = AND(cmp(">", "i", 1), OR(cmp("==", "s", "x"), truth("b")))
    assert norm(test) == AND(atom(">", "i", 1), OR(atom("==", "s", "x"), atom("==", "b", True)))


@pytest.mark.parametrize(("name", "expected"), [
    ("b", atom("==", "b", True)),
    ("i", atom("!=", "i", 0)),
    ("f", atom("!=", "f", 0.0)),
    ("s", atom("!=", "s", "")),
])
def test_truth_test_becomes_a_comparison_of_the_channel_type(name, expected):
    result = norm(truth(name))
    assert result == expected
    assert literal_of(result) == literal_of(expected)


@pytest.mark.parametrize(("name", "expected"), [
    ("b", atom("!=", "b", True)),
    ("i", atom("==", "i", 0)),
    ("s", atom("==", "s", "")),
])
def test_negated_truth_test(name, expected):
    assert norm(NOT(truth(name))) == expected


def test_truth_test_of_a_list_is_refused():
    with pytest.raises(ConditionError, match="compare one of its values"):
        norm(truth("l"))


def test_truth_test_of_an_untyped_value_asks_for_an_annotation():
    with pytest.raises(ConditionError, match="annotate"):
        norm(truth("u"))


def test_constant_on_the_left_is_flipped():
    assert norm(cmp("<", 3, "i")) == atom(">", "i", 3)
    assert norm(cmp(">=", 0.5, "f")) == atom("<=", "f", 0.5)
    assert norm(cmp("==", "x", "s")) == atom("==", "s", "x")


def test_flipped_and_negated():
    assert norm(NOT(cmp("<", 3, "i"))) == atom("<=", "i", 3)


def test_two_constants_are_refused():
    with pytest.raises(ConditionError, match="both sides"):
        norm(cmp("==", 1, 1))


@pytest.mark.parametrize(("op", "value", "expected"), [
    (">", 0.5, atom(">=", "i", 1)),
    (">=", 0.5, atom(">=", "i", 1)),
    ("<", 0.5, atom("<=", "i", 0)),
    ("<=", 0.5, atom("<=", "i", 0)),
    (">", -0.5, atom(">=", "i", 0)),
    ("<", -1.5, atom("<=", "i", -2)),
    (">", 2.0, atom(">", "i", 2)),
    ("==", 2.0, atom("==", "i", 2)),
    ("==", True, atom("==", "i", 1)),
    ("<", False, atom("<", "i", 0)),
])
def test_int_operand_gets_an_int_literal(op, value, expected):
    result = norm(cmp(op, "i", value))
    assert result == expected
    assert literal_of(result) == (int, expected.operands[1].value)


@pytest.mark.parametrize("op", ["==", "!="])
def test_int_never_equal_to_a_fraction_is_refused(op):
    with pytest.raises(ConditionError, match="never equal"):
        norm(cmp(op, "i", 0.5))


@pytest.mark.parametrize(("value", "expected"), [(1, 1.0), (True, 1.0), (0, 0.0), (2.5, 2.5)])
def test_float_operand_gets_a_float_literal(value, expected):
    result = norm(cmp(">", "f", value))
    assert literal_of(result) == (float, expected)


@pytest.mark.parametrize(("op", "value", "expected"), [
    ("==", True, atom("==", "b", True)),
    ("==", 1, atom("==", "b", True)),  # KFP itself would invert this (`== false`)
    ("==", 0, atom("==", "b", False)),
    ("!=", 1.0, atom("!=", "b", True)),
    ("!=", False, atom("!=", "b", False)),
])
def test_bool_operand_gets_a_bool_literal(op, value, expected):
    result = norm(cmp(op, "b", value))
    assert result == expected
    assert literal_of(result)[0] is bool


def test_bool_compared_with_the_string_true_is_refused():
    with pytest.raises(ConditionError, match="never true in Python"):
        norm(cmp("==", "b", "True"))


@pytest.mark.parametrize(("op", "value"), [("==", 2), ("<", True), (">", 0), ("==", None)])
def test_bool_with_anything_but_equality_to_a_bool_is_refused(op, value):
    with pytest.raises(ConditionError, match="a bool can only be compared"):
        norm(cmp(op, "b", value))


@pytest.mark.parametrize("value", [1, 1.5, True, None])
def test_str_compared_with_a_non_string_is_refused(value):
    with pytest.raises(ConditionError, match="never true in Python"):
        norm(cmp("==", "s", value))


@pytest.mark.parametrize("value", ["it's", "back\\slash"])
def test_str_literal_that_kfp_cannot_quote_is_refused(value):
    with pytest.raises(ConditionError, match="holding '"):
        norm(cmp("==", "s", value))


def test_str_ordering_with_a_literal_is_kept():
    assert norm(cmp("<", "s", "m")) == atom("<", "s", "m")


@pytest.mark.parametrize("value", ["1", [1], None])
def test_number_compared_with_a_non_number_is_refused(value):
    with pytest.raises(ConditionError, match="never true in Python"):
        norm(cmp("==", "i", value))


def test_channel_against_channel():
    assert norm(cmp("<", "i", "f")) == Cond("<", (ch("i"), ch("f")))
    assert norm(cmp("==", "b", "c")) == Cond("==", (ch("b"), ch("c")))
    assert norm(NOT(cmp("==", "s", "t"))) == Cond("!=", (ch("s"), ch("t")))
    with pytest.raises(ConditionError, match="cannot compare a str with a int"):
        norm(cmp("==", "s", "i"))
    with pytest.raises(ConditionError, match="cannot order str"):
        norm(cmp("<", "s", "t"))
    with pytest.raises(ConditionError, match="cannot order bool"):
        norm(cmp(">=", "b", "c"))


def test_untyped_operand_asks_for_an_annotation():
    with pytest.raises(ConditionError, match="annotate the step's return type"):
        norm(cmp(">", "u", 1))


def test_list_operand_is_refused():
    with pytest.raises(ConditionError, match="KFP cannot use a list:int"):
        norm(cmp("==", "l", 1))


# ---------------------------------------------------------------------------------------------
# dnf, negate, exclusive_paths

A, B, C, D = atom(">", "i", 1), atom("==", "s", "x"), atom("==", "b", True), atom("<", "f", 0.5)


def test_is_atom():
    assert is_atom(A) and not is_atom(AND(A, B)) and not is_atom(OR(A, B))


def test_dnf_of_an_atom_and_of_flat_and_or():
    assert dnf(A) == [[A]]
    assert dnf(AND(A, B)) == [[A, B]]
    assert dnf(OR(A, B)) == [[A], [B]]


def test_dnf_distributes_and_over_or():
    assert dnf(AND(OR(A, B), OR(C, D))) == [[A, C], [A, D], [B, C], [B, D]]
    assert dnf(OR(AND(A, B), C)) == [[A, B], [C]]


def test_negate_is_de_morgan_on_normalized_tests():
    assert negate(A) == atom("<=", "i", 1)
    assert negate(AND(A, B)) == OR(negate(A), negate(B))
    assert negate(OR(A, AND(B, C))) == AND(negate(A), OR(negate(B), negate(C)))
    assert negate(negate(OR(A, B))) == OR(A, B)


def test_and_is_one_path_of_two_nested_conditions():
    assert exclusive_paths([AND(A, B)]) == [(0, [A, B])]


def test_single_atom_if_elif_else():
    assert exclusive_paths([A, None]) == [(0, [A]), (1, [negate(A)])]


# The decomposition of or/else into paths is free; what matters is what runs. These check every
# assignment of four independent atoms (over the bool channels b, c, d, e): for each, the paths
# that hold must be exactly one path of Python's branch (none when no branch is taken).
P, Q, R, S = atom("==", "b", True), atom("==", "c", True), atom("==", "d", True), atom("==", "e", True)


def _assignments():
    for bits in range(16):
        yield {name: bool(bits >> k & 1) for k, name in enumerate("bcde")}


def assert_runs_python_branch_once(chain: list[Cond | None]) -> None:
    paths = exclusive_paths(chain)
    for _, conjunction in paths:
        assert conjunction or len(chain) == 1 and chain[0] is None
        assert all(is_atom(t) for t in conjunction), paths
    for env in _assignments():
        expected = python_branch(chain, env)
        holding = [index for index, conjunction in paths if all(kfp_truth(a, env) for a in conjunction)]
        assert holding == ([] if expected is None else [expected]), (env, paths)


@pytest.mark.parametrize("chain", [
    [OR(P, Q)],
    [OR(P, Q), None],
    [P, Q, None],
    [AND(P, Q), None],
    [P, P, None],  # the elif can never run
    [OR(P, AND(Q, R)), AND(OR(P, S), Q), None],
    [AND(OR(P, Q), OR(R, S)), None],
    [OR(AND(P, Q), AND(R, S)), OR(P, R)],
], ids=["or", "or-else", "if-elif-else", "and-else", "unreachable-elif", "mixed", "and-of-ors", "or-of-ands"])
def test_paths_run_the_python_branch_once(chain):
    assert_runs_python_branch_once(chain)


@pytest.mark.parametrize("chain", [[OR(AND(P, Q), R)], [AND(OR(P, P), Q), None]], ids=["or-of-and", "else-of-and"])
def test_paths_of_an_or_after_an_and_run_once(chain):
    """Regression: `(a and b) or c` once gave [a, b], [c, not a], [c, not b], two of which hold together."""
    assert_runs_python_branch_once(chain)


def test_unreachable_branch_has_no_path():
    assert [index for index, _ in exclusive_paths([P, P, None])].count(1) == 0


def test_each_path_is_only_atoms():
    for _, conjunction in exclusive_paths([OR(AND(A, B), negate(C)), AND(OR(A, D), B), None]):
        assert conjunction and all(is_atom(t) for t in conjunction)


# ---------------------------------------------------------------------------------------------
# Property: the lowered nested conditions pick exactly the branch Python's if/elif/else picks

_SMALL_INTS = st.integers(-3, 3)
_INTS = st.one_of(_SMALL_INTS, _SMALL_INTS, st.integers(-(2**40), 2**40))
_FLOATS = st.one_of(
    st.sampled_from([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0]),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
)
_STRS = st.one_of(st.sampled_from(["", "a", "b", "ab", "B"]), st.text(max_size=3))
_ANY_LITERAL = st.one_of(_INTS, _FLOATS, st.booleans(), _STRS)
_POOLS = {"int": st.one_of(_INTS, _INTS, _FLOATS), "float": st.one_of(_FLOATS, _FLOATS, _INTS),
          "bool": st.one_of(st.booleans(), st.sampled_from([0, 1, 0.0, 1.0])), "str": _STRS}
_TYPED = [name for name, kind in CHANNELS.items() if kind in _POOLS]


def _literal_comparison(name: str):
    literal = st.one_of(_POOLS[CHANNELS[name]], _POOLS[CHANNELS[name]], _ANY_LITERAL)
    return st.builds(
        lambda op, value, flip: cmp(op, value, name) if flip else cmp(op, name, value),
        st.sampled_from(COMPARISONS), literal, st.booleans(),
    )


_ATOMS = st.one_of(
    st.sampled_from(_TYPED).flatmap(_literal_comparison),
    st.sampled_from(_TYPED).flatmap(_literal_comparison),
    st.builds(lambda op, a, b: cmp(op, a, b), st.sampled_from(COMPARISONS), st.sampled_from(_TYPED),
              st.sampled_from(_TYPED)),
    st.sampled_from(_TYPED).map(truth),
)
_TREES = st.recursive(
    _ATOMS,
    lambda children: st.one_of(
        children.map(NOT),
        st.tuples(children, children).map(lambda pair: AND(*pair)),
        st.tuples(children, children).map(lambda pair: OR(*pair)),
    ),
    max_leaves=5,
)
_ENVS = st.fixed_dictionaries({
    "i": _INTS, "j": _SMALL_INTS, "f": _FLOATS, "g": _FLOATS, "b": st.booleans(), "c": st.booleans(),
    "d": st.booleans(), "e": st.booleans(), "s": _STRS, "t": _STRS,
})


def _value(ref: Ref, env: dict):
    return env[ref.source] if ref.kind == "parameter" else ref.value


def python_truth(test: Cond, env: dict) -> bool:
    """What Python's own `if` makes of the test (the source the user wrote)."""
    if test.op == "not":
        return not python_truth(test.tests[0], env)
    if test.op == "and":
        return all(python_truth(t, env) for t in test.tests)
    if test.op == "or":
        return any(python_truth(t, env) for t in test.tests)
    if test.op == "truth":
        return bool(_value(test.operands[0], env))
    left, right = test.operands
    return OPS[test.op](_value(left, env), _value(right, env))


def python_branch(tests: list[Cond | None], env: dict) -> int | None:
    for index, test in enumerate(tests):
        if test is None or python_truth(test, env):
            return index
    return None


def assert_kfp_safe(atom_: Cond) -> None:
    """The atom is one KFP compiles correctly: a channel against a literal of its own type."""
    assert atom_.op in COMPARISONS
    left, right = atom_.operands
    assert left.kind == "parameter", atom_
    kind = CHANNELS[left.source]
    if right.kind == "constant":
        expected = {"int": int, "float": float, "bool": bool, "str": str}[kind]
        assert type(right.value) is expected, atom_
        if kind == "bool":
            assert atom_.op in ("==", "!="), atom_
        if kind == "str":
            assert "'" not in right.value and "\\" not in right.value, atom_
    else:
        other = CHANNELS[right.source]
        assert other == kind or {kind, other} <= {"int", "float"}, atom_
        if kind in ("str", "bool"):
            assert atom_.op in ("==", "!="), atom_


def kfp_truth(atom_: Cond, env: dict) -> bool:
    left, right = atom_.operands
    return OPS[atom_.op](env[left.source], _value(right, env))


def _lower(chain):
    """(normalized tests, exclusive paths) or None when kale_like refuses the chain (exit 2)."""
    try:
        normalized = [normalize(t, type_of) if t is not None else None for t in chain]
    except ConditionError:
        return None
    return normalized, exclusive_paths(normalized)


def _selected(paths, env) -> list[int]:
    """The branch of every nested-If path whose conditions all hold: the bodies KFP runs."""
    return [index for index, conjunction in paths if all(kfp_truth(a, env) for a in conjunction)]


_CHAINS = dict(tests=st.lists(_TREES, min_size=1, max_size=3), has_else=st.booleans(), env=_ENVS)


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(**_CHAINS)
def test_lowered_conditions_select_the_branch_python_selects(tests, has_else, env):
    """The set of branches whose lowered nested conditions hold is {Python's branch} (or empty)."""
    chain: list[Cond | None] = list(tests) + ([None] if has_else else [])
    lowered = _lower(chain)
    if lowered is None:
        return  # refused at compile time: nothing reaches KFP
    _, paths = lowered
    for _, conjunction in paths:
        for one in conjunction:
            assert_kfp_safe(one)
    expected = python_branch(chain, env)
    assert set(_selected(paths, env)) == ({expected} if expected is not None else set()), (chain, env, paths)


# Python runs the chosen body once; KFP runs one body per path whose conditions hold. A rewrite
# "A or B = A, or (not A and B)" is only exclusive when `not A` is one atom: for `(a and b) or c`,
# `not (a and b)` splits into the paths (c, not a) and (c, not b), which both hold when a and b are
# both false. The example below is the shape hypothesis found (the else of `(i or i) and j`).
_RUNS_TWICE = dict(
    tests=[AND(OR(truth("i"), truth("i")), truth("j"))], has_else=True,
    env={"i": 1, "j": 0, "f": 0.0, "g": 0.0, "b": False, "c": False, "d": False, "e": False, "s": "", "t": ""},
)


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(**_CHAINS)
@example(**_RUNS_TWICE)
def test_lowered_conditions_run_the_chosen_branch_exactly_once(tests, has_else, env):
    """Exactly one path holds for Python's branch (none when no branch is taken)."""
    chain: list[Cond | None] = list(tests) + ([None] if has_else else [])
    lowered = _lower(chain)
    if lowered is None:
        return
    _, paths = lowered
    expected = python_branch(chain, env)
    assert _selected(paths, env) == ([] if expected is None else [expected]), (chain, env, paths)


# ---------------------------------------------------------------------------------------------
# Precision: literals beyond what a float holds exactly


def test_float_operand_with_a_huge_int_literal_keeps_python_semantics():
    """float(2**53 + 1) rounds: `f == 9007199254740993` must not become `f == 9007199254740992.0`."""
    env = {"f": 2.0**53}
    test = cmp("==", "f", 2**53 + 1)
    try:
        lowered = norm(test)
    except ConditionError:
        return  # refusing is also correct
    assert kfp_truth(lowered, env) == python_truth(test, env)


def test_int_operand_with_a_huge_float_literal():
    lowered = norm(cmp(">", "i", 1e20 + 0.0))
    assert lowered == atom(">", "i", int(1e20))
    assert math.isclose(lowered.operands[1].value, 1e20)
