"""What a piece of Python reads and defines, by libcst scope analysis.

A notebook step's inputs are the names its code reads before (or without) binding them; its
outputs are the names it binds. libcst's scope provider resolves every access against the
assignments visible at that point, in source order, which is exactly notebook semantics:
`x = x + 1` reads an outside `x`, and a function body may use a name bound later in the cell.
libcst costs ~10 ms a code block: common code is read first by `fast_facts`, which replays the same
analysis on Python's own `ast` tree in a fraction of a millisecond and gives libcst what it is not
sure of.
"""

from __future__ import annotations

import ast
import builtins
import functools
import multiprocessing
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import cast

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider, Scope, ScopeProvider

from kale_like.frontends.nesting import nesting_problem
from kale_like.process_role import kale_like_owns_process

# Names a notebook has without defining them; the step runtime provides the same ones.
NOTEBOOK_NAMES = frozenset(dir(builtins)) | {"display", "__name__", "__file__", "get_ipython"}


class CodeSyntaxError(ValueError):
    """The code does not parse; `line`/`column` are 1-based within the code given."""

    def __init__(self, message: str, line: int, column: int):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column

    def described(self, hint: str) -> tuple[str, str]:
        """The error as a user reads it, and the fix: `hint` for code that does not parse; for code
        nested too deeply to analyse, how to split it."""
        if self.message.startswith("too deeply nested"):
            problem, _, advice = self.message.partition("; ")
            return problem, advice or hint
        return f"syntax error: {self.message}", hint


@dataclass(frozen=True, slots=True)
class CodeFacts:
    """Names a code block binds, reads from outside, and may change in place.

    `reads` maps each free name to the (line, column) of its first read, for error messages.
    `touches` are read names the code may mutate without rebinding (`df["a"] = 1`,
    `model.fit(...)`, or aliasing through `[a, b]`): a later reader must get this step's copy.
    """

    defines: frozenset[str]
    reads: dict[str, tuple[int, int]]
    touches: frozenset[str]
    modules: frozenset[str]
    star_import: bool


def parse(code: str) -> cst.Module:
    """Parse with libcst, turning its syntax error into a `CodeSyntaxError` (and refusing first what
    is nested too deeply for it: see `nesting`)."""
    problem = nesting_problem(code)
    if problem is not None:
        raise CodeSyntaxError(*problem)
    try:
        return cst.parse_module(code)
    except cst.ParserSyntaxError as error:
        raise _python_syntax_error(code) or CodeSyntaxError(
            "kale_like cannot analyse this syntax", error.raw_line, error.raw_column + 1
        ) from None
    except (RecursionError, MemoryError):
        raise CodeSyntaxError("code is too deeply nested to analyse", 1, 1) from None


def _python_syntax_error(code: str) -> CodeSyntaxError | None:
    """Python's own message and position, which users know from their notebook."""
    try:
        compile(code, "<cell>", "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as error:
        return CodeSyntaxError(error.msg, error.lineno or 1, error.offset or 1)
    except (ValueError, RecursionError, MemoryError) as error:
        return CodeSyntaxError(str(error) or "invalid source", 1, 1)
    return None


def analyze(code: str) -> CodeFacts:
    """Scope-analyse one code block (a cell, or a group of cells run together).

    Python's own compiler runs first: it rejects what parses but cannot run (`return` or
    `nonlocal` at top level), with the message a notebook would show.

    The facts are a function of the code's text alone, and cost 0.3-0.5 ms a step (`fast_facts`;
    ~10 ms where libcst must read the code): the last `KEPT_FACTS` results are kept by text, so
    analysing a notebook again after an edit (the JupyterLab panel does it on every change)
    analyses only the code that changed.
    """
    with _KEPT_LOCK:
        facts = _KEPT.get(code)
        if facts is not None:
            _KEPT.move_to_end(code)
    if facts is None:
        facts = _analyzed(code)
        provide({code: facts})
    return replace(facts, reads=dict(facts.reads))  # the caller's own dict


KEPT_FACTS = 8192  # about 1-2 KB each, with the code
_KEPT: OrderedDict[str, CodeFacts] = OrderedDict()  # code text -> facts, the least recently used first
_KEPT_LOCK = threading.Lock()


def known(code: str) -> bool:
    """Whether the facts of `code` are kept in this process."""
    return code in _KEPT


def provide(facts_of: dict[str, CodeFacts]) -> None:
    """Keep facts of code (analysed here, or by an earlier process: `kept_facts.py`)."""
    with _KEPT_LOCK:
        _KEPT.update(facts_of)
        for code in facts_of:
            _KEPT.move_to_end(code)
        while len(_KEPT) > KEPT_FACTS:
            _KEPT.popitem(last=False)


MANY = 256  # fewer codes than this are analysed here: starting workers would cost what it saves


def analyze_all(codes: Iterable[str]) -> None:
    """Analyse the codes whose facts are not kept yet, spread over the machine's cores when there are
    many and this process may fork (the command line's own: no threads, nothing of the user's that a
    fork would copy; `kale_like/process_role.py`); their facts are then kept, so `analyze`
    finds them. Code that does not analyse is left to `analyze`, which says why, in order.

    The steps' analyses are independent of each other, 0.3-0.5 ms each (~10 ms where libcst reads
    the code). Measured on 2 cores: 2,058 steps 1.2 s against 1.65 s on one; 144 steps 0.27 s
    either way, hence `MANY`."""
    pending = [code for code in dict.fromkeys(codes) if not known(code)]
    workers = min(os.cpu_count() or 1, 8, len(pending) // (MANY // 2) or 1)
    if (not kale_like_owns_process() or len(pending) < MANY or workers < 2 or threading.active_count() > 1
            or "fork" not in multiprocessing.get_all_start_methods() or os.environ.get("KALE_LIKE_ONE_CORE")):
        return
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for found in pool.map(_analyzed_here, [pending[i::workers] for i in range(workers)]):
                provide(found)
    except (OSError, multiprocessing.ProcessError):  # no processes to be had: analysed one by one instead
        return


def _analyzed_here(codes: list[str]) -> dict[str, CodeFacts]:
    found = {}
    for code in codes:
        try:
            found[code] = _analyzed(code)
        except (CodeSyntaxError, MemoryError):  # reported by `analyze`, with where
            continue
    return found


def _analyzed(code: str) -> CodeFacts:
    """The facts of code, or the `CodeSyntaxError` saying why there are none.

    Code that Python compiles and that is not nested too deeply is read first with Python's own
    parser (`fast_facts`, a fraction of a millisecond for a cell); libcst, ~10 ms a call, reads
    only what that reading is not sure of. libcst's parse (`check`) also gives the errors, as before,
    for code that does not compile or is nested too deeply."""
    if nesting_problem(code) is None and compiles(code):
        from kale_like.frontends.fast_facts import fast_facts  # here: it imports this module

        facts = fast_facts(code)
        if facts is not None:
            return facts
    module = check(code)
    try:
        return analyze_module(module)
    except (NotImplementedError, RecursionError) as error:
        raise CodeSyntaxError(f"kale_like cannot analyse this code: {error}", 1, 1) from None


@functools.lru_cache(maxsize=KEPT_FACTS)
def compiles(code: str) -> bool:
    """Whether Python compiles the code (the cheap first test; `check` says why it does not)."""
    try:
        compile(code, "<cell>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def constant_facts(code: str) -> CodeFacts | None:
    """The facts of a plain constant, `NAME = literal` (or `A = B = literal`), read with Python's own
    parser; None for any other code. libcst's scope analysis costs ~10 ms a call whatever the code's
    size (its visitor set-up), which made a module of 20,000 constants take over a minute."""
    try:
        body = ast.parse(code).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if len(body) != 1 or not isinstance(body[0], ast.Assign) or not _is_literal(body[0].value, 0):
        return None
    targets = body[0].targets
    if not all(isinstance(target, ast.Name) for target in targets):
        return None
    names = frozenset(target.id for target in targets if isinstance(target, ast.Name))
    return CodeFacts(defines=names, reads={}, touches=frozenset(), modules=frozenset(), star_import=False)


def _is_literal(node: ast.expr, depth: int) -> bool:
    if depth > 10:
        return False
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return isinstance(node.operand, ast.Constant)
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return all(_is_literal(item, depth + 1) for item in node.elts)
    if isinstance(node, ast.Dict):
        return all(key is not None and _is_literal(key, depth + 1) for key in node.keys) and \
            all(_is_literal(value, depth + 1) for value in node.values)
    return False


def analyze_module(module: cst.Module) -> CodeFacts:
    """Scope-analyse an already parsed module."""
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    resolved = wrapper.resolve_many([ScopeProvider, PositionProvider])  # one pass over the tree for both
    scopes = {cast(Scope, scope) for scope in resolved[ScopeProvider].values() if scope is not None}
    positions = cast(Mapping[cst.CSTNode, CodeRange], resolved[PositionProvider])
    global_scope = next((s for s in scopes if isinstance(s, cst.metadata.GlobalScope)), None)
    defines = frozenset(_top_name(a.name) for a in global_scope.assignments) if global_scope else frozenset()
    reads: dict[str, tuple[int, int]] = {}
    for scope in scopes:
        for access in scope.accesses:
            if access.referents or not isinstance(access.node, cst.Name):
                continue
            name = access.node.value
            if name in NOTEBOOK_NAMES:
                continue
            where = positions[access.node].start
            reads[name] = min(reads.get(name, (where.line, where.column + 1)), (where.line, where.column + 1))
    collector = _Collector(positions)
    module.visit(collector)
    for name, at in collector.augmented.items():
        if name not in reads and not _bound_before(global_scope, positions, name, at):
            reads[name] = at
    for name in collector.captured:  # `case [y, *rest]:` binds y and rest
        reads.pop(name, None)
    defines = defines | frozenset(collector.captured)
    touches = frozenset(collector.touched & set(reads))
    return CodeFacts(
        defines=defines,
        reads=dict(sorted(reads.items())),
        touches=touches,
        modules=frozenset(collector.modules),
        star_import=collector.star_import,
    )


def check(code: str) -> cst.Module:
    """Parse with libcst and compile with Python: a `CodeSyntaxError` for anything that cannot run."""
    module = parse(code)
    try:
        compile(code, "<cell>", "exec", dont_inherit=True)
    except SyntaxError as error:
        raise CodeSyntaxError(error.msg, error.lineno or 1, error.offset or 1) from None
    except (ValueError, RecursionError, MemoryError) as error:
        raise CodeSyntaxError(str(error) or "invalid source", 1, 1) from None
    return module


def _top_name(dotted: str) -> str:
    return dotted.split(".", 1)[0]


def _bound_before(scope, positions, name: str, where: tuple[int, int]) -> bool:
    if scope is None:
        return False
    for assignment in scope.assignments[name]:
        node = getattr(assignment, "node", None)
        if node is not None and node in positions:
            start = positions[node].start
            if (start.line, start.column + 1) < where:
                return True
    return False


class _Collector(cst.CSTVisitor):
    """Collects imports, augmented assignments and in-place mutation sites."""

    def __init__(self, positions) -> None:
        super().__init__()
        self.positions = positions
        self.modules: set[str] = set()
        self.star_import = False
        self.augmented: dict[str, tuple[int, int]] = {}
        self.touched: set[str] = set()
        self.captured: set[str] = set()
        self.depth = 0

    def visit_MatchAs(self, node: cst.MatchAs) -> None:
        if node.name is not None:
            self.captured.add(node.name.value)

    def visit_MatchStar(self, node: cst.MatchStar) -> None:
        if node.name is not None:
            self.captured.add(node.name.value)

    def visit_MatchMapping(self, node: cst.MatchMapping) -> None:
        if node.rest is not None:
            self.captured.add(node.rest.value)

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            self.modules.add(_dotted(alias.name).split(".", 1)[0])

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None:
            return
        self.modules.add(_dotted(node.module).split(".", 1)[0])
        if isinstance(node.names, cst.ImportStar):
            self.star_import = True

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.depth += 1

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.depth -= 1

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if isinstance(node.target, cst.Name) and self.depth == 0:  # `total += x` in a def is local
            start = self.positions[node.target].start
            self.augmented.setdefault(node.target.value, (start.line, start.column + 1))
        self._touch(node.target)

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._touch(node.target)

    def visit_Del(self, node: cst.Del) -> None:
        self._touch(node.target)

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Attribute):
            self._touch(node.func.value, through_attribute=True)

    def visit_List(self, node: cst.List) -> None:
        self._alias(node.elements)

    def visit_Tuple(self, node: cst.Tuple) -> None:
        self._alias(node.elements)

    def visit_Set(self, node: cst.Set) -> None:
        self._alias(node.elements)

    def visit_Dict(self, node: cst.Dict) -> None:
        self._alias([e for e in node.elements if isinstance(e, cst.DictElement)])

    def _alias(self, elements) -> None:
        for element in elements:
            if isinstance(element.value, cst.Name):
                self.touched.add(element.value.value)

    def _touch(self, target: cst.BaseExpression, through_attribute: bool = False) -> None:
        base = target
        while isinstance(base, (cst.Subscript, cst.Attribute)):
            base = base.value
            through_attribute = True
        if isinstance(base, cst.Name) and through_attribute:
            self.touched.add(base.value)
        elif isinstance(base, (cst.Tuple, cst.List)):
            for element in base.elements:
                self._touch(element.value)


def _dotted(node: cst.BaseExpression) -> str:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return f"{_dotted(node.value)}.{node.attr.value}"
    return ""
