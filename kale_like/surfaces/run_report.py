"""What a local run shows in the terminal: a line per state change, then a summary table."""

from __future__ import annotations

import sys
import threading
import time

from kale_like.backends.local.run import RunResult
from kale_like.backends.local.scheduler import TaskEvent
from kale_like.surfaces.tracebacks import readable_log

_SHOWN = {"running": "started", "done": "done", "cached": "cached (not re-run)", "skipped": "skipped",
          "failed": "FAILED", "retrying": "failed, retrying", "not run": "not run (an upstream step failed)"}


class ConsoleProgress:
    """Prints task state changes to stderr, with counts of pending/running/done/skipped/failed work.

    A task is pending from the moment its DAG instance starts (a loop's iterations when the loop
    starts) until it runs, comes from the cache, is skipped or is not run; "pending" events update
    the counts without a line of their own."""

    def __init__(self, stream=None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
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
            print(f"[kale-like] {event.label}: {_SHOWN.get(event.status, event.status)}{elapsed}  ({tally})",
                  file=self.stream, flush=True)
            if event.status == "failed" and event.error:
                print(f"[kale-like]   error: {event.error}", file=self.stream)
                if event.log_tail:  # the step's output, then only the user's frames of the traceback
                    shown = readable_log(event.log_tail, with_error=False)
                    tail = "\n".join(f"[kale-like]   | {line}" for line in shown.rstrip().splitlines())
                    print(tail, file=self.stream)
                if event.log_path:
                    print(f"[kale-like]   full log: {event.log_path}", file=self.stream, flush=True)


def summary(result: RunResult, seconds: float) -> str:
    """A table of every task: status, duration, whether it came from the cache."""
    rows = [(r.label, r.status, f"{r.seconds:.2f}" if r.status in ("done", "failed") else "-",
             "yes" if r.status == "cached" else "no") for r in result.tasks if r.status != "pending"]
    headers = ("step", "status", "seconds", "cached")
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    table = [line(headers), line(tuple("-" * w for w in widths))] + [line(row) for row in rows]
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
