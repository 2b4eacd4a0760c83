"""A failing step's traceback as its author reads it: the error first, then only their own frames.

A step runs inside kfp's executor and kale_like's step runtime, so the traceback in its log starts
with their frames (`component_runner.py`, `kfp/dsl/executor.py`, `_kl_run_step`, ...), which say
nothing to the person who wrote the cell. The compiler runs each piece of user code under a file name
of its own (`backends/kfp/components.py` `_label`): `<cell 6 (train)>` for a notebook cell, numbered
as JupyterLab users count cells, `<pipeline.py:14 (train)>` for a step function. Those frames are
the user's; the innermost one in a cell says which cell to open and which line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADER = "Traceback (most recent call last):"
_FRAME = re.compile(r'^  File "(?P<file>[^"]*)", line (?P<line>\d+), in (?P<function>.*)$')
_USER_FILE = re.compile(r"^<(?:cell (?P<cell>\d+)|[^<>]+\.py:\d+) \([^()]*\)>$")


@dataclass(frozen=True)
class StepFailure:
    """The end of a failed step's log, cut down to what its author needs."""

    error: str  # the exception line(s): `ZeroDivisionError: division by zero`
    frames: tuple[str, ...]  # the user's frames, each with its source line, innermost last
    cell_index: int | None  # the notebook cell (from 0, as nbformat counts) of the innermost user frame
    line: int | None  # the line in that cell

    def text(self) -> str:
        """The error line first, then the user's frames (all of the traceback that is theirs)."""
        return f"{self.error}\n\n{self.where()}" if self.frames else self.error

    def where(self) -> str:
        """The user's frames under a heading that says whose they are."""
        return "where, in your code (most recent call last):\n" + "\n".join(self.frames)


def step_failure(log: str) -> StepFailure | None:
    """The last traceback of `log` without kale_like's and kfp's frames; None when it has none."""
    start = log.rfind(_HEADER)
    if start < 0:
        return None
    lines = log[start + len(_HEADER):].splitlines()[1:]
    frames: list[list[str]] = []
    user: list[bool] = []
    cell_index = line = None
    index = 0
    while index < len(lines) and (lines[index].startswith("  ") or not lines[index].strip()):
        match = _FRAME.match(lines[index])
        if match:
            where = _USER_FILE.match(match["file"])
            frames.append([f"  {match['file'].strip('<>')}, line {match['line']}, in {match['function']}"])
            user.append(where is not None)
            if where is not None and where["cell"] is not None:
                cell_index, line = int(where["cell"]) - 1, int(match["line"])
        elif frames and lines[index].startswith("    ") and not set(lines[index].strip()) <= set("^~ "):
            frames[-1].append(lines[index])
        index += 1
    error = "\n".join(text for text in lines[index:] if text.strip()).strip()
    kept = tuple("\n".join(frame) for frame, mine in zip(frames, user) if mine)
    return StepFailure(error or "the step failed", kept, cell_index, line)


def readable_log(log: str, with_error: bool = True) -> str:
    """`log` with its last traceback cut down to the user's frames (error line first, unless
    `with_error` is off because the caller shows it already); unchanged when no frame is the user's
    (a pipeline compiled elsewhere), so nothing that could help is hidden."""
    failure = step_failure(log)
    if failure is None or not failure.frames:
        return log
    shown = failure.text() if with_error else failure.where()
    return log[:log.rfind(_HEADER)] + shown + "\n"
