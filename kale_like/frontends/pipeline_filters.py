"""Loops that filter, rewritten in the source as the loop over the items that pass the filter.

`for x in xs:` whose whole body is `if test:` (no `else`), and `[step(x) for x in xs if test]`, run
the step for the items that pass. KFP cannot collect from a task that may not run in an
iteration, but the same program is a loop over `[x for x in xs if test]`: that list is a pure
expression (computed by a generated step, see pipeline_expressions.py), and the loop body is the
if's body. The rewrite is made on the libcst tree before the body is compiled, keeping the source
positions of the nodes it replaces (`positions`) so errors point at the user's line.
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from kale_like.frontends.pipeline_expressions import PositionKeeping, calls_any


def filtered_loops(statements: Sequence[cst.BaseStatement], steps: set[str],
                   positions: dict) -> Sequence[cst.BaseStatement]:
    """The statements with each filtering loop (and comprehension of calls to `steps`) rewritten."""
    rewriter = _Filters(steps, positions)
    return [statement.visit(rewriter) for statement in statements]  # type: ignore[misc]


class _Filters(PositionKeeping):
    def __init__(self, steps: set[str], positions: dict):
        super().__init__(positions)
        self.steps = steps

    def leave_For(self, original: cst.For, updated: cst.For) -> cst.For:
        body = list(getattr(updated.body, "body", ()))
        if updated.orelse is not None or updated.asynchronous is not None or len(body) != 1:
            return updated
        test = body[0]
        if not isinstance(test, cst.If) or test.orelse is not None or not _names_only(updated.target) \
                or not _appends(test.body) or self._calls_step(test.test):
            return updated  # an if in a loop that collects nothing compiles as it is (a KFP If per iteration)
        items = self._kept(updated.target, updated.iter, [cst.CompIf(test.test)], original.iter)
        result = updated.with_changes(iter=items, body=test.body)
        self.positions[result] = self.positions.get(original)
        return result

    def leave_ListComp(self, original: cst.ListComp, updated: cst.ListComp) -> cst.ListComp:
        for_in = updated.for_in
        call = updated.elt
        if not for_in.ifs or for_in.inner_for_in is not None or not _names_only(for_in.target) \
                or not self._calls_step(call) or any(self._calls_step(condition.test) for condition in for_in.ifs):
            return updated
        items = self._kept(for_in.target, for_in.iter, list(for_in.ifs), original.for_in.iter)
        result = updated.with_changes(for_in=for_in.with_changes(iter=items, ifs=[]))
        self.positions[result] = self.positions.get(original)
        return result

    def _calls_step(self, node: cst.CSTNode) -> bool:
        return calls_any(node, self.steps)

    def _kept(self, target: cst.BaseAssignTargetExpression, items: cst.BaseExpression, ifs: list[cst.CompIf],
              where: cst.CSTNode) -> cst.ListComp:
        """`[target for target in items if test]`: the items that pass the filter."""
        element = target if not isinstance(target, cst.Tuple) else target.with_changes(lpar=[cst.LeftParen()],
                                                                                        rpar=[cst.RightParen()])
        kept = cst.ListComp(elt=element, for_in=cst.CompFor(target=target, iter=items, ifs=ifs))
        self.positions[kept] = self.positions.get(where)
        return kept


def _names_only(target: cst.BaseAssignTargetExpression) -> bool:
    if isinstance(target, cst.Name):
        return True
    return isinstance(target, (cst.Tuple, cst.List)) and all(isinstance(e.value, cst.Name) for e in target.elements)


def _appends(suite: cst.BaseSuite) -> bool:
    """The block collects: a statement of it calls `.append(...)`."""
    class Find(cst.CSTVisitor):
        found = False

        def visit_Call(self, call: cst.Call) -> None:
            if isinstance(call.func, cst.Attribute) and call.func.attr.value == "append":
                Find.found = True

    suite.visit(Find())
    return Find.found
