"""A local run as its author reads it: one row per step of their graph, under their step names.

KFP names tasks after their steps (`load-data`), numbers loop iterations (`train[2]`) and adds tasks
of its own (`condition-2`, and the generated steps of `lowering/`). The panel's run view and the
notebook's progress widget both show `step_rows`: a row gathers a step's tasks (a loop's iterations,
`done` of `total`), and tasks of no user step stay out of the rows (their failure is in the run's
error). A failed step's row carries its error line and the user's frames (`tracebacks.py`).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from kale_like.surfaces.tracebacks import step_failure

LOG_LIMIT = 64 * 1024
_ORDER = ("failed", "running", "retrying", "stopped", "pending", "not run")  # the row shows the first found
_ENDED = ("done", "cached", "skipped", "failed", "not run", "stopped")


def stamp(task: dict, status: str, at: float) -> None:
    """Note on a task (a dict of `step_rows`) when it started and ended (`at`: the event's wall clock),
    from which a loop's row shows the whole loop's time, first start to last end."""
    if status in ("running", "retrying"):
        task.setdefault("started_at", at)
    elif status in _ENDED:
        task["ended_at"] = at


def task_step(path: str) -> str:
    """The step a task runs, from its path (`root/for-loop-1[2]/train-model` -> `train_model`)."""
    return re.sub(r"\[\d+\]$", "", path.rsplit("/", 1)[-1]).replace("-", "_")


def task_name(path: str, label: str, step: str = "") -> str:
    """A task as its author names it: their step's name (`step`, else from the path) and, for a loop's
    iteration, its index (`train[2]` for KFP's `train[2]` of `root/for-loop-1[2]/train`)."""
    iteration = re.search(r"\[\d+\]$", label)
    return (step or task_step(path)) + (iteration.group(0) if iteration else "")


def step_rows(steps: list[str], tasks: Iterable[dict], ended: bool,
              cells: dict[str, list[int]] | None = None) -> list[dict]:
    """One row per step, in the order of `steps` (the graph's); `ended`: a step without a task did not run.

    A task is a dict with `path`, `label`, `status`, `seconds` and, for a failure, `error`,
    `log_tail` and `log_path` (what the run's observer reports)."""
    gathered: dict[str, list[dict]] = {name: [] for name in steps}
    for task in tasks:
        name = task_step(task["path"])
        if name in gathered:
            gathered[name].append(task)
    return [_row(name, found, ended, (cells or {}).get(name, [])) for name, found in gathered.items()]


def _row(step: str, tasks: list[dict], ended: bool, cells: list[int]) -> dict:
    statuses = {task["status"] for task in tasks}
    status = next((s for s in _ORDER if s in statuses), None)
    if status is None:
        status = ("skipped" if statuses == {"skipped"} else "cached" if statuses == {"cached"}
                  else "done" if tasks else "not run" if ended else "pending")
    failed = next((task for task in tasks if task["status"] == "failed"), None)
    row = {"step": step, "status": status, "cells": cells,
           "done": sum(task["status"] in ("done", "cached", "skipped") for task in tasks), "total": len(tasks),
           "loop": any(task["label"].endswith("]") for task in tasks),
           "seconds": _seconds(tasks),
           "log_task": (failed or (tasks[0] if tasks else {})).get("label", "")}
    if failed is not None:
        row.update(_failure(failed))
    return row


def _seconds(tasks: list[dict]) -> float:
    """A step's time: its task's, or for a loop the wall time from its first iteration's start to its
    last one's end (now while one runs), so 4 iterations of 3 s one at a time read 12 s, not 3 s."""
    longest = max((task.get("seconds") or 0.0 for task in tasks), default=0.0)
    if len(tasks) < 2:
        return longest
    starts = [task["started_at"] if "started_at" in task else task["ended_at"] - (task.get("seconds") or 0.0)
              for task in tasks if "started_at" in task or "ended_at" in task]
    ends = [task["ended_at"] for task in tasks if "ended_at" in task]
    if any(task.get("status") in ("running", "retrying") and "ended_at" not in task for task in tasks):
        ends.append(time.time())
    if not starts or not ends:
        return longest
    return round(max(longest, max(ends) - min(starts)), 3)


def _failure(task: dict) -> dict:
    """What a failed task shows: its error line first and the user's frames only, with the cell (from 0)
    and line they point at; the raw log stays one click away."""
    log = log_tail(Path(task["log_path"])) if task.get("log_path") else task.get("log_tail") or ""
    failure = step_failure(log) or step_failure(task.get("log_tail") or "")
    if failure is None:
        return {"error": task.get("error") or "the step failed", "error_cell": None, "error_line": None}
    return {"error": failure.text(), "error_cell": failure.cell_index, "error_line": failure.line}


def log_tail(path: Path) -> str:
    """The last LOG_LIMIT bytes of a log file ('' when it cannot be read)."""
    try:
        with open(path, "rb") as stream:
            stream.seek(0, os.SEEK_END)
            size = stream.tell()
            stream.seek(max(0, size - LOG_LIMIT))
            text = stream.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return text if size <= LOG_LIMIT else "…\n" + text
