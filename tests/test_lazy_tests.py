"""The source rewrite that runs an if's step calls only when Python calls them (pipeline_lazy_tests.py)."""

from __future__ import annotations

import textwrap

import libcst as cst

from kale_like.frontends.pipeline_lazy_tests import lazy_tests


def rewritten(source: str, steps: set[str]) -> str:
    return cst.Module(lazy_tests(cst.parse_module(textwrap.dedent(source)).body, steps, {})).code


def test_a_call_after_and_runs_under_the_left_side_and_one_after_or_when_it_fails():
    assert rewritten("""
        if x != 0 and good(x):
            a()
        if done or good(x):
            b()
    """, {"good", "a", "b"}) == textwrap.dedent("""\
        if x != 0:
            good_holds = bool(good(x))
        else:
            good_holds = False
        if x != 0 and good_holds:
            a()
        if not done:
            good_holds_2 = bool(good(x))
        else:
            good_holds_2 = False
        if done or good_holds_2:
            b()
    """)


def test_each_test_of_a_chain_with_a_calling_elif_is_computed_once_in_order():
    code = rewritten("""
        if first(n):
            y = 1
        elif n == 0 or second(n):
            y = 2
        else:
            y = 3
    """, {"first", "second"})
    assert code == textwrap.dedent("""\
        first_holds = bool(first(n))
        if (not first_holds) and (not (n == 0)):
            second_holds = bool(second(n))
        else:
            second_holds = False
        if first_holds:
            y = 1
        elif n == 0 or second_holds:
            y = 2
        else:
            y = 3
    """)


def test_tests_without_a_skippable_call_are_left_as_written():
    source = """
        if ready(x) and x > 1:
            a()
        elif x < 0:
            b()
        for k in ks:
            if k in allowed or k == 2:
                a()
    """
    assert rewritten(source, {"ready", "a", "b"}) == textwrap.dedent(source).lstrip("\n")
