"""Errors users see, with the place in their source that caused them.

Every problem the converter can find in a user's input is a `KaleLikeError`. It carries a
`SourceLocation` as data, so the CLI, the JupyterLab panel and tests can all render or inspect
the same position without re-parsing a message. Several problems found in one pass are reported
together (`KaleLikeErrors`) so a user fixes them all in one round trip.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


def cell_name(index: int) -> str:
    """A cell as messages name it: `cell 1` is the first cell, as people count the cells they see in
    JupyterLab, while nbformat's index (`cell_index`, what the panel navigates by) starts at 0."""
    return f"cell {index + 1}"


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """Where a problem is: a file, and optionally a notebook cell and a line/column in it.

    `cell_index` counts every cell of the notebook (markdown too), from 0, as nbformat stores them;
    messages show it from 1 (`cell_name`); `line` and `column` are 1-based within that cell (or the
    file for `.py` sources).
    """

    path: str
    cell_index: int | None = None
    step: str | None = None
    line: int | None = None
    column: int | None = None

    def render(self) -> str:
        """Render as `path:cell 3 (step train):12:5`, leaving out what is unknown."""
        text = self.path
        if self.cell_index is not None:
            text += f":{cell_name(self.cell_index)}"
            if self.step:
                text += f" (step {self.step})"
        if self.line is not None:
            text += f":{self.line}"
            if self.column is not None:
                text += f":{self.column}"
        return text


class KaleLikeError(ValueError):
    """A problem in the user's input: what is wrong, where, and what to do about it."""

    def __init__(self, message: str, location: SourceLocation | None = None, hint: str = ""):
        self.message = message
        self.location = location
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        """One line `place: message`, followed by the hint on its own line when there is one."""
        head = f"{self.location.render()}: {self.message}" if self.location else self.message
        return f"{head}\n  hint: {self.hint}" if self.hint else head

    def sort_key(self) -> tuple:
        loc = self.location
        if loc is None:
            return ("", -1, -1, -1, self.message)
        return (loc.path, loc.cell_index or -1, loc.line or -1, loc.column or -1, self.message)


class KaleLikeErrors(KaleLikeError):
    """Several input problems found in one pass, sorted by position and reported at once."""

    def __init__(self, errors: list[KaleLikeError]):
        self.errors = sorted(errors, key=KaleLikeError.sort_key)
        count = len(self.errors)
        header = f"{count} problem{'s' if count != 1 else ''} found:"
        body = "\n".join(e.render() for e in self.errors)
        super().__init__(f"{header}\n{body}")

    def render(self) -> str:  # noqa: D102 - the message already holds every error
        return self.message


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """The choice closest to a mistyped `word` ('' when none is close): a hint names one fix, not a list."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else ""


def raise_collected(errors: list[KaleLikeError]) -> None:
    """Raise nothing, the one error, or all of them together."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise KaleLikeErrors(errors)


class InternalError(RuntimeError):
    """A bug in kale_like itself (e.g. it produced IR that fails the structural check)."""
