"""`name = a if test else b` with a step call in a branch, rewritten in the source as an if statement.

Python evaluates only the branch the test picks, so a step called in the other one must not run;
`if test: name = a` / `else: name = b` is the same program, which the body compiler compiles as KFP
If/Else and a OneOf. The rewrite is made on the libcst tree before the body is compiled, keeping
the source positions of the nodes it replaces (`positions`).
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from kale_like.frontends.pipeline_expressions import calls_any


def choices_as_ifs(statements: Sequence[cst.BaseStatement], steps: set[str],
                   positions: dict) -> list[cst.BaseStatement]:
    """The statements, each `name = a if test else b` whose branches call one of `steps` made an if."""
    result: list[cst.BaseStatement] = []
    for statement in statements:
        choice = _choice(statement, steps)
        if choice is None:
            result.append(_inside(statement, steps, positions))
            continue
        target, expression = choice
        branch = [cst.SimpleStatementLine([cst.Assign([cst.AssignTarget(target)], value)])
                  for value in (expression.body, expression.orelse)]
        for line, value in zip(branch, (expression.body, expression.orelse)):
            positions[line] = positions[line.body[0]] = positions.get(value)
        rewritten = cst.If(test=expression.test, body=cst.IndentedBlock([branch[0]]),
                           orelse=cst.Else(body=cst.IndentedBlock([branch[1]])))
        positions[rewritten] = positions.get(statement)
        result.append(rewritten)
    return result


def _inside(statement: cst.BaseStatement, steps: set[str], positions: dict) -> cst.BaseStatement:
    """The statement with the blocks of its loops and ifs rewritten too."""
    if not isinstance(statement, (cst.For, cst.If)):
        return statement
    changed = statement.with_changes(body=_block(statement.body, steps, positions))
    if isinstance(statement, cst.If) and statement.orelse is not None:
        orelse = statement.orelse
        rewritten = _inside(orelse, steps, positions) if isinstance(orelse, cst.If) else \
            orelse.with_changes(body=_block(orelse.body, steps, positions))
        changed = changed.with_changes(orelse=rewritten)
    positions[changed] = positions.get(statement)
    return changed


def _block(suite: cst.BaseSuite, steps: set[str], positions: dict) -> cst.BaseSuite:
    if isinstance(suite, cst.IndentedBlock):
        return suite.with_changes(body=choices_as_ifs(suite.body, steps, positions))
    return suite


def _choice(statement: cst.BaseStatement, steps: set[str]) -> tuple[cst.Name, cst.IfExp] | None:
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    small = statement.body[0]
    if not isinstance(small, cst.Assign) or len(small.targets) != 1 or not isinstance(small.targets[0].target, cst.Name):
        return None
    value = small.value
    if not isinstance(value, cst.IfExp) or not (calls_any(value.body, steps) or calls_any(value.orelse, steps)):
        return None
    return small.targets[0].target, value
