"""The facts of common code (`CodeFacts`), read with Python's own parser instead of libcst.

libcst's scope analysis (`analysis.analyze_module`) costs ~10 ms a code block whatever its size, all
in Python (its parser, a metadata pass, a position pass and a scope pass over a concrete syntax
tree): a 150-step notebook spends 1.5-2 s there, a 2,000-step one ~20 s. This module gets the same
facts from the `ast` tree Python's C parser builds, in one walk that replays libcst's scope
analysis: the same scopes (module, function and lambda, class, comprehension), the same order of
visiting and the same counter that decides whether a binding comes "before" a read (libcst counts
assignment-like statements, not source positions), the same lookup rules (a class body is not
visible from its methods; a read with no earlier binding in its own scope falls back to the
enclosing one), and `analysis._Collector`'s rules for imports, in-place changes (`touches`) and
`+=` at top level. libcst stays the reference and the fallback: `fast_facts` returns None for
anything it does not reproduce with certainty, and the caller then runs libcst. The differential
test (tests/test_fast_facts.py) holds the two to the same answer on every notebook the tests have,
generated notebooks and a list of tricky snippets.

Taken here: imports (`import a as b`, `import a.b`, `from m import x`, `from m import *`),
assignments of every kind but `:=`, `del`, calls, attributes, subscripts and slices, f-strings,
`if`/`for`/`while`/`with`/`try` (and `except*`), `def` and `async def` (decorators, defaults and
annotations are evaluated outside), lambdas, classes, comprehensions, `global`/`nonlocal`, string
annotations that are plain expressions.

Given to libcst (None): the walrus `:=` (libcst binds it in the comprehension it is in, and where a
binding lands in the middle of an expression depends on libcst's order of fields), `match`, `type`
statements and type parameters, string annotations that are not plain expressions (libcst parses
them as code, which may bind names), calls to names imported from `typing` (libcst skips
`TypeVar`'s first argument), identifiers that Python would normalise (NFKC: libcst keeps them as
written), code with `\\r`, form feeds or a byte-order mark, and anything whose f-string positions
Python got wrong.

Where libcst reads in another order than Python runs, two cases follow Python, since Python is
what the user meant: for libcst, `for x in x:` does not read `x` (it binds the target before it
reads the iterable: the step then lacked its input x and failed with NameError), and
`[z for x in a for y in x for z in y]` reads `y` (a comprehension's later `for`s do not see each
other's targets: valid code was refused, "name 'y' is not defined by any earlier step"); and for
libcst `x: int` with no value binds x at module level, where Python only records the annotation
(a step annotating an x an earlier step made lost that input; one annotating an x nobody made
"defined" it, and failed at run time). Code that libcst reads (the walrus, `match`, ...) still
gets libcst's answer there. Elsewhere the fast path keeps libcst's answer, so that a notebook's
graph does not depend on which path analysed a step: `n += 1` in a class body reads a module-level
`n`, and with `import a.b` anywhere in the code (even after it) `a.b.c` reads nothing.

Cost (one core, best of 3 with `time.perf_counter`, facts not kept), on the 364-cell benchmark
notebook (`make_notebooks.write_notebook(path, 364)`, 144 steps), each step's cells joined as a step
runs them: libcst (`check` + `analyze_module`) 10.6 ms a step, `fast_facts` 0.14 ms; with the
checks `analysis._analyzed` runs first (nesting 0.26 ms, Python's compile 0.18 ms) 0.5 ms. A cell
alone: 5.9 ms against 0.07 ms. `notebook_to_graph` of that notebook: 1.73 s to 0.12 s; of a
5,000-cell one (2,036 steps): 23.2 s to 1.4 s. Every step of both took the fast path.
"""

from __future__ import annotations

import ast
import builtins
import functools
import io
import re
import sys
import tokenize
import unicodedata
from collections.abc import Callable
from typing import Any

from kale_like.frontends.analysis import NOTEBOOK_NAMES, CodeFacts


def fast_facts(code: str, python_order: bool = True) -> CodeFacts | None:
    """The facts of `code`, or None when this reading is not sure of them.

    They are libcst's, but for three places where libcst differs from what Python runs
    (`python_order`, see the module's docstring): a `for` reads its iterable before it binds its
    target, a comprehension's later `for`s see the earlier ones' targets and their own in their
    conditions, and `x: int` with no value binds nothing at module or class level.
    `python_order=False` gives libcst's answer there too (the differential test).

    `code` must compile (the caller checks first): its syntax errors are reported elsewhere."""
    if "\r" in code or "\f" in code or "\v" in code or code.startswith("\ufeff"):
        return None  # line and column counting that libcst and Python may not share
    if not code.isascii() and not _identifiers_normalised(code):
        return None
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    try:
        try:
            walker = _Walker(code, tree, dotted=False, python_order=python_order)
            walker.body(tree.body, walker.module)
        except _Dotted:  # walked again, following attribute chains as libcst does for dotted imports
            walker = _Walker(code, tree, dotted=True, python_order=python_order)
            walker.body(tree.body, walker.module)
        return walker.facts()
    except (_Refused, RecursionError):
        return None


class _Refused(Exception):
    """The code uses a construct this reading does not reproduce with certainty."""


class _Dotted(Exception):
    """The code has a dotted import without `as` (`import a.b`), which changes how libcst reads `a.b.c`."""


_MODULE, _FUNCTION, _CLASS, _COMPREHENSION = range(4)
_BUILTIN = object()  # a name found among the builtins


class _Scope:
    """One of libcst's scopes: where names are bound, and its counter of assignment-like statements
    (an assignment is visible to a read in the same scope when its count is lower)."""

    __slots__ = ("kind", "parent", "first", "overwrites", "count")

    def __init__(self, kind: int, parent: _Scope | None) -> None:
        self.kind = kind
        self.parent = parent  # None: the builtins, above the module
        self.first: dict[str, int] = {}  # name -> count at its first binding here
        self.overwrites: dict[str, _Scope] = {}  # `global`/`nonlocal` names -> the scope they bind in
        self.count = 0


def _visible(scope: _Scope | None) -> _Scope | None:
    """The scope itself, or its first enclosing one that is not a class body."""
    while scope is not None and scope.kind == _CLASS:
        scope = scope.parent
    return scope


def _resolve(scope: _Scope | None, name: str) -> _Scope | object | None:
    """The scope whose bindings of `name` a read in `scope` sees (libcst's `_resolve_scope_for_access`)."""
    while scope is not None:
        target = scope.overwrites.get(name)
        if target is not None:
            scope = _visible(target)
            continue
        if name in scope.first:
            return scope
        scope = _visible(scope.parent)
    return _BUILTIN if hasattr(builtins, name) else None


def _bound_anywhere(scope: _Scope | None, name: str) -> bool:
    """Whether `name` is bound in `scope` or a scope it sees, at any point (libcst's `name in scope`)."""
    while scope is not None:
        if name in scope.first:
            return True
        scope = _visible(scope.parent)
    return hasattr(builtins, name)


class _Walker:
    """One walk over the tree, in libcst's order of visiting."""

    def __init__(self, code: str, tree: ast.Module, dotted: bool, python_order: bool) -> None:
        self.code = code
        self.python_order = python_order
        # `import a.b` binds `a.b` besides `a`, and libcst then takes `a.b.c` for a read of the name
        # `a.b`, not of `a`: `dotted` walks note each name that starts a chain of attributes
        self.dotted = dotted
        self.in_attribute = False  # inside a chain of attributes (and not in a call within it)
        self.chains: dict[int, list[str]] = {}  # index in `accesses` -> the chain's dotted names, longest first
        self.module = _Scope(_MODULE, None)
        self.where: dict[str, tuple[int, int]] = {}  # module-level name -> (line, byte column) of its first binding
        self.accesses: list[tuple[_Scope, str, int, int, int]] = []  # scope, name, count, line, byte column
        self.augmented: dict[str, tuple[int, int]] = {}
        self.touched: set[str] = set()
        self.modules: set[str] = set()
        self.star_import = False
        self.depth = 0  # `def`s around the statement being walked
        self._lines: list[bytes] | None = None
        self.typing = _typing_names(tree) if "typing" in code else frozenset()

    # --- the result

    def facts(self) -> CodeFacts:
        reads: dict[str, tuple[int, int]] = {}
        chains = self.chains
        for index, (scope, name, count, line, column) in enumerate(self.accesses):
            if name in NOTEBOOK_NAMES:
                continue
            if chains and index in chains and any(_bound_anywhere(scope, dotted) for dotted in chains[index]):
                continue  # a read of `a.b` (libcst leaves it out of the reads, bound or not)
            found = _resolve(scope, name)
            if found is not None:
                if found is not scope:
                    continue  # bound in an enclosing scope (at any point), or a builtin
                if scope.first[name] < count:
                    continue  # bound earlier in its own scope
                if _resolve(scope.parent, name) is not None:
                    continue  # bound later in its own scope: libcst takes the enclosing binding
            at = (line, column)
            if name not in reads or at < reads[name]:
                reads[name] = at
        for name, at in self.augmented.items():
            bound = self.where.get(name)
            if name not in reads and (bound is None or not bound < at):
                reads[name] = at
        ascii = self.code.isascii()
        return CodeFacts(
            defines=frozenset(name.split(".", 1)[0] for name in self.module.first),
            reads={name: self._character_position(at, ascii) for name, at in sorted(reads.items())},
            touches=frozenset(self.touched & set(reads)),
            modules=frozenset(self.modules),
            star_import=self.star_import,
        )

    def lines(self) -> list[bytes]:
        if self._lines is None:
            self._lines = self.code.encode().split(b"\n")
        return self._lines

    def _character_position(self, at: tuple[int, int], ascii: bool) -> tuple[int, int]:
        """libcst's position: 1-based columns in characters, not bytes."""
        line, column = at
        if ascii:
            return line, column + 1
        return line, len(self.lines()[line - 1][:column].decode()) + 1

    # --- bindings and reads

    def assign(self, scope: _Scope, name: str, at: tuple[int, int] | None) -> None:
        while scope.kind != _MODULE:
            target = scope.overwrites.get(name)
            if target is None:
                break
            scope = _visible(target) or self.module
        if name not in scope.first:
            scope.first[name] = scope.count
        if scope is self.module and at is not None:
            known = self.where.get(name)
            if known is None or at < known:
                self.where[name] = at

    # --- statements

    def body(self, statements: list[ast.stmt], scope: _Scope) -> None:
        for statement in statements:
            handler = _STATEMENTS.get(type(statement))
            if handler is None:
                raise _Refused(type(statement).__name__)
            handler(self, statement, scope)

    def _expression_statement(self, node: ast.Expr | ast.Return, scope: _Scope) -> None:
        if node.value is not None:
            self.expr(node.value, scope)

    def _nothing(self, node: ast.stmt, scope: _Scope) -> None:
        pass

    def _raise(self, node: ast.Raise, scope: _Scope) -> None:
        if node.exc is not None:
            self.expr(node.exc, scope)
        if node.cause is not None:
            self.expr(node.cause, scope)

    def _assert(self, node: ast.Assert, scope: _Scope) -> None:
        self.expr(node.test, scope)
        if node.msg is not None:
            self.expr(node.msg, scope)

    def _assign_statement(self, node: ast.Assign, scope: _Scope) -> None:
        for target in node.targets:
            self.expr(target, scope)
            self.touch(target)
        self.expr(node.value, scope)
        scope.count += 1

    def _annotated(self, node: ast.AnnAssign, scope: _Scope) -> None:
        if (self.python_order and node.value is None and isinstance(node.target, ast.Name)
                and scope.kind in (_MODULE, _CLASS)):  # Python keeps the annotation and binds nothing
            self.annotation(node.annotation, scope)
            scope.count += 1
            return
        self.expr(node.target, scope)  # `x: int` binds x for libcst
        self.annotation(node.annotation, scope)
        if node.value is not None:
            self.expr(node.value, scope)
        scope.count += 1

    def _augmented(self, node: ast.AugAssign, scope: _Scope) -> None:
        target = node.target
        if isinstance(target, ast.Name):  # a binding for libcst, not a read
            self.assign(scope, target.id, (target.lineno, target.col_offset))
            if self.depth == 0:
                self.augmented.setdefault(target.id, (target.lineno, target.col_offset))
        else:
            self.expr(target, scope)
        self.touch(target)
        self.expr(node.value, scope)
        scope.count += 1

    def _delete(self, node: ast.Delete, scope: _Scope) -> None:
        targets = node.targets
        for target in targets:
            self.expr(target, scope)
            self.touch(target)
        # `del a, b` (and `del a,`) is one tuple to libcst, whose names count as aliased
        if len(targets) > 1 or (isinstance(targets[0], ast.Name) and self._comma_after(targets[0], node)):
            self.touched.update(target.id for target in targets if isinstance(target, ast.Name))

    def _comma_after(self, target: ast.expr, statement: ast.stmt) -> bool:
        end = (statement.end_lineno or target.lineno, statement.end_col_offset or 0)
        if (target.end_lineno, target.end_col_offset) == end:
            return False
        return b"," in _without_comments(self._text((target.end_lineno or 1, target.end_col_offset or 0), end))

    def _text(self, start: tuple[int, int], end: tuple[int, int]) -> bytes:
        """The source between two (line, byte column) positions."""
        lines = self.lines()
        if start[0] == end[0]:
            return lines[start[0] - 1][start[1]:end[1]]
        middle = lines[start[0]:end[0] - 1]
        return b"\n".join([lines[start[0] - 1][start[1]:], *middle, lines[end[0] - 1][:end[1]]])

    def _import(self, node: ast.Import, scope: _Scope) -> None:
        at = (node.lineno, node.col_offset)
        for alias in node.names:
            self.modules.add(alias.name.split(".", 1)[0])
            if alias.asname is None and "." in alias.name:
                if not self.dotted:
                    raise _Dotted()
                parts = alias.name.split(".")
                for end in range(len(parts), 0, -1):  # `a.b.c`, `a.b` and `a`
                    self.assign(scope, ".".join(parts[:end]), at)
            else:
                self.assign(scope, alias.asname or alias.name, at)
        scope.count += 1

    def _import_from(self, node: ast.ImportFrom, scope: _Scope) -> None:
        at = (node.lineno, node.col_offset)
        if not node.level and node.module is not None:
            self.modules.add(node.module.split(".", 1)[0])
        for alias in node.names:
            if alias.name == "*":
                if not node.level and node.module is not None:
                    self.star_import = True
                continue
            self.assign(scope, alias.asname or alias.name, at)
        scope.count += 1

    def _global(self, node: ast.Global, scope: _Scope) -> None:
        if scope.kind != _MODULE:
            for name in node.names:
                scope.overwrites[name] = self.module
        scope.count += 1

    def _nonlocal(self, node: ast.Nonlocal, scope: _Scope) -> None:
        if scope.kind == _MODULE or scope.parent is None:
            raise _Refused("nonlocal at module level")
        for name in node.names:
            scope.overwrites[name] = scope.parent
        scope.count += 1

    def _if(self, node: ast.If | ast.While, scope: _Scope) -> None:
        self.expr(node.test, scope)
        self.body(node.body, scope)
        self.body(node.orelse, scope)

    def _for(self, node: ast.For | ast.AsyncFor, scope: _Scope) -> None:
        if self.python_order:  # `for x in x:` reads the x bound before it
            self.expr(node.iter, scope)
            self.expr(node.target, scope)
            scope.count += 1
        else:
            self.expr(node.target, scope)
            scope.count += 1  # the target is bound before the iterable is read (libcst's order)
            self.expr(node.iter, scope)
        self.body(node.body, scope)
        self.body(node.orelse, scope)

    def _with(self, node: ast.With | ast.AsyncWith, scope: _Scope) -> None:
        for item in node.items:
            self.expr(item.context_expr, scope)
            if item.optional_vars is not None:
                self.expr(item.optional_vars, scope)
                scope.count += 1  # the `as` name
            scope.count += 1  # the item
        self.body(node.body, scope)

    def _try(self, node: ast.Try, scope: _Scope) -> None:
        self.body(node.body, scope)
        for handler in node.handlers:
            if handler.type is not None:
                self.expr(handler.type, scope)
            if handler.name is not None:
                self.assign(scope, handler.name, (handler.lineno, handler.col_offset))
                scope.count += 1
            self.body(handler.body, scope)
        self.body(node.orelse, scope)
        self.body(node.finalbody, scope)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, scope: _Scope) -> None:
        if getattr(node, "type_params", None):
            raise _Refused("type parameters")
        self.assign(scope, node.name, (node.lineno, node.col_offset))
        inner = _Scope(_FUNCTION, scope)
        self.parameters(node.args, inner, scope, annotated=True)
        self.depth += 1
        self.body(node.body, inner)
        self.depth -= 1
        for decorator in node.decorator_list:
            self.expr(decorator, scope)
        if node.returns is not None:
            self.annotation(node.returns, scope)
        scope.count += 1

    def _class(self, node: ast.ClassDef, scope: _Scope) -> None:
        if getattr(node, "type_params", None):
            raise _Refused("type parameters")
        self.assign(scope, node.name, (node.lineno, node.col_offset))
        for decorator in node.decorator_list:
            self.expr(decorator, scope)
        for base in node.bases:
            self.expr(base, scope)
        for keyword in node.keywords:
            self.expr(keyword.value, scope)
        self.body(node.body, _Scope(_CLASS, scope))
        scope.count += 1

    def parameters(self, arguments: ast.arguments, inner: _Scope, outer: _Scope, annotated: bool) -> None:
        """Parameters bind in the function's scope; their defaults and annotations are read outside."""
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        if arguments.vararg is not None:
            every.append(arguments.vararg)
        if arguments.kwarg is not None:
            every.append(arguments.kwarg)
        for argument in every:
            inner.first.setdefault(argument.arg, inner.count)
            if annotated and argument.annotation is not None:
                self.annotation(argument.annotation, outer)
        for default in arguments.defaults:
            self.expr(default, outer)
        for keyword_default in arguments.kw_defaults:
            if keyword_default is not None:
                self.expr(keyword_default, outer)
        inner.count += 1

    # --- expressions

    def expr(self, node: ast.expr, scope: _Scope) -> None:
        handler = _EXPRESSIONS.get(type(node))
        if handler is None:
            raise _Refused(type(node).__name__)
        handler(self, node, scope)

    def exprs(self, nodes: list[ast.expr], scope: _Scope) -> None:
        for node in nodes:
            self.expr(node, scope)

    def _name(self, node: ast.Name, scope: _Scope) -> None:
        if type(node.ctx) is ast.Store:
            self.assign(scope, node.id, (node.lineno, node.col_offset))
        else:  # a read, or `del`, which libcst counts as a read
            self.accesses.append((scope, node.id, scope.count, node.lineno, node.col_offset))

    def _constant(self, node: ast.Constant, scope: _Scope) -> None:
        pass

    def _value(self, node: ast.Starred | ast.Await | ast.YieldFrom, scope: _Scope) -> None:
        self.expr(node.value, scope)

    def _attribute(self, node: ast.Attribute, scope: _Scope) -> None:
        if not self.dotted or self.in_attribute:
            self.expr(node.value, scope)
            return
        # the outermost attribute of a chain (libcst's "top-level attribute"): when the chain is only
        # names, `a.b.c`, the read of `a` is one of `a.b.c` or `a.b` if such a dotted name is bound
        attributes = [node.attr]
        base = node.value
        while isinstance(base, ast.Attribute):
            attributes.append(base.attr)
            base = base.value
        if isinstance(base, ast.Name):
            self.chains[len(self.accesses)] = [
                ".".join([base.id, *reversed(attributes[i:])]) for i in range(len(attributes))]
            self.expr(base, scope)
            return
        self.in_attribute = True
        self.expr(node.value, scope)
        self.in_attribute = False

    def _optional_value(self, node: ast.Yield, scope: _Scope) -> None:
        if node.value is not None:
            self.expr(node.value, scope)

    def _binary(self, node: ast.BinOp, scope: _Scope) -> None:
        self.expr(node.left, scope)
        self.expr(node.right, scope)

    def _unary(self, node: ast.UnaryOp, scope: _Scope) -> None:
        self.expr(node.operand, scope)

    def _boolean(self, node: ast.BoolOp, scope: _Scope) -> None:
        self.exprs(node.values, scope)

    def _compare(self, node: ast.Compare, scope: _Scope) -> None:
        self.expr(node.left, scope)
        self.exprs(node.comparators, scope)

    def _if_expression(self, node: ast.IfExp, scope: _Scope) -> None:
        self.expr(node.test, scope)
        self.expr(node.body, scope)
        self.expr(node.orelse, scope)

    def _call(self, node: ast.Call, scope: _Scope) -> None:
        func = node.func
        if self.typing and _root_name(func) in self.typing:
            raise _Refused("a call of a name from typing")  # cast/TypeVar/NewType: libcst reads their arguments its way
        if isinstance(func, ast.Attribute):
            self.touch(func.value, through_attribute=True)
        outer, self.in_attribute = self.in_attribute, False  # a call starts afresh (libcst's stack)
        self.expr(func, scope)
        self.exprs(node.args, scope)
        for keyword in node.keywords:
            self.expr(keyword.value, scope)
        self.in_attribute = outer

    def _subscript(self, node: ast.Subscript, scope: _Scope) -> None:
        self.expr(node.value, scope)
        index = node.slice
        if self.typing and isinstance(node.value, ast.Name) and node.value.id in self.typing:
            _check_hint(index)  # libcst parses strings in a typing subscript as code
        if isinstance(index, ast.Tuple) and not self._parenthesised(index):
            self.exprs(index.elts, scope)  # `x[i, j]`: not a tuple to libcst, so no aliasing
        else:
            self.expr(index, scope)

    def _parenthesised(self, node: ast.Tuple) -> bool:
        """Whether a tuple in a subscript is written in parentheses, `x[(i, j)]`, rather than `x[i, j]`."""
        if not any(isinstance(e.value if isinstance(e, ast.Starred) else e, ast.Name) for e in node.elts):
            return False  # nothing to alias either way
        if any(isinstance(e, ast.Slice) for e in node.elts):
            return False  # slices cannot be in parentheses
        first = node.elts[0]
        start = (node.lineno, node.col_offset)
        opened = _without_comments(self._text(start, (first.lineno, first.col_offset))).count(b"(")
        if not opened:
            return False
        rest = self._text((first.end_lineno or 1, first.end_col_offset or 0), (node.end_lineno or 1, node.end_col_offset or 0))
        between = _without_comments(rest).split(b",", 1)[0]
        return opened > between.count(b")")  # one more `(` than the first element closes: the tuple's own

    def _slice(self, node: ast.Slice, scope: _Scope) -> None:
        for part in (node.lower, node.upper, node.step):
            if part is not None:
                self.expr(part, scope)

    def _sequence(self, node: ast.List | ast.Tuple | ast.Set, scope: _Scope) -> None:
        for element in node.elts:
            value = element.value if isinstance(element, ast.Starred) else element
            if isinstance(value, ast.Name):
                self.touched.add(value.id)  # `[a, b]` aliases a and b
        self.exprs(node.elts, scope)

    def _dict(self, node: ast.Dict, scope: _Scope) -> None:
        for key, value in zip(node.keys, node.values):
            if key is not None:
                self.expr(key, scope)
                if isinstance(value, ast.Name):
                    self.touched.add(value.id)
            self.expr(value, scope)

    def _joined(self, node: ast.JoinedStr, scope: _Scope) -> None:
        self.exprs(node.values, scope)
        lines = self.lines()
        for inner in ast.walk(node):  # positions inside f-strings: trust them only where the text agrees
            if isinstance(inner, ast.Name):
                name = inner.id.encode()
                if lines[inner.lineno - 1][inner.col_offset:inner.col_offset + len(name)] != name:
                    raise _Refused("f-string position")

    def _formatted(self, node: ast.FormattedValue, scope: _Scope) -> None:
        self.expr(node.value, scope)
        if node.format_spec is not None:
            self.expr(node.format_spec, scope)

    def _lambda(self, node: ast.Lambda, scope: _Scope) -> None:
        inner = _Scope(_FUNCTION, scope)
        self.parameters(node.args, inner, scope, annotated=False)
        self.expr(node.body, inner)

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp, scope: _Scope) -> None:
        generators = node.generators
        self.expr(generators[0].iter, scope)  # the first iterable is read outside
        inner = _Scope(_COMPREHENSION, scope)
        self.expr(generators[0].target, inner)
        inner.count += 1
        self.exprs(generators[0].ifs, inner)
        for generator in generators[1:]:
            if self.python_order:  # each iterable sees the targets before it; the conditions, its own
                self.expr(generator.iter, inner)
                self.expr(generator.target, inner)
                inner.count += 1
                self.exprs(generator.ifs, inner)
            else:  # all seen at one count: libcst counts them when it leaves them
                self.expr(generator.target, inner)
                self.expr(generator.iter, inner)
                self.exprs(generator.ifs, inner)
        if not self.python_order:
            inner.count += len(generators) - 1
        if isinstance(node, ast.DictComp):
            self.expr(node.key, inner)
            self.expr(node.value, inner)
        else:
            self.expr(node.elt, inner)

    def annotation(self, node: ast.expr, scope: _Scope) -> None:
        _check_hint(node)
        self.expr(node, scope)

    # --- in-place changes (analysis._Collector._touch)

    def touch(self, target: ast.expr, through_attribute: bool = False) -> None:
        base = target
        while isinstance(base, (ast.Subscript, ast.Attribute)):
            base = base.value
            through_attribute = True
        if isinstance(base, ast.Name):
            if through_attribute:
                self.touched.add(base.id)
        elif isinstance(base, (ast.Tuple, ast.List)):
            for element in base.elts:
                self.touch(element.value if isinstance(element, ast.Starred) else element)


_STATEMENTS: dict[type[ast.AST], Callable[[_Walker, Any, _Scope], None]] = {
    ast.Expr: _Walker._expression_statement,
    ast.Return: _Walker._expression_statement,
    ast.Pass: _Walker._nothing,
    ast.Break: _Walker._nothing,
    ast.Continue: _Walker._nothing,
    ast.Raise: _Walker._raise,
    ast.Assert: _Walker._assert,
    ast.Assign: _Walker._assign_statement,
    ast.AnnAssign: _Walker._annotated,
    ast.AugAssign: _Walker._augmented,
    ast.Delete: _Walker._delete,
    ast.Import: _Walker._import,
    ast.ImportFrom: _Walker._import_from,
    ast.Global: _Walker._global,
    ast.Nonlocal: _Walker._nonlocal,
    ast.If: _Walker._if,
    ast.While: _Walker._if,
    ast.For: _Walker._for,
    ast.AsyncFor: _Walker._for,
    ast.With: _Walker._with,
    ast.AsyncWith: _Walker._with,
    ast.Try: _Walker._try,
    ast.FunctionDef: _Walker._function,
    ast.AsyncFunctionDef: _Walker._function,
    ast.ClassDef: _Walker._class,
}
if sys.version_info >= (3, 11):
    _STATEMENTS[ast.TryStar] = _Walker._try

_EXPRESSIONS: dict[type[ast.AST], Callable[[_Walker, Any, _Scope], None]] = {
    ast.Name: _Walker._name,
    ast.Constant: _Walker._constant,
    ast.Attribute: _Walker._attribute,
    ast.Starred: _Walker._value,
    ast.Await: _Walker._value,
    ast.YieldFrom: _Walker._value,
    ast.Yield: _Walker._optional_value,
    ast.BinOp: _Walker._binary,
    ast.UnaryOp: _Walker._unary,
    ast.BoolOp: _Walker._boolean,
    ast.Compare: _Walker._compare,
    ast.IfExp: _Walker._if_expression,
    ast.Call: _Walker._call,
    ast.Subscript: _Walker._subscript,
    ast.Slice: _Walker._slice,
    ast.List: _Walker._sequence,
    ast.Tuple: _Walker._sequence,
    ast.Set: _Walker._sequence,
    ast.Dict: _Walker._dict,
    ast.JoinedStr: _Walker._joined,
    ast.FormattedValue: _Walker._formatted,
    ast.Lambda: _Walker._lambda,
    ast.ListComp: _Walker._comprehension,
    ast.SetComp: _Walker._comprehension,
    ast.GeneratorExp: _Walker._comprehension,
    ast.DictComp: _Walker._comprehension,
}


def _root_name(node: ast.expr) -> str | None:
    """The name a call's full name starts with (libcst's `get_full_name_for_node`)."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _typing_names(tree: ast.Module) -> frozenset[str]:
    """Names bound by importing `typing` or `typing_extensions`, or names from them."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.asname or alias.name.split(".", 1)[0] for alias in node.names
                         if alias.name.split(".", 1)[0] in ("typing", "typing_extensions"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".", 1)[0] in ("typing", "typing_extensions"):
            names.update(alias.asname or alias.name for alias in node.names)
    return frozenset(names)


def _check_hint(node: ast.expr) -> None:
    """Refuse an annotation (or typing subscript) whose strings libcst would parse into anything but a
    plain expression: only then are its findings (none: names in a string annotation are never
    counted as reads) the same as ignoring the strings."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.JoinedStr):
            raise _Refused("f-string in an annotation")
        if isinstance(inner, ast.Constant) and isinstance(inner.value, (str, bytes)) and inner.value:
            if isinstance(inner.value, bytes) or not _plain_expression(inner.value):
                raise _Refused("string annotation")


@functools.lru_cache(maxsize=1024)
def _plain_expression(text: str) -> bool:
    """Whether a string annotation is an expression without bindings or strings of its own."""
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return not any(isinstance(node, (ast.NamedExpr, ast.JoinedStr)) or
                   (isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)))
                   for node in ast.walk(tree))


_COMMENT = re.compile(rb"#[^\n]*")


def _without_comments(text: bytes) -> bytes:
    return _COMMENT.sub(b"", text)


def _identifiers_normalised(code: str) -> bool:
    """Whether every name is written as Python stores it (NFKC-normalised: `ﬁle` is `file` to Python);
    libcst keeps names as written. (Names inside f-strings are checked against the text instead.)"""
    if unicodedata.is_normalized("NFKC", code):
        return True
    try:
        return all(token.string.isascii() or unicodedata.is_normalized("NFKC", token.string)
                   for token in tokenize.generate_tokens(io.StringIO(code).readline) if token.type == tokenize.NAME)
    except (tokenize.TokenError, SyntaxError):
        return False
