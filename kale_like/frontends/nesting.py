"""Code nested too deeply to analyse, found before libcst's parser sees it.

libcst's native parser crashes the process (a stack overflow: a segmentation fault, no message) on
a few thousand nested brackets, takes quadratic time on long operator chains (`a + b + c ...`:
10,000 terms run for minutes), and its tree visitors hit Python's recursion limit from a few hundred
levels on (a chain of 400 terms, 150 nested lists). Python's own parser has none of these problems,
so the code is parsed with it first, and an expression tree deeper than `MOST_LEVELS` is refused
with its line. Real code stays far below: a hundred levels of brackets, operators, calls or
`elif`s in one statement is generated code, which is better split into several statements.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize

MOST_LEVELS = 100
_OPENING, _CLOSING = "([{", ")]}"
_LAYOUT = {tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING}


def nesting_problem(code: str) -> tuple[str, int, int] | None:
    """(message, line, column) when `code` nests deeper than kale_like can analyse; None otherwise
    (also for a syntax error, which the caller reports with Python's message)."""
    try:
        tree = ast.parse(code)
    except SyntaxError as error:
        if "too many nested" not in str(error.msg):
            return None
        return _message(), *_deepest_bracket(code)
    except (RecursionError, MemoryError):
        return _message(), *_deepest_bracket(code)
    except ValueError:  # a NUL character: the caller's own checks report it
        return None
    level: list[ast.AST] = [tree]  # the tree one level at a time: no recursion, no per-node bookkeeping
    for _ in range(MOST_LEVELS):
        level = [child for node in level for child in ast.iter_child_nodes(node)]
        if not level:
            break
    else:
        located = [node for node in level if hasattr(node, "lineno")] or [tree]
        first = min(located, key=lambda node: (getattr(node, "lineno", 1), getattr(node, "col_offset", 0)))
        return _message(), getattr(first, "lineno", 1), getattr(first, "col_offset", 0) + 1
    return _implicit_concatenation(code)


# adjacent string literals ("a" "b" ...): one string to Python, a chain of nested nodes to libcst
_ADJACENT_STRINGS = re.compile(r"(?:(?>[rRbBuUfF]{0,2}(?:\"[^\"\\\n]*+\"|'[^'\\\n]*+'))\s*+){%d}" % (MOST_LEVELS + 1))


def _implicit_concatenation(code: str) -> tuple[str, int, int] | None:
    if code.count('"') + code.count("'") <= 2 * MOST_LEVELS:
        return None
    match = _ADJACENT_STRINGS.search(code)
    if match is None:
        return None
    line = code.count("\n", 0, match.start()) + 1
    return _message(), line, match.start() - (code.rfind("\n", 0, match.start()) + 1) + 1


def _message() -> str:
    return (f"too deeply nested: one statement holds more than {MOST_LEVELS} levels of brackets, operators, "
            "calls or elif branches, which kale_like cannot analyse; split it into smaller statements "
            "(e.g. build a long sum or list in a loop)")


def _deepest_bracket(code: str) -> tuple[int, int]:
    """Where the code first passes MOST_LEVELS brackets deep, or the statement holding more than
    MOST_LEVELS operators (Python's tokenizer: strings and comments are skipped); the start when
    the code does not tokenize."""
    depth, operators, statement = 0, 0, None
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type == tokenize.NEWLINE:
                operators, statement = 0, None
            elif statement is None and token.type not in _LAYOUT:
                statement = (token.start[0], token.start[1] + 1)
            if token.type == tokenize.OP:
                depth += (token.string in _OPENING) - (token.string in _CLOSING)
                operators += 1
                if depth > MOST_LEVELS:
                    return token.start[0], token.start[1] + 1
                if operators > MOST_LEVELS and statement is not None:
                    return statement
    except (tokenize.TokenError, SyntaxError, RecursionError, MemoryError):
        pass
    return 1, 1
