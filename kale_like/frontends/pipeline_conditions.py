"""Conditions in a `@pipeline` body: `if`/`elif`/`else`, and a value every branch assigns (OneOf).

A test made of comparisons, truth tests, `not`, `and` and `or` over the body's values is kept as a
`Test` of the graph; whether KFP can state it, or a generated step must compute it, is the
lowering's choice (`kale_like/lowering/kfp_conditions.py`). Any other pure test (`len(xs) > 2`,
`metrics["auc"] > 0.9`, `x in allowed`) is an `Expression` computing its bool, which the branch
tests; an `elif`'s computes it only when no earlier test holds, as Python does.
"""

from __future__ import annotations

import libcst as cst

from kale_like.frontends.pipeline_body_base import _COMPARE, BodyBase, _NotNative
from kale_like.frontends.pipeline_expressions import if_arms
from kale_like.frontends.pipeline_values import PRIMITIVES, Partial, Scope, Value, literal
from kale_like.graph.conditions import ConditionError, normalize
from kale_like.graph.model import Branch, Comparison, Condition, Node, Ref, Test, TestOp


class ConditionCompiler(BodyBase):
    """Compiles if/elif/else chains and their tests."""

    def condition(self, node: cst.If, scope: Scope) -> list[Node]:
        condition_id = self.state.next_id("if")
        arms = if_arms(node)
        saved = dict(self.env.names)
        branches: list[Branch] = []
        bound_per_branch = []
        helpers: list[Node] = []  # steps the tests need, run before the if
        for index, (test_node, body) in enumerate(arms):
            earlier = tuple(b.test for b in branches if b.test is not None)
            test = self.test(test_node, scope, earlier) if test_node is not None else None
            helpers += self._take_pending()
            inner: Scope = scope + (("branch", condition_id, str(index)),)
            before = dict(self.env.names)
            nodes = self.block(body.body, inner)
            made = {k: v for k, v in self.env.names.items() if before.get(k) is not v and isinstance(v, Value)}
            bound_per_branch.append(made)
            self.env.names = dict(before)
            branches.append(Branch(test, tuple(nodes)))
        self.env.names = saved
        self._merge_branches(node, condition_id, branches, bound_per_branch, scope)
        return helpers + [Condition(condition_id, tuple(branches), self.module.where(node))]

    def _merge_branches(self, node, condition_id: str, branches, bound_per_branch, scope: Scope) -> None:
        """A name every branch of an if/elif/else assigns is, after the if, whichever value the branch that
        ran gave it: a OneOf of the values, in branch order (lowering/branch_values.py hands on those no
        task of the branch made)."""
        has_else = branches[-1].test is None
        names = set().union(*(b.keys() for b in bound_per_branch)) if bound_per_branch else set()
        line = self.module.where(node).line or 0
        for name in sorted(names):
            values = [b.get(name) for b in bound_per_branch]
            if not has_else or any(v is None for v in values):
                self.env.names[name] = Partial(line)
                continue
            types = {self._known_type(v) for v in values}
            if len(types) != 1:
                self.env.names[name] = Partial(line, "its branches give it values of different types "
                                                     f"({', '.join(sorted(types))}), which KFP's OneOf refuses")
                continue
            kind = types.pop()
            options = tuple(v.ref for v in values)
            self.env.names[name] = Value(Ref("oneof", condition_id, name, options=options), kind, scope, line)

    def test(self, node: cst.BaseExpression, scope: Scope, earlier: tuple[Test, ...] = ()) -> Test:
        """An if's test (`earlier`: the tests of the chain's branches before it). Comparisons, truth
        tests, not/and/or over the body's values are a `Test`; any other pure test is computed by an
        `Expression` returning its bool (`metrics["auc"] > 0.9`, `len(xs) > 2`), which the branch tests."""
        if self._native_shape(node):
            mark = len(self._pending_nodes)
            try:
                test = self._test(node, scope)
            except _NotNative:
                del self._pending_nodes[mark:]
            else:
                try:
                    normalize(test, self._type_for_condition)
                except ConditionError as error:
                    if error.pointless:  # valid Python, but surely a mistake
                        self.refuse(node, str(error), "compare with a value of the same type (or compute the "
                                                      "decision inside a step and return a bool)")
                return test
        return self._expression_test(node, scope, earlier)

    def _expression_test(self, node: cst.BaseExpression, scope: Scope, earlier: tuple[Test, ...]) -> Test:
        """The test computed in Python by an expression `test` (once no earlier test holds); the branch
        tests its bool."""
        value = self.expression(node, scope, "test", as_bool=True, unless=earlier)
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

    def _test(self, node: cst.BaseExpression, scope: Scope) -> Test:
        if isinstance(node, cst.BooleanOperation):
            op: TestOp = "and" if isinstance(node.operator, cst.And) else "or"
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
        return Test("truth", (value.ref,))

    def _comparison(self, left_node, target: cst.ComparisonTarget, scope: Scope) -> Test:
        operator = type(target.operator)
        left = self.value(left_node, scope)
        if operator in (cst.In, cst.NotIn):
            ok, options = literal(target.comparator)
            if not ok or not isinstance(options, (list, tuple, set)) or not options:
                raise _NotNative  # `x in allowed`, `key in config`: a generated step tests it
            options = _matchable(options, self._type_for_condition(left.ref))
            if not options:
                self.refuse(target, f"no value in the list can equal a {self._type_for_condition(left.ref)}, so "
                                    "this test never changes", "compare with values of the same type")
            equal: Comparison = "==" if operator is cst.In else "!="
            tests = tuple(Test(equal, (left.ref, Ref("constant", value=o))) for o in sorted(options, key=repr))
            return tests[0] if len(tests) == 1 else Test("or" if operator is cst.In else "and", tests=tests)
        if operator not in _COMPARE:
            raise _NotNative  # `r is None`, `flag is True`: a generated step tests it, as Python does
        right = self.value(target.comparator, scope)
        return Test(_COMPARE[operator], (left.ref, right.ref))


def _matchable(options, kind: str) -> list:
    """The options of `x in [...]` that can equal an x of type `kind` (Python drops the others)."""
    numeric = kind in ("int", "float", "bool")
    return [o for o in options
            if (numeric and isinstance(o, (int, float)) and (kind != "int" or float(o).is_integer()))
            or (kind == "str" and isinstance(o, str)) or kind not in PRIMITIVES]  # (of unknown type: any may)
