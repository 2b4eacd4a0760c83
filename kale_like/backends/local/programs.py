"""Compile component programs fast: the embedded step runtime is compiled once per process.

Every component program carries the step runtime (about 12 KB) verbatim, nested in the
component's function, followed by the step's own call: compiling each program from scratch spends
most of its time compiling the same runtime again. Here each runtime text met is compiled once per
process (inside a host function), and a program is compiled as a *skeleton*: the same text with each runtime function
replaced by a stub that has the same signature, spans the same lines and columns and reads the
same names from the enclosing scope. The stubs' code objects are then swapped for the runtime's,
moved to the program's lines, file name and qualified names. The result is the code object
`compile(program)` gives (the tests compare them field by field); a program without such a
runtime, or whose function binds a name the runtime reads from outside, is compiled whole.

Compiling the runtime itself costs 7-11 ms, more than running a small step, and every run from the
command line is a new process: `preload` keeps the compiled form in the user's cache folder
(marshalled, like a `.pyc`, keyed by the runtime text and the Python version), so later runs, in
any store, only read it.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import marshal
import symtable
import sys
import threading
import types
from dataclasses import dataclass
from pathlib import Path

from kale_like.user_cache import keep

_HOST = "_kl_host"
_HOST_PREFIX = len(f"{_HOST}.<locals>.")
_LOCK = threading.Lock()
_RUNTIMES: dict[str, _Runtime | None] = {}  # runtime text -> its compiled form (None: compile whole)
_CALLS = ("\n    _kl_run_step(", "\n    return _kl_run_step(")
_CACHE_FORMAT = 1  # bump when what `_build` makes of a runtime text changes


@dataclass(frozen=True)
class _Runtime:
    text: str  # the runtime as embedded in a component (indented), a whole number of lines
    first_line: int  # its first line in the host source
    codes: dict[str, types.CodeType]  # runtime function name -> code object compiled in the host
    nested: dict[int, tuple[int, ...]]  # id of each of those code objects (and theirs) -> where its code constants are
    stubs: str  # same number of lines as `text`: one stub per runtime function
    outside: frozenset[str]  # names the runtime reads from outside itself (builtins, module globals)


def compile_program(program: str, filename: str) -> types.CodeType:
    """`compile(program, filename, "exec", dont_inherit=True)`, reusing the compiled runtime."""
    start, runtime = _runtime_of(program)
    if runtime is None:
        return compile(program, filename, "exec", dont_inherit=True)
    skeleton = program[:start] + runtime.stubs + program[start + len(runtime.text):]
    code = compile(skeleton, filename, "exec", dont_inherit=True)
    swapped = _swap(code, runtime, program.count("\n", 0, start) + 1 - runtime.first_line, filename)
    return swapped if swapped is not None else compile(program, filename, "exec", dont_inherit=True)


def preload(program: str, cache_dir: Path | None = None) -> None:
    """Compile the runtime `program` carries now (before worker processes are forked, so they
    inherit it): read from `cache_dir` if a run compiled it before, else compiled and kept there."""
    _runtime_of(program, cache_dir)


def _runtime_of(program: str, cache_dir: Path | None = None) -> tuple[int, _Runtime | None]:
    """Where the embedded runtime starts in `program`, and its compiled form (compiled on first
    sight of that runtime text, so a program of another version is served as well)."""
    start = program.find("\n    def _kl_") + 1
    end = max(program.rfind(call) for call in _CALLS) + 1
    if start <= 0 or end <= start:
        return -1, None
    text = program[start:end]
    with _LOCK:
        if text not in _RUNTIMES:
            _RUNTIMES[text] = _cached(text, cache_dir)
        return start, _RUNTIMES[text]


def _cached(text: str, cache_dir: Path | None) -> _Runtime | None:
    """The compiled runtime from `cache_dir` (a file per runtime text and Python), else built and
    kept there."""
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(f"{_CACHE_FORMAT}\0{sys.version}\0{importlib.util.MAGIC_NUMBER.hex()}\0{text}".encode())
        path = Path(cache_dir) / f"runtime-{key.hexdigest()[:32]}.marshal"
        try:
            stored_text, codes, stubs, outside = marshal.loads(path.read_bytes())
            if stored_text == text:
                return _Runtime(text, 2, codes, _nesting(codes.values()), stubs, frozenset(outside))
        except (OSError, EOFError, ValueError, TypeError):
            pass  # absent, or written by something else: build it
    try:
        runtime = _build(text)
    except (SyntaxError, ValueError):
        return None  # not a block of plain functions: programs are compiled whole
    if runtime is not None and path is not None:
        keep(path, marshal.dumps((text, runtime.codes, runtime.stubs, tuple(sorted(runtime.outside)))))
    return runtime


def _build(text: str) -> _Runtime | None:
    source = f"def {_HOST}():\n{text}"
    tree = ast.parse(source)
    functions = tree.body[0].body
    if not all(isinstance(node, ast.FunctionDef) and not node.decorator_list for node in functions):
        return None
    host = compile(source, "<runtime>", "exec", dont_inherit=True)
    host_function = next(c for c in host.co_consts if isinstance(c, types.CodeType))
    codes = {c.co_name: c for c in host_function.co_consts if isinstance(c, types.CodeType)}
    outer = _outside_names(symtable.symtable(source, "<runtime>", "exec").get_children()[0])
    lines = source.split("\n")
    stub_lines = [""] * len(lines)
    for node in functions:
        first_body = node.body[0].lineno
        if first_body <= node.lineno or node.end_col_offset < 1:
            return None
        for number in range(node.lineno, first_body):  # the header: def line(s) through the colon
            stub_lines[number - 1] = lines[number - 1]
        names = sorted(codes[node.name].co_freevars)  # the other runtime functions it calls
        indent = " " * (node.col_offset + 4)
        # one parenthesised expression from the first body line to the function's last character,
        # so the `def` statement has the same extent (its location is in the line table)
        closing = " " * (node.end_col_offset - 1) + ")"
        opening = indent + "(" + "".join(f"{name}, " for name in names)
        if node.end_lineno == first_body:
            if len(opening) > node.end_col_offset - 1:
                return None
            stub_lines[first_body - 1] = opening.ljust(node.end_col_offset - 1) + ")"
        else:
            stub_lines[first_body - 1] = opening
            stub_lines[node.end_lineno - 1] = closing
    stubs = "\n".join(stub_lines[1:])
    return _Runtime(text, 2, codes, _nesting(codes.values()), stubs, frozenset().union(*outer.values()) - set(codes))


def _nesting(codes) -> dict[int, tuple[int, ...]]:
    """For each code object (and those nested in it): the indexes of its code constants."""
    nested: dict[int, tuple[int, ...]] = {}
    todo = list(codes)
    while todo:
        code = todo.pop()
        nested[id(code)] = tuple(i for i, c in enumerate(code.co_consts) if isinstance(c, types.CodeType))
        todo += [code.co_consts[i] for i in nested[id(code)]]
    return nested


def _outside_names(host: symtable.SymbolTable) -> dict[str, set[str]]:
    """Per runtime function: the names its code (nested scopes included) reads from outside it."""

    def outside(table: symtable.SymbolTable) -> set[str]:
        names = {s.get_name() for s in table.get_symbols() if s.is_free() or s.is_global()}
        bound = {s.get_name() for s in table.get_symbols() if s.is_local()}
        for child in table.get_children():
            names |= outside(child) - bound
        return names

    return {child.get_name(): outside(child) for child in host.get_children()}


def _swap(module: types.CodeType, runtime: _Runtime, shift: int, filename: str) -> types.CodeType | None:
    """The module code with the stubs replaced by the runtime's code objects; None if unsafe."""
    found: list[types.CodeType] = []

    def visit(code: types.CodeType) -> types.CodeType:
        consts = list(code.co_consts)
        stubs = [i for i, c in enumerate(consts) if isinstance(c, types.CodeType) and c.co_name in runtime.codes
                 and c.co_qualname == f"{code.co_qualname}.<locals>.{c.co_name}"]
        if stubs and len(stubs) == len(runtime.codes):
            found.append(code)
            if (set(code.co_varnames) | set(code.co_cellvars)) & runtime.outside:
                raise _Unsafe  # e.g. an argument named `len`: on a cluster the runtime would read it
            prefix = f"{code.co_qualname}.<locals>."
            for i in stubs:
                real = runtime.codes[consts[i].co_name]
                if consts[i].co_freevars != real.co_freevars or consts[i].co_firstlineno != real.co_firstlineno + shift:
                    raise _Unsafe
                consts[i] = _moved(real, runtime.nested, shift, filename, prefix)
        else:
            consts = [visit(c) if isinstance(c, types.CodeType) else c for c in consts]
        return code.replace(co_consts=tuple(consts))

    try:
        result = visit(module)
    except _Unsafe:
        return None
    return result if len(found) == 1 else None


class _Unsafe(Exception):
    pass


def _moved(code: types.CodeType, nested: dict[int, tuple[int, ...]], shift: int, filename: str,
           prefix: str) -> types.CodeType:
    """A host-compiled runtime code object (and those nested in it) at the program's lines, in its
    file, named inside its function."""
    consts = code.co_consts
    if nested[id(code)]:
        consts = list(consts)
        for i in nested[id(code)]:
            consts[i] = _moved(consts[i], nested, shift, filename, prefix)
        consts = tuple(consts)
    return code.replace(co_consts=consts, co_filename=filename, co_firstlineno=code.co_firstlineno + shift,
                        co_qualname=prefix + code.co_qualname[_HOST_PREFIX:])
