"""What a local run shows in the terminal: a line per state change, then a summary table of the
user's steps."""

from __future__ import annotations

import sys
import threading
import time

from kale_like.backends.local.run import RunResult
from kale_like.backends.local.scheduler import TaskEvent
from kale_like.surfaces.run_rows import step_rows, task_name, task_step
from kale_like.surfaces.tracebacks import readable_log

_SHOWN = {"running": "started", "done": "done", "cached": "cached (not re-run)", "skipped": "skipped",
          "failed": "FAILED", "retrying": "failed, retrying", "not run": "not run (an upstream step failed)"}


class ConsoleProgress:
    """Prints task state changes to stderr, with counts of pending/running/done/skipped/failed work.

    A task is pending from the moment its DAG instance starts (a loop's iterations when the loop
    starts) until it runs, comes from the cache, is skipped or is not run; "pending" events update
    the counts without a line of their own."""

    def __init__(self, stream=None, quiet: bool = False, steps: list[str] | None = None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.steps = set(steps or ())  # the user's steps: their tasks are named as the user names them
        self.lock = threading.Lock()
        self.started = time.perf_counter()
        self.pending: set[str] = set()
        self.counts = {"pending": 0, "running": 0, "done": 0, "skipped": 0, "failed": 0, "not run": 0}

    def __call__(self, event: TaskEvent) -> None:
        with self.lock:
            if event.status == "pending":
                self.pending.add(event.path)
            else:
                self.pending.discard(event.path)
            self.counts["pending"] = len(self.pending)
            if event.status == "running":
                self.counts["running"] += 1
            elif event.status in ("done", "cached", "failed", "skipped", "not run"):
                if event.status in ("done", "failed") and self.counts["running"]:
                    self.counts["running"] -= 1
                key = "done" if event.status == "cached" else event.status
                self.counts[key] += 1
            if event.status == "pending" or (self.quiet and event.status != "failed"):
                return
            elapsed = f" in {event.seconds:.2f} s" if event.status in ("done", "failed") else ""
            tally = ", ".join(f"{n} {k}" for k, n in self.counts.items() if n)
            print(f"[kale-like] {self.name(event)}: {_SHOWN.get(event.status, event.status)}{elapsed}  ({tally})",
                  file=self.stream, flush=True)
            if event.status == "failed" and event.error:
                print(f"[kale-like]   error: {event.error}", file=self.stream)
                if event.log_tail:  # the step's output, then only the user's frames of the traceback
                    shown = readable_log(event.log_tail, with_error=False)
                    tail = "\n".join(f"[kale-like]   | {line}" for line in shown.rstrip().splitlines())
                    print(tail, file=self.stream)
                if event.log_path:
                    print(f"[kale-like]   full log: {event.log_path}", file=self.stream, flush=True)


    def name(self, event: TaskEvent) -> str:
        """`pick_best` for KFP's task `pick-best` of the user's step (`train[2]` for an iteration); a task
        of kale_like's own keeps KFP's name."""
        return task_name(event.path, event.label) if task_step(event.path) in self.steps else event.label


def summary(result: RunResult, seconds: float, steps: list[str] | None = None) -> str:
    """A table of the run's steps under the user's names (`pick_best`, not KFP's task `pick-best`), in
    the graph's order: status, duration, whether it came from the cache, and a loop's iterations.

    `steps`: the user's steps of the graph (`run_rows.step_rows` gathers each one's tasks); the tasks
    of no such step (kale_like's own, for loops and branches) are counted below the table. Without
    it (a compiled YAML file run), every task's step is shown, in the order the tasks ran."""
    reports = [r for r in result.tasks if r.status != "pending"]
    names = steps if steps is not None else list(dict.fromkeys(task_step(r.path) for r in reports))
    tasks = [{"path": r.path, "label": r.label, "status": r.status, "seconds": r.seconds} for r in reports]
    shown = step_rows(names, tasks, ended=True)
    loops = any(row["loop"] for row in shown)
    rows = [(row["step"], row["status"], f"{row['seconds']:.2f}" if row["status"] in ("done", "failed") else "-",
             "yes" if row["status"] == "cached" else "no")
            + ((f"{row['done']} of {row['total']} done" if row["loop"] else "",) if loops else ())
            for row in shown]
    headers = ("step", "status", "seconds", "cached") + (("iterations",) if loops else ())
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    table = [line(headers), line(tuple("-" * w for w in widths))] + [line(row) for row in rows]
    own = [r.label for r in reports if task_step(r.path) not in names]
    if own:
        table.append(f"(and {len(own)} task{'s' if len(own) != 1 else ''} kale_like added for loops, branches and "
                     f"values: {', '.join(own[:6])}{', ...' if len(own) > 6 else ''})")
    counts: dict[str, int] = {}
    for report in result.tasks:
        counts[report.status] = counts.get(report.status, 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    table.append("")
    table.append(f"run {result.run_id} of '{result.pipeline}': {result.status} in {seconds:.2f} s ({tally})")
    table.append(f"outputs and logs: {result.store}")
    if result.error and not result.succeeded:
        table.append(f"error: {result.error}")
    table += [f"warning: {w}" for w in result.warnings]
    return "\n".join(table)
