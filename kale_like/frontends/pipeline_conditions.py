"""Conditions in a `@pipeline` body: `if`/`elif`/`else`, and a value every branch assigns (OneOf).

A test KFP's condition language states the way Python means it compiles to that condition (see
`kale_like/graph/conditions.py`); any other pure test is made by a generated step returning its bool.
"""

from __future__ import annotations

from dataclasses import replace

import libcst as cst

from kale_like.frontends.pipeline_body_base import _COMPARE, BodyBase, _NotNative, _text
from kale_like.frontends.pipeline_values import PRIMITIVES, Partial, Scope, Value, literal
from kale_like.graph.conditions import ConditionError, normalize
from kale_like.graph.model import ANY, Branch, Condition, Expression, Input, Node, Output, Ref, Test


class ConditionCompiler(BodyBase):
    """Compiles if/elif/else chains and their tests."""

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
                made = self.computed(node, f"{name} = value\n", {"value": value}, (Output(name, value.type),),
                                     f"{name}_value")
                bound[name] = Value(Ref("task", made.name, name), value.type, inner, where.line or 0)
                added.append(made)
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
                if error.pointless:  # valid Python, but surely a mistake
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
        made = Expression(self.state.unique("compare"), f"result = {expression}\n",
                          tuple(Input(side, ref, self._type_for_condition(ref)) for side, ref in inputs),
                          (Output("result", "bool"),), self.module.where(node))
        self.state.output_types[(made.name, "result")] = "bool"
        self._pending_nodes.append(made)
        return Test("==", (Ref("task", made.name, "result"), Ref("constant", value=True)))

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


def _assigned_in_every_branch(branches: list[Branch], bound_per_branch: list[dict[str, Value]]) -> list[str]:
    """Names an if/elif/else chain with an else assigns in every branch (a OneOf after it)."""
    if not branches or branches[-1].test is not None:
        return []
    names = set.intersection(*(set(bound) for bound in bound_per_branch))
    return sorted(names)


def _simple_tests(branches: list[Branch]) -> bool:
    return all(b.test is None or b.test.op in _COMPARE.values() or b.test.op == "truth" for b in branches)


def _matchable(options, kind: str) -> list:
    """The options of `x in [...]` that can equal an x of type `kind` (Python drops the others)."""
    numeric = kind in ("int", "float", "bool")
    return [o for o in options
            if (numeric and isinstance(o, (int, float)) and (kind != "int" or float(o).is_integer()))
            or (kind == "str" and isinstance(o, str)) or kind == ANY]
