"""Compile component programs fast: the embedded step runtime is compiled once per process.

Every component program carries the step runtime (about 12 KB) verbatim, nested in the
component's function, followed by the step's own call: compiling each program from scratch spends
most of its time compiling the same runtime again. Here the runtime is compiled once (inside a host
function), and a program is compiled as a *skeleton*: the same text with each runtime function
replaced by a stub that has the same signature, spans the same lines and columns and reads the
same names from the enclosing scope. The stubs' code objects are then swapped for the runtime's,
moved to the program's lines, file name and qualified names. The result is the code object
`compile(program)` gives (the tests compare them field by field); a program whose runtime text is
not the current one, or whose function binds a name the runtime reads from outside, is compiled
whole.
"""

from __future__ import annotations

import ast
import symtable
import threading
import types
from dataclasses import dataclass

_HOST = "_kl_host"
_LOCK = threading.Lock()
_RUNTIMES: list[_Runtime | None] = []


@dataclass(frozen=True)
class _Runtime:
    text: str  # the runtime as embedded in a component (indented), a whole number of lines
    first_line: int  # its first line in the host source
    codes: dict[str, types.CodeType]  # runtime function name -> code object compiled in the host
    stubs: str  # same number of lines as `text`: one stub per runtime function


def compile_program(program: str, filename: str) -> types.CodeType:
    """`compile(program, filename, "exec", dont_inherit=True)`, reusing the compiled runtime."""
    runtime = _runtime()
    start = program.find(runtime.text) if runtime is not None else -1
    if start < 0 or (start and program[start - 1] != "\n"):
        return compile(program, filename, "exec", dont_inherit=True)
    skeleton = program[:start] + runtime.stubs + program[start + len(runtime.text):]
    code = compile(skeleton, filename, "exec", dont_inherit=True)
    swapped = _swap(code, runtime, program.count("\n", 0, start) + 1 - runtime.first_line, filename)
    return swapped if swapped is not None else compile(program, filename, "exec", dont_inherit=True)


def preload() -> None:
    """Compile the runtime now (before worker processes are forked, so they inherit it)."""
    _runtime()


def _runtime() -> _Runtime | None:
    """The current runtime, read and compiled on first use (a program carrying another one, e.g.
    compiled by an earlier version, does not contain its text and is compiled whole)."""
    with _LOCK:
        if not _RUNTIMES:
            from kale_like.backends.kfp.components import embedded_runtime

            try:
                _RUNTIMES.append(_build(embedded_runtime() + "\n"))
            except (SyntaxError, ValueError):
                _RUNTIMES.append(None)  # not a runtime of plain functions: programs are compiled whole
        return _RUNTIMES[0]


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
        names = sorted(outer[node.name])
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
    return _Runtime(text, 2, codes, stubs)


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
            prefix = f"{code.co_qualname}.<locals>."
            for i in stubs:
                real = runtime.codes[consts[i].co_name]
                if consts[i].co_freevars != real.co_freevars or consts[i].co_firstlineno != real.co_firstlineno + shift:
                    raise _Unsafe
                consts[i] = _moved(real, shift, filename, f"{_HOST}.<locals>.", prefix)
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


def _moved(code: types.CodeType, shift: int, filename: str, old: str, new: str) -> types.CodeType:
    consts = tuple(_moved(c, shift, filename, old, new) if isinstance(c, types.CodeType) else c
                   for c in code.co_consts)
    return code.replace(co_consts=consts, co_filename=filename, co_firstlineno=code.co_firstlineno + shift,
                        co_qualname=new + code.co_qualname.removeprefix(old))
