"""Reading a notebook file into plain cells, with a clear error for anything that is not one."""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from kale_like.errors import KaleLikeError, SourceLocation, cell_name


@dataclass(frozen=True, slots=True)
class RawCell:
    """A code cell as the user sees it: its position among all cells, source and tags."""

    index: int
    source: str
    tags: tuple[str, ...]
    cell_id: str | None


@dataclass(frozen=True, slots=True)
class Heading:
    """A markdown cell's first `#` or `##` heading: where a notebook without step tags starts a step."""

    index: int  # the cell's position among all cells
    level: int
    text: str


@dataclass(frozen=True, slots=True)
class RawNotebook:
    path: str
    cells: tuple[RawCell, ...]
    metadata: dict
    headings: tuple[Heading, ...] = ()


def read_notebook(path: str | Path) -> RawNotebook:
    """Read a notebook of any nbformat version (older ones are upgraded to v4)."""
    where = SourceLocation(str(path))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KaleLikeError("file not found", where, "check the path") from None
    except (OSError, UnicodeDecodeError) as error:
        raise KaleLikeError(f"cannot read the file: {error}", where) from None
    try:
        document = json.loads(text)
    except RecursionError:
        raise KaleLikeError("the JSON is nested too deeply to be a notebook", where,
                            "a notebook is a JSON .ipynb file; was the right file given?") from None
    except json.JSONDecodeError as error:
        raise KaleLikeError(
            f"not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})",
            where,
            "a notebook is a JSON .ipynb file; was it saved completely?",
        ) from None
    if not isinstance(document, dict) or "cells" not in document and "worksheets" not in document:
        raise KaleLikeError(
            "this JSON file is not a Jupyter notebook (it has no 'cells')",
            where,
            "pass an .ipynb notebook or a .py file with @pipeline functions",
        )
    notebook = _as_v4(text, document, where)
    return RawNotebook(str(path), tuple(_code_cells(notebook, where)), dict(notebook.get("metadata") or {}),
                       tuple(_headings(notebook)))


def _as_v4(text: str, document: dict, where: SourceLocation) -> dict:
    """The notebook as nbformat 4: a version 4 document as it is, an older one upgraded by nbformat.

    A version 4 document is read as the JSON it is (the readers below check every field they use,
    naming the cell): nbformat's reader would only add a validation against the notebook schema,
    whose failure it logs and ignores, and importing nbformat imports that validator, jsonschema
    and its format checkers (~1 s where JupyterLab's dependencies are installed: rfc3987_syntax
    builds a grammar at import, python-jsonschema/jsonschema#1428)."""
    version = document.get("nbformat")
    if version == 4:
        if not isinstance(document.get("metadata", {}), dict):
            raise KaleLikeError("the notebook's 'metadata' is not a JSON object", where,
                                "open and re-save it in Jupyter, or fix the file's top-level 'metadata'")
        return document
    import nbformat

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return nbformat.reads(text, as_version=4)
    except Exception as error:  # nbformat raises many kinds for malformed input
        raise KaleLikeError(
            f"cannot read this nbformat {version} notebook as version 4: {error}",
            where,
            "open and re-save it in a current Jupyter",
        ) from None


def _code_cells(notebook: dict, where: SourceLocation) -> list[RawCell]:
    cells = notebook.get("cells")
    if not isinstance(cells, list):
        raise KaleLikeError("the notebook's 'cells' is not a list", where)
    result = []
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict):
            raise KaleLikeError(f"{cell_name(index)} is not a JSON object", where)
        if cell.get("cell_type") != "code":
            continue
        result.append(
            RawCell(
                index=index,
                source=_text(cell.get("source", ""), where, index),
                tags=_tags(cell.get("metadata"), where, index),
                cell_id=cell.get("id") if isinstance(cell.get("id"), str) else None,
            )
        )
    return result


def _headings(notebook: dict) -> list[Heading]:
    found = []
    for index, cell in enumerate(notebook.get("cells") or []):
        if not isinstance(cell, dict) or cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else source if isinstance(source, str) else ""
        match = _HEADING.search(text)
        if match:
            found.append(Heading(index, len(match.group(1)), match.group(2).strip()))
    return found


_HEADING = re.compile(r"^(#{1,2})[ \t]+(.*?)[ \t#]*$", re.MULTILINE)


def _text(source: object, where: SourceLocation, index: int) -> str:
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        source = "".join(source)
    if not isinstance(source, str):
        raise KaleLikeError(f"{cell_name(index)}: 'source' must be text", where)
    _encodable(source, where, index, "source")
    return source


def _encodable(text: str, where: SourceLocation, index: int, what: str) -> None:
    """JSON can escape lone surrogates that no file can hold; refuse them with the cell named."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise KaleLikeError(
            f"{cell_name(index)}: its {what} holds an invalid character ({error.reason}) at position {error.start}",
            where,
            "delete the character (it cannot be saved as UTF-8)",
        ) from None


def _tags(metadata: object, where: SourceLocation, index: int) -> tuple[str, ...]:
    tags = (metadata or {}).get("tags", []) if isinstance(metadata, dict) else []
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise KaleLikeError(f"{cell_name(index)}: metadata 'tags' must be a list of strings", where)
    for tag in tags:
        _encodable(tag, where, index, "tags")
    return tuple(tags)
