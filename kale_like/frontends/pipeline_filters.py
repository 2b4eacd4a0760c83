"""Loops that filter, rewritten in the source as the loop over the items that pass the filter.

`for x in xs:` whose whole body is `if test:` (no `else`), and `[step(x) for x in xs if test]`, run
the step for the items that pass. KFP cannot collect from a task that may not run in an
iteration, but the same program is a loop over `[x for x in xs if test]`: that list is a pure
expression (computed by a generated step, see pipeline_expressions.py), and the loop body is the
if's body. The rewrite is made on the libcst tree before the body is compiled, keeping the source
positions of the nodes it replaces (`positions`) so errors point at the user's line.

Two more shapes are the same program written as such loops:

- an `if`/`elif`/`else` whose branches each collect into lists of their own is one filtering loop
  per branch, each over the items that reach it (`not t0 and t1` for the first `elif`), every list
  in Python's order;
- a filter that is a step call (`if check(x):`, `[score(x) for x in xs if check(x)]`) first collects
  the call's answers in a loop of their own, `check_results = [check(x) for x in xs]`, then loops
  over `[x for x, keep in zip(xs, check_results) if keep]`: each step runs once an item, as in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import libcst as cst

from kale_like.frontends.pipeline_expressions import PositionKeeping, calls_any, grouped, if_arms, names_in
from kale_like.graph.model import unique_name


_Made = TypeVar("_Made", bound=cst.CSTNode)


def filtered_loops(statements: Sequence[cst.BaseStatement], steps: set[str],
                   positions: dict) -> Sequence[cst.BaseStatement]:
    """The statements with each filtering loop (and comprehension of calls to `steps`) rewritten."""
    rewriter = _Filters(steps, positions, names_in(statements) | steps)
    result: list[cst.BaseStatement] = []
    for statement in statements:
        made = statement.visit(rewriter)
        result += list(made.nodes) if isinstance(made, cst.FlattenSentinel) else [made]  # type: ignore[list-item]
    return result


class _Filters(PositionKeeping):
    def __init__(self, steps: set[str], positions: dict, taken: set[str]):
        super().__init__(positions)
        self.steps = steps
        self.taken = taken
        # per simple statement being rewritten (innermost last): the statements to put before it
        self.statements: list[list[cst.BaseStatement]] = []

    def leave_For(self, original: cst.For, updated: cst.For) -> cst.For | cst.FlattenSentinel[cst.BaseStatement]:
        body = list(getattr(updated.body, "body", ()))
        if updated.orelse is not None or updated.asynchronous is not None or len(body) != 1:
            return updated
        test = body[0]
        if not isinstance(test, cst.If) or not _names_only(updated.target) or not _appends(test.body):
            return updated  # an if in a loop that collects nothing compiles as it is (a KFP If per iteration)
        if test.orelse is not None:
            return self._branches(original, updated, test)
        if not self._calls_step(test.test):
            return self._keep(original, updated.with_changes(
                iter=self._kept(updated.target, updated.iter, [cst.CompIf(test.test)], original.iter), body=test.body))
        asked = self._asked(updated.target, updated.iter, test.test, original)
        if asked is None:
            return updated
        answers, keep = asked
        result = updated.with_changes(iter=keep, body=test.body)
        return cst.FlattenSentinel([answers, self._keep(original, result)])

    def leave_ListComp(self, original: cst.ListComp, updated: cst.ListComp) -> cst.ListComp:
        for_in = updated.for_in
        call = updated.elt
        if not for_in.ifs or for_in.inner_for_in is not None or not _names_only(for_in.target) \
                or not self._calls_step(call):
            return updated
        if any(self._calls_step(condition.test) for condition in for_in.ifs):
            # `[step(x) for x in xs if check(x)]` in a statement: check's answers are collected by a
            # statement before it, and the comprehension runs over the items they keep
            asked = self._asked(for_in.target, for_in.iter, for_in.ifs[0].test, original) \
                if len(for_in.ifs) == 1 and self.statements else None
            if asked is None:
                return updated
            answers, keep = asked
            self.statements[-1].append(answers)
            items = keep
        else:
            items = self._kept(for_in.target, for_in.iter, list(for_in.ifs), original.for_in.iter)
        result = updated.with_changes(for_in=for_in.with_changes(iter=items, ifs=[]))
        self.positions[result] = self.positions.get(original)
        return result

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> bool:
        self.statements.append([])
        return True

    def leave_SimpleStatementLine(self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine
                                  ) -> cst.SimpleStatementLine | cst.FlattenSentinel[cst.BaseStatement]:
        """The statement, after the statements collecting the answers its filters need (leave_ListComp)."""
        before = self.statements.pop()
        if not before:
            return updated
        return cst.FlattenSentinel([*before, self._keep(original, updated)])

    def _asked(self, target: cst.BaseAssignTargetExpression, items: cst.BaseExpression, test: cst.BaseExpression,
               where: cst.CSTNode) -> tuple[cst.SimpleStatementLine, cst.ListComp] | None:
        """For a filter that is one step call (or `not` one), maybe after a pure test and `and`
        (`x != 0 and check(x)`: the call is made for the items that pass the test, as in Python): the
        statement collecting its answers, an item at a time, and the items whose answer keeps them."""
        if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.And) \
                and not self._calls_step(test.left):
            return self._asked(target, self._kept(target, items, [cst.CompIf(test.left)], where), test.right, where)
        negated = isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not)
        call = test.expression if isinstance(test, cst.UnaryOperation) and negated else test
        if not isinstance(call, cst.Call) or not isinstance(call.func, cst.Name) or call.func.value not in self.steps \
                or any(self._calls_step(argument.value) for argument in call.args):
            return None
        name = unique_name(f"{call.func.value}_results", self.taken)
        asking = cst.ListComp(elt=call, for_in=cst.CompFor(target=target, iter=items))
        assign = cst.Assign([cst.AssignTarget(cst.Name(name))], asking)
        answers = cst.SimpleStatementLine([assign])
        for node in (asking, assign, answers):
            self.positions[node] = self.positions.get(where)
        keep = cst.Name(unique_name("keep", self.taken))
        paired = cst.Tuple([cst.Element(grouped(target)), cst.Element(keep)], lpar=[], rpar=[])
        test_kept: cst.BaseExpression = cst.UnaryOperation(cst.Not(), keep) if negated else keep
        zipped = cst.Call(cst.Name("zip"), [cst.Arg(items), cst.Arg(cst.Name(name))])
        kept = cst.ListComp(elt=grouped(target), for_in=cst.CompFor(target=paired, iter=zipped,
                                                                     ifs=[cst.CompIf(test_kept)]))
        self.positions[kept] = self.positions.get(where)
        return answers, kept

    def _left(self, kept: cst.ListComp) -> cst.ListComp:
        """The items `_asked` did not keep: the same pairs, the answer's test negated."""
        condition = kept.for_in.ifs[0].test
        flipped = condition.expression if isinstance(condition, cst.UnaryOperation) \
            else cst.UnaryOperation(cst.Not(), condition)
        left = kept.with_changes(for_in=kept.for_in.with_changes(ifs=[cst.CompIf(flipped)]))
        self.positions[left] = self.positions.get(kept)
        return left

    def _branches(self, original: cst.For, updated: cst.For, test: cst.If
                  ) -> cst.For | cst.FlattenSentinel[cst.BaseStatement]:
        """An if/elif/else in a loop whose branches collect into lists of their own: a loop per branch."""
        arms = if_arms(test)
        collectors = [_appended(body) for _, body in arms]
        if any(not names for names in collectors) \
                or sum(len(names) for names in collectors) != len(set().union(*collectors)):
            return updated  # a list collected by two branches would take Python's interleaving: refused later
        if any(self._calls_step(t) for t, _ in arms if t is not None):
            return self._asked_branches(original, updated, arms)
        loops: list[cst.BaseStatement] = []
        earlier: list[cst.BaseExpression] = []
        for arm_test, body in arms:
            passes: list[cst.BaseExpression] = [cst.UnaryOperation(cst.Not(), grouped(t)) for t in earlier]
            if arm_test is not None:
                passes.append(grouped(arm_test))
                earlier.append(arm_test)
            condition: cst.BaseExpression = passes[0]
            for more in passes[1:]:
                condition = cst.BooleanOperation(condition, cst.And(), more)
            items = self._kept(updated.target, updated.iter, [cst.CompIf(condition)], original.iter)
            loops.append(self._keep(original, updated.with_changes(iter=items, body=body)))
        return cst.FlattenSentinel(loops)

    def _asked_branches(self, original: cst.For, updated: cst.For,
                        arms: list[tuple[cst.BaseExpression | None, cst.BaseSuite]]
                        ) -> cst.For | cst.FlattenSentinel[cst.BaseStatement]:
        """Branches whose tests call a step (`elif is_big(n):`): each test is asked only of the items no
        earlier test took, as in Python; the items it keeps go to its branch's loop, the others on."""
        remaining: cst.BaseExpression = updated.iter
        answers: list[cst.BaseStatement] = []
        loops: list[cst.BaseStatement] = []
        for arm_test, body in arms:
            if arm_test is None:
                items = remaining
            elif not self._calls_step(arm_test):
                items = self._kept(updated.target, remaining, [cst.CompIf(grouped(arm_test))], original.iter)
                remaining = self._kept(updated.target, remaining,
                                       [cst.CompIf(cst.UnaryOperation(cst.Not(), grouped(arm_test)))], original.iter)
            else:
                if isinstance(arm_test, cst.BooleanOperation):
                    return updated  # (`t and check(x)` in an elif: its items left over would lose their order)
                asked = self._asked(updated.target, remaining, arm_test, original)
                if asked is None:
                    return updated
                statement, items = asked
                answers.append(statement)
                remaining = self._left(items)
            loops.append(self._keep(original, updated.with_changes(iter=items, body=body)))
        return cst.FlattenSentinel(answers + loops)

    def _keep(self, original: cst.CSTNode, made: _Made) -> _Made:
        self.positions[made] = self.positions.get(original)
        return made

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


def _appended(suite: cst.BaseSuite) -> set[str]:
    """The names of the lists the block collects into (`name.append(...)`)."""
    names: set[str] = set()

    class Find(cst.CSTVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            if isinstance(call.func, cst.Attribute) and call.func.attr.value == "append" \
                    and isinstance(call.func.value, cst.Name):
                names.add(call.func.value.value)

    suite.visit(Find())
    return names

