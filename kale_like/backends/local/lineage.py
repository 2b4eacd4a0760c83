"""Lineage of local runs in one SQLite file: runs, tasks, artifacts (with content hashes), events.

It answers "which run, which inputs, which code produced this artifact?" and "what was produced
from it?". Only parameter values and artifact locations are stored; secrets reach steps as
environment variables on a cluster and never appear here.

Tables: `runs`; `tasks` (one per task of a run, `label` as KFP names it: `pick-best`, `train[2]`);
`steps` (one per component a run executes: the `step` as the user named it, `pick_best`, and where its
code is: `notebook_cells`, the cells numbered from 1 as JupyterLab shows them, `1,3`, or `function`,
the Python function and its file and line); `artifacts` (with content hashes); `events` (which task
read or wrote which artifact). The steps come from the lineage metadata each compiled component
carries (`backends/kfp/components.py`), whose `notebook_cells` are numbered the same way.
"""

from __future__ import annotations

import ast
import json
import re
import sqlite3
import threading
import time
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, pipeline TEXT, status TEXT, started REAL, finished REAL,
    parameters TEXT, source TEXT, code_hash TEXT, git_commit TEXT, git_dirty INTEGER, version TEXT
);
CREATE TABLE IF NOT EXISTS tasks (
    run_id TEXT, path TEXT, label TEXT, component TEXT, status TEXT, seconds REAL, cached INTEGER,
    error TEXT, parameters TEXT, log_path TEXT, code_hash TEXT, PRIMARY KEY (run_id, path)
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT, component TEXT, step TEXT, notebook_cells TEXT, function TEXT, PRIMARY KEY (run_id, component)
);
CREATE TABLE IF NOT EXISTS artifacts (
    uri TEXT PRIMARY KEY, content_hash TEXT, run_id TEXT, task_path TEXT, name TEXT, created REAL
);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT, task_path TEXT, direction TEXT, name TEXT, uri TEXT
);
CREATE INDEX IF NOT EXISTS events_uri ON events (uri);
CREATE INDEX IF NOT EXISTS events_task ON events (run_id, task_path);
CREATE INDEX IF NOT EXISTS artifacts_hash ON artifacts (content_hash);
"""


class Lineage:
    """A connection to the lineage database, safe to use from several threads."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        self.lock = threading.Lock()
        # WAL with NORMAL sync: a commit per finished task without an fsync each (one fsync per task
        # was the largest per-step cost measured); the database stays consistent after a crash.
        # Creating a new database (switching it to WAL, the schema) is done without syncs: 20-40 ms
        # of fsyncs otherwise, for an empty file that only an OS crash in that millisecond could harm.
        self.connection.execute("PRAGMA synchronous=OFF")
        self.connection.execute("PRAGMA journal_mode=WAL")
        with self.lock, self.connection:
            self.connection.executescript(_SCHEMA)
        self.connection.execute("PRAGMA synchronous=NORMAL")

    def start_run(self, run_id: str, ir, parameters: dict, context: dict) -> None:
        from kale_like import __version__

        with self.lock, self.connection:
            self.connection.execute(
                "INSERT INTO runs VALUES (?, ?, 'RUNNING', ?, NULL, ?, ?, ?, ?, ?, ?)",
                (run_id, ir.name, time.time(), json.dumps(parameters, default=str), context.get("source", ""),
                 context.get("code_hash", ""), context.get("git_commit", ""), int(bool(context.get("git_dirty"))),
                 __version__),
            )
            self.connection.executemany("INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?)",
                                        [(run_id, *origin) for origin in step_origins(ir)])

    def record_task(self, run_id: str, event) -> None:
        import hashlib

        code_hash = hashlib.sha256(event.component.encode()).hexdigest() if event.component else ""
        parameters = json.dumps(event.inputs.get("parameters", {}), default=str, sort_keys=True)
        with self.lock, self.connection:
            self.connection.execute(
                "INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, event.path, event.label, event.component, event.status, event.seconds,
                 int(event.status == "cached"), event.error, parameters, event.log_path, code_hash),
            )
            for direction, values in (("in", event.inputs.get("artifacts", {})),
                                      ("out", event.outputs.get("artifacts", {}))):
                for name, uris in values.items():
                    for uri in uris:
                        self.connection.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                                                (run_id, event.path, direction, name, uri))
                        if direction == "out":
                            self.connection.execute(
                                "INSERT OR IGNORE INTO artifacts VALUES (?, ?, ?, ?, ?, ?)",
                                (uri, event.hashes.get(uri, ""), run_id, event.path, name, time.time()),
                            )

    def finish_run(self, run_id: str, status: str) -> None:
        with self.lock, self.connection:
            self.connection.execute("UPDATE runs SET status = ?, finished = ? WHERE run_id = ?",
                                    (status, time.time(), run_id))

    def close(self) -> None:
        self.connection.close()


_LINEAGE_ARGUMENT = re.compile(r"^\s+lineage=(\{.*\}),$", re.MULTILINE)


def step_origins(ir) -> list[tuple[str, str, str, str]]:
    """(component, step, notebook cells numbered from 1, function) of each component the pipeline runs
    that carries kale_like's lineage metadata (a component of another origin has none: left out)."""
    found = []
    executors = ir.spec.get("deploymentSpec", {}).get("executors", {})
    for name, component in ir.spec.get("components", {}).items():
        command = (executors.get(component.get("executorLabel", "")) or {}).get("container", {}).get("command", [])
        match = _LINEAGE_ARGUMENT.search(command[-1]) if command and isinstance(command[-1], str) else None
        try:
            lineage = ast.literal_eval(match.group(1)) if match else None
        except (ValueError, SyntaxError):
            lineage = None
        if not isinstance(lineage, dict):
            continue
        cells = [cell.strip() for cell in str(lineage.get("notebook_cells", "")).split(",") if cell.strip().isdigit()]
        found.append((name, str(lineage.get("step", "")), ",".join(cells), str(lineage.get("function", ""))))
    return found
