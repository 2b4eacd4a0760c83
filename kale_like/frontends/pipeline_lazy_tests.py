"""Step calls in an `if`'s tests run only when Python would call them, by a rewrite of the source.

Python evaluates an `elif`'s test only when no earlier test held, and the right side of `and`/`or`
only when the left side does not decide: `if x != 0 and is_good(x):` never calls `is_good(0)`. The
body compiler runs a test's step calls as tasks before the `if` (KFP tests values that tasks made),
so such a call is first moved where Python makes it, into a value of its own:

    if x != 0 and is_good(x):          if x != 0:
        ...                                is_good_holds = bool(is_good(x))
                                  ->   else:
                                           is_good_holds = False
                                       if is_good_holds:
                                           ...

and an `elif` test calling a step is computed in the `else` of the tests before it. The new if/else
is compiled as any other (KFP If/Else, the value a OneOf), so each call runs at most once and only
when Python runs it. Nodes made here take the source position of the test they come from.
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from kale_like.frontends.pipeline_expressions import calls_any, grouped, names_in
from kale_like.graph.model import unique_name


_ALWAYS = cst.Name("True")  # `when` for a sub-test computed unconditionally, into a name of its own


class _Rewriter:
    def __init__(self, steps: set[str], taken: set[str], positions: dict) -> None:
        self.steps = steps
        self.taken = taken
        self.positions = positions

    def block(self, statements: Sequence[cst.BaseStatement]) -> list[cst.BaseStatement]:
        result: list[cst.BaseStatement] = []
        for statement in statements:
            if isinstance(statement, cst.If):
                result += self.chain(statement)
            elif isinstance(statement, cst.For):
                result.append(self._keep(statement, statement.with_changes(body=self.suite(statement.body))))
            else:
                result.append(statement)
        return result

    def suite(self, suite: cst.BaseSuite) -> cst.BaseSuite:
        if isinstance(suite, cst.IndentedBlock):
            return suite.with_changes(body=self.block(suite.body))
        return suite

    def chain(self, statement: cst.If) -> list[cst.BaseStatement]:
        """The statements before an if/elif chain that compute its lazy tests, and the chain.

        Every if made here is flat (a name assigned in each branch, no if inside): KFP before 2.17
        never marks a branch holding an inner if complete, and a OneOf read after it would fail."""
        arms: list[cst.If] = []
        current: cst.If | cst.Else | None = statement
        while isinstance(current, cst.If):
            arms.append(current)
            current = current.orelse
        last_else = current
        # an elif's test is evaluated only when no earlier test held: then every test calling a step is
        # computed into a name, so that the tests before an elif can be read again without a second call
        hoist_all = any(calls_any(arm.test, self.steps) for arm in arms[1:])
        before: list[cst.BaseStatement] = []
        tests: list[cst.BaseExpression] = []
        for arm in arms:
            when: cst.BaseExpression | None = None
            if hoist_all:
                when = _ALWAYS if not tests else _not(_any(tests))
            tests.append(self.lazy(arm.test, when, before, arm.test))
        rebuilt: cst.If | cst.Else | None = None
        if last_else is not None:
            rebuilt = self._keep(last_else, last_else.with_changes(body=self.suite(last_else.body)))
        for arm, test in reversed(list(zip(arms, tests))):
            rebuilt = self._keep(arm, arm.with_changes(test=test, body=self.suite(arm.body), orelse=rebuilt))
        assert isinstance(rebuilt, cst.If)
        return before + [rebuilt]

    def lazy(self, test: cst.BaseExpression, when: cst.BaseExpression | None, before: list[cst.BaseStatement],
             origin: cst.CSTNode) -> cst.BaseExpression:
        """`test`, its step calls computed by statements added to `before` only when Python calls them:
        when `when` holds (None: wherever the test stands, so a call outside and/or stays in place)."""
        if not calls_any(test, self.steps):
            return test
        if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
            return self._keep(test, test.with_changes(expression=self.lazy(test.expression, when, before, origin)))
        if isinstance(test, cst.BooleanOperation):
            left = self.lazy(test.left, when, before, origin)
            # the right side is evaluated only when the left one does not decide
            decides = left if isinstance(test.operator, cst.And) else _not(left)
            right_when = decides if when is None or when is _ALWAYS else _and(when, decides)
            right = self.lazy(test.right, right_when, before, origin)
            return self._keep(test, test.with_changes(left=left, right=right))
        if when is None:
            return test
        name = self._name(test)
        computed = self._assign(name, cst.Call(cst.Name("bool"), [cst.Arg(test)]), origin)
        if when is _ALWAYS:
            before.append(computed)
        else:
            skipped = self._assign(name, cst.Name("False"), origin)
            made = cst.If(test=when, body=cst.IndentedBlock([computed]), orelse=cst.Else(cst.IndentedBlock([skipped])))
            before.append(self._keep(origin, made))
        return self._keep(origin, cst.Name(name))

    def _name(self, test: cst.BaseExpression) -> str:
        """A fresh name after the first step the test calls: `is_good_holds`."""
        return unique_name(f"{next(_callees(test, self.steps), 'test')}_holds", self.taken)

    def _assign(self, name: str, value: cst.BaseExpression, origin: cst.CSTNode) -> cst.SimpleStatementLine:
        small = cst.Assign([cst.AssignTarget(cst.Name(name))], value)
        line = cst.SimpleStatementLine([small])
        self.positions[line] = self.positions[small] = self.positions.get(origin)
        return line

    def _keep(self, old: cst.CSTNode, new: cst.CSTNode):
        self.positions[new] = self.positions.get(old)
        return new


def _not(test: cst.BaseExpression) -> cst.BaseExpression:
    return cst.UnaryOperation(cst.Not(), grouped(test))


def _and(left: cst.BaseExpression, right: cst.BaseExpression) -> cst.BaseExpression:
    return cst.BooleanOperation(grouped(left), cst.And(), grouped(right))


def _any(tests: list[cst.BaseExpression]) -> cst.BaseExpression:
    joined = grouped(tests[0])
    for test in tests[1:]:
        joined = cst.BooleanOperation(joined, cst.Or(), grouped(test))
    return joined


def _callees(node: cst.CSTNode, steps: set[str]):
    found: list[str] = []

    class Calls(cst.CSTVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            if isinstance(call.func, cst.Name) and call.func.value in steps:
                found.append(call.func.value)

    node.visit(Calls())
    return iter(found)


def lazy_tests(statements: Sequence[cst.BaseStatement], steps: set[str], positions: dict) -> list[cst.BaseStatement]:
    """The statements with every step call in an if's tests made to run only when Python runs it."""
    return _Rewriter(steps, names_in(statements) | steps, positions).block(statements)
