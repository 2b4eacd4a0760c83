"""Paths the panel sends, checked against the server's root directory.

A request names files as Jupyter does: relative to the root, with `/` separators. Absolute paths,
`..` components and anything that resolves (symlinks included) outside the root are refused with
403, before the file system is touched any further.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

SOURCE_SUFFIXES = (".ipynb", ".py")


class PathRefused(Exception):
    """A path the server will not read or write; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def inside_root(root: str | Path, relative: str, must_exist: bool = True) -> Path:
    """The absolute path of `relative` under `root`; PathRefused when it is not a plain path inside it."""
    if not isinstance(relative, str) or not relative.strip():
        raise PathRefused(400, "no path given")
    text = relative.replace("\\", "/")
    pure = PurePosixPath(text)
    if pure.is_absolute() or text.startswith("~") or (len(text) > 1 and text[1] == ":"):
        raise PathRefused(403, f"'{relative}' is not a path inside the Jupyter root directory")
    if any(part == ".." for part in pure.parts):
        raise PathRefused(403, f"'{relative}': '..' is not allowed; give a path inside the Jupyter root directory")
    base = Path(os.path.realpath(root))
    target = Path(os.path.realpath(base.joinpath(*pure.parts)))
    if target != base and base not in target.parents:
        raise PathRefused(403, f"'{relative}' resolves outside the Jupyter root directory")
    if must_exist and not target.exists():
        raise PathRefused(404, f"'{relative}' does not exist")
    return target


def source_file(root: str | Path, relative: str) -> Path:
    """A notebook or pipeline file inside the root."""
    path = inside_root(root, relative)
    if path.suffix not in SOURCE_SUFFIXES:
        raise PathRefused(400, f"'{relative}' is not a notebook (.ipynb) or a Python pipeline file (.py)")
    if not path.is_file():
        raise PathRefused(404, f"'{relative}' is not a file")
    return path


def relative_to_root(root: str | Path, path: Path) -> str:
    """How Jupyter names `path` (relative, `/`-separated)."""
    return Path(path).resolve().relative_to(Path(os.path.realpath(root))).as_posix()
