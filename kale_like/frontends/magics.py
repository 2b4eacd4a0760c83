"""IPython syntax in notebook cells: kept out of step code, with a warning, never a crash.

A step runs as plain Python in a container, so `%magic`, `!shell` and `obj?` lines cannot run
there. Each such line becomes `pass` at the same indentation (line numbers stay true for error
messages). `%pip install X` / `!pip install X` are translated: X is added to the step's packages.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

_LINE_MAGIC = re.compile(r"^(?P<indent>\s*)(?:[%!]|\w+\s*=\s*[%!])")
_HELP = re.compile(r"^\s*(?:[\w.]+\s*\?{1,2}|\?{1,2}\s*[\w.]+)\s*$")
# Line magics whose argument is a Python statement: the statement is kept, the magic dropped.
_STATEMENT_MAGIC = re.compile(r"^(?P<indent>\s*)%(?:time|timeit|prun|capture)\s+(?:-\S+\s+)*(?P<statement>\S.*)$")
# pip options that take a value (the value is not a package).
_PIP_VALUE_OPTIONS = {"-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-i", "--index-url",
                      "--extra-index-url", "-f", "--find-links", "-t", "--target", "--prefix", "--root",
                      "--upgrade-strategy", "--platform", "--python-version", "--implementation", "--abi",
                      "--trusted-host", "--cache-dir", "--src", "--log", "--proxy", "--retries", "--timeout"}
_PIP = re.compile(r"^\s*[%!]\s*pip3?\s+install\s+(?P<args>.*)$")
# Cell magics whose body is still Python.
_PYTHON_CELL_MAGICS = ("%%time", "%%timeit", "%%capture", "%%prun")


@dataclass(frozen=True, slots=True)
class CleanedCode:
    """Code with IPython syntax removed, the pip packages it asked for, and what was removed."""

    code: str
    packages: tuple[str, ...]
    removed: tuple[tuple[int, str], ...]  # (1-based line, original text)


def strip_magics(source: str) -> CleanedCode:
    """Replace IPython-only lines with `pass`; keep everything else byte for byte."""
    lines = source.split("\n")
    removed: list[tuple[int, str]] = []
    packages: list[str] = []
    if lines and lines[0].lstrip().startswith("%%"):
        cell_magic = lines[0].split()[0]
        removed.append((1, lines[0]))
        if cell_magic not in _PYTHON_CELL_MAGICS:
            removed.extend((number, text) for number, text in enumerate(lines[1:], start=2) if text.strip())
            return CleanedCode("\n" * (len(lines) - 1), (), tuple(removed))
        lines[0] = ""
    for index, text in enumerate(lines):
        if index == 0 and text == "":
            continue
        pip = _PIP.match(text)
        if pip:
            packages.extend(_pip_requirements(pip.group("args")))
        statement = _STATEMENT_MAGIC.match(text)
        if statement:
            removed.append((index + 1, text))
            lines[index] = statement.group("indent") + statement.group("statement")
            continue
        magic = _LINE_MAGIC.match(text)
        if magic or _HELP.match(text):
            indent = magic.group("indent") if magic else text[: len(text) - len(text.lstrip())]
            removed.append((index + 1, text))
            lines[index] = f"{indent}pass"
    return CleanedCode("\n".join(lines), tuple(packages), tuple(removed))


def _pip_requirements(args: str) -> list[str]:
    try:
        words = shlex.split(args, comments=True)
    except ValueError:
        return []
    packages, skip_next = [], False
    for word in words:
        if skip_next:
            skip_next = False
        elif word.startswith("-"):
            skip_next = word in _PIP_VALUE_OPTIONS
        elif "{" not in word and "$" not in word:
            packages.append(word)
    return packages
