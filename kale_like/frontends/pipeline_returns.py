"""Returns inside branches, rewritten in the source as Python reads them, before the body is compiled.

KFP has no early return: a pipeline's output is one task's output (or a OneOf of several). A
guard clause (`if q < low: return low`, then the rest of the body) is the same program as an if
whose else holds the rest; an if/elif/else whose every branch ends with `return X` is the same as
each branch assigning X to one name, returned after the if. This pass makes those rewrites on the
libcst tree (a source-to-source step, as LibCST's codemods are), keeping each rewritten node's
source position so errors still point at the user's line; the body compiler then sees only shapes
it already compiles (a value assigned in every branch is a OneOf).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import libcst as cst

from kale_like.frontends.pipeline_expressions import PositionKeeping
from kale_like.graph.model import unique_name


def returns_as_one_value(statements: Sequence[cst.BaseStatement], positions: dict) -> Sequence[cst.BaseStatement]:
    """Returns in branches, read as Python reads them: a guard clause (`if q < low: return q`, then
    the rest of the body) makes the rest its `else`; when every branch of the last if/elif/else ends
    with `return X`, each branch assigns X to one name and the body returns that name after the if
    (a OneOf). Anything else is left as written (and refused where a return is not last). The
    rewritten nodes keep the source positions (`positions`) of the nodes they replace."""
    body = _guards_as_else(statements, positions)
    last = body[-1] if body else None
    if not isinstance(last, cst.If) or not _every_branch_returns(last) or _last_branch(last).orelse is None:
        return body
    finals = sum(1 for _ in _final_returns(last))
    if finals != _count_returns(last):
        return body  # a return before the end of a branch: left for the compiler to refuse
    name = unique_name("result", {n for statement in body for n in assigned_names(statement)})
    done = cst.SimpleStatementLine([cst.Return(cst.Name(name))])
    positions[done] = positions.get(last)
    return body[:-1] + [_returns_assigned(last, name, positions), done]


def _guards_as_else(statements: Sequence[cst.BaseStatement], positions: dict) -> list[cst.BaseStatement]:
    """`if c: return x` followed by more statements: those statements become the if's else (an elif
    when they start with the next guard)."""
    body = list(statements)
    for index, statement in enumerate(body):
        if isinstance(statement, cst.If) and index < len(body) - 1 and _every_branch_returns(statement) \
                and _last_branch(statement).orelse is None:
            rest = _guards_as_else(body[index + 1:], positions)
            return body[:index] + [_with_else(statement, rest, positions)]
    return body


def _final_returns(node: cst.If) -> Iterator[cst.CSTNode]:
    for suite in _branches(node):
        last = list(getattr(suite, "body", ()))[-1]
        if isinstance(last, cst.If):
            yield from _final_returns(last)
        else:
            yield last


def _branches(node: cst.If) -> list[cst.BaseSuite]:
    suites: list[cst.BaseSuite] = []
    current: cst.If | cst.Else | None = node
    while current is not None:
        suites.append(current.body)
        current = current.orelse if isinstance(current, cst.If) else None
    return suites


def _last_branch(node: cst.If) -> cst.If:
    while isinstance(node.orelse, cst.If):
        node = node.orelse
    return node


def _ends_with_return(suite: cst.BaseSuite) -> bool:
    statements = list(getattr(suite, "body", ()))
    if not statements:
        return False
    last = statements[-1]
    if isinstance(last, cst.SimpleStatementLine):
        final = last.body[-1]
        return isinstance(final, cst.Return) and final.value is not None
    return isinstance(last, cst.If) and _every_branch_returns(last) and _last_branch(last).orelse is not None


def _every_branch_returns(node: cst.If) -> bool:
    return all(_ends_with_return(suite) for suite in _branches(node))


def _with_else(node: cst.If, rest: Sequence[cst.BaseStatement], positions: dict) -> cst.If:
    if isinstance(node.orelse, cst.If):
        changed = node.with_changes(orelse=_with_else(node.orelse, rest, positions))
    elif len(rest) == 1 and isinstance(rest[0], cst.If):  # the next guard: an elif, not an if nested in an else
        changed = node.with_changes(orelse=rest[0])
    else:
        changed = node.with_changes(orelse=cst.Else(body=cst.IndentedBlock(body=list(rest))))
    positions[changed] = positions.get(node)
    return changed


def _returns_assigned(node: cst.If, name: str, positions: dict) -> cst.If:
    """The if chain with each branch's final `return X` made `name = X` (positions kept)."""
    class Assign(PositionKeeping):
        def leave_Return(self, original: cst.Return, updated: cst.Return) -> cst.Assign:
            assert updated.value is not None  # _ends_with_return checked it
            return cst.Assign([cst.AssignTarget(cst.Name(name))], updated.value)

    result = node.visit(Assign(positions))
    assert isinstance(result, cst.If)
    return result



def assigned_names(statement: cst.CSTNode) -> list[str]:
    """Names a statement assigns, in any of its blocks (a refused one leaves them unknown)."""
    names: list[str] = []

    class Targets(cst.CSTVisitor):
        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            self.add(node.target)

        def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
            self.add(node.target)

        @staticmethod
        def add(target: cst.BaseExpression) -> None:
            parts = [e.value for e in target.elements] if isinstance(target, (cst.Tuple, cst.List)) else [target]
            names.extend(part.value for part in parts if isinstance(part, cst.Name))

    statement.visit(Targets())
    return names


class _Returns(cst.CSTVisitor):
    """Counts the return statements of a tree (libcst.matchers would do it, but takes ~0.2 s to import)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def visit_Return(self, node: cst.Return) -> None:
        self.count += 1


def _count_returns(tree: cst.CSTNode) -> int:
    counter = _Returns()
    tree.visit(counter)
    return counter.count
