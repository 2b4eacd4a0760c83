"""Paths the panel sends, checked against the server's root directory.

A request names files as Jupyter does: relative to the root, with `/` separators. Absolute paths,
`..` components and anything that resolves (symlinks included) outside the root are refused with
403, before the file system is touched any further; so are hidden files and folders (a name starting
with `.`) while Jupyter's `allow_hidden` is off, which keeps Compile from writing, say, into
`.ipython/profile_default/startup` (code IPython runs at start-up). A path the file system cannot
take (a NUL character, text that is not valid Unicode, a name too long) is a 400.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

SOURCE_SUFFIXES = (".ipynb", ".py")
MOST_PATH_BYTES = 4096  # Linux's PATH_MAX
MOST_NAME_BYTES = 255  # NAME_MAX of the usual file systems


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
    _check_text(relative)
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


def _check_text(relative: str) -> None:
    """400 for a path no file system takes, before any system call sees it."""
    shown = relative if len(relative) <= 80 else relative[:77] + "..."
    if "\0" in relative:
        raise PathRefused(400, f"{shown!r}: a path cannot hold a NUL character")
    try:
        encoded = relative.encode("utf-8")
    except UnicodeEncodeError:
        raise PathRefused(400, f"{shown!r} is not valid Unicode text (a lone surrogate)") from None
    if len(encoded) > MOST_PATH_BYTES or any(len(part) > MOST_NAME_BYTES for part in encoded.split(b"/")):
        raise PathRefused(400, f"{shown!r} is too long for a path ({len(encoded)} bytes; a name may have "
                               f"{MOST_NAME_BYTES}, a path {MOST_PATH_BYTES})")


def hidden_part(root: str | Path, path: Path) -> str:
    """The first hidden name (starting with `.`) of `path` below the root, as it resolves ('' if none)."""
    base = Path(os.path.realpath(root))
    resolved = Path(os.path.realpath(path))
    below = resolved.relative_to(base).parts if base in resolved.parents else ()
    return next((part for part in below if part.startswith(".")), "")
