"""`python -m kale_like lineage RUN_ID | ARTIFACT_PATH | CONTENT_HASH [--store DIR]`.

For a run: its pipeline, parameters, source and git commit, and every task under the user's step
name (`train[2]`, `pick_best`) with the notebook cells (numbered from 1, as JupyterLab shows them) or
the function its code comes from. For an artifact: the run, step, parameters and input artifacts
that produced it, and what was produced from it.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path

from kale_like.backends.local.content import labelled, stored_prefixes
from kale_like.errors import KaleLikeError, SourceLocation
from kale_like.surfaces.run_rows import task_name


def lineage_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kale-like lineage", description="Where a run or an artifact came from.")
    parser.add_argument("target", help="a run id, an artifact path (or a file in it), or a content hash prefix")
    parser.add_argument("--store", default=".kale_like", help="the store the runs used (default .kale_like)")
    args = parser.parse_args(argv)
    database = Path(args.store) / "lineage.sqlite"
    if not database.exists():
        raise KaleLikeError("no lineage database here", SourceLocation(str(database)),
                            "run a pipeline with --run first, or pass --store")
    connection = sqlite3.connect(str(database))
    connection.row_factory = sqlite3.Row
    try:
        run = connection.execute("SELECT * FROM runs WHERE run_id = ?", (args.target,)).fetchone()
        if run is not None:
            print(describe_run(connection, run))
            return 0
        artifact = find_artifact(connection, args.target)
        if artifact is None:
            raise KaleLikeError(f"no run or artifact matches '{args.target}'", SourceLocation(str(database)),
                                "give a run id from a run's summary, or the path of an output")
        print(describe_artifact(connection, artifact))
        return 0
    finally:
        connection.close()


def find_artifact(connection: sqlite3.Connection, target: str):
    path = Path(target).resolve()
    for candidate in (path, *path.parents):
        row = connection.execute("SELECT * FROM artifacts WHERE uri = ?", (str(candidate),)).fetchone()
        if row is not None:
            return row
    if len(target) >= 8:
        return connection.execute("SELECT * FROM artifacts WHERE content_hash LIKE ? OR content_hash LIKE ? "
                                  "ORDER BY created DESC", tuple(f"{prefix}%" for prefix in stored_prefixes(target))).fetchone()
    return None


def describe_run(connection: sqlite3.Connection, run) -> str:
    lines = [f"run {run['run_id']}: pipeline '{run['pipeline']}', {run['status']}",
             f"  source: {run['source'] or '-'} (sha256 {(run['code_hash'] or '-')[:16]})",
             f"  git commit: {run['git_commit'] or '-'}{' (uncommitted changes)' if run['git_dirty'] else ''}",
             f"  kale_like {run['version']}; parameters: {run['parameters']}", "  tasks:"]
    origins = step_origins(connection, run["run_id"])
    for task in connection.execute("SELECT * FROM tasks WHERE run_id = ? ORDER BY path", (run["run_id"],)):
        name, origin = step_of(task, origins)
        lines.append(f"    {name:<28} {task['status']:<8} {task['seconds'] or 0:6.2f} s  {origin}".rstrip())
        for event in connection.execute("SELECT * FROM events WHERE run_id = ? AND task_path = ? AND direction = "
                                        "'out'", (run["run_id"], task["path"])):
            lines.append(f"      -> {event['name']}: {event['uri']}")
    return "\n".join(lines)


def describe_artifact(connection: sqlite3.Connection, artifact) -> str:
    task = connection.execute("SELECT * FROM tasks WHERE run_id = ? AND path = ?",
                              (artifact["run_id"], artifact["task_path"])).fetchone()
    run = connection.execute("SELECT * FROM runs WHERE run_id = ?", (artifact["run_id"],)).fetchone()
    lines = [f"artifact {artifact['uri']}", f"  content hash: {labelled(artifact['content_hash'])}",
             f"  produced by: run {artifact['run_id']} ('{run['pipeline'] if run else '?'}'), "
             f"step {step_of(task, step_origins(connection, artifact['run_id']))[0] if task else artifact['task_path']}"
             f" as output '{artifact['name']}'"]
    if run is not None:
        origin = step_of(task, step_origins(connection, artifact["run_id"]))[1] if task else ""
        lines.append(f"  code: {run['source'] or '-'}{', ' + origin if origin else ''} at git {run['git_commit'] or '-'}"
                     f"{' (uncommitted changes)' if run['git_dirty'] else ''}; component {task['component'] if task else '?'}")
    if task is not None:
        lines.append(f"  parameters: {json.dumps(json.loads(task['parameters'] or '{}'), sort_keys=True)}")
    lines.append("  inputs:")
    for event in connection.execute("SELECT * FROM events WHERE run_id = ? AND task_path = ? AND direction = 'in'",
                                    (artifact["run_id"], artifact["task_path"])):
        source = connection.execute("SELECT * FROM artifacts WHERE uri = ?", (event["uri"],)).fetchone()
        origin = f" (from {source['task_path']} in run {source['run_id']})" if source else ""
        lines.append(f"    {event['name']}: {event['uri']}{origin}")
    lines.append("  produced from it:")
    for event in connection.execute("SELECT DISTINCT run_id, task_path FROM events WHERE uri = ? AND direction = "
                                    "'in'", (artifact["uri"],)):
        for output in connection.execute("SELECT * FROM events WHERE run_id = ? AND task_path = ? AND direction = "
                                         "'out'", (event["run_id"], event["task_path"])):
            lines.append(f"    {output['uri']} (step {event['task_path']}, run {event['run_id']})")
    return "\n".join(lines)


def step_origins(connection: sqlite3.Connection, run_id: str) -> dict[str, sqlite3.Row]:
    """component -> its step and where its code is (a store from before the `steps` table: none)."""
    try:
        return {row["component"]: row for row in connection.execute("SELECT * FROM steps WHERE run_id = ?", (run_id,))}
    except sqlite3.OperationalError:
        return {}


def step_of(task: sqlite3.Row, origins: dict[str, sqlite3.Row]) -> tuple[str, str]:
    """(the task as the user names it: their step's name and a loop iteration's index, `train[2]`;
    where its code is: `notebook cells 2, 3` or `function ...`, '' when not known)."""
    origin = origins.get(task["component"])
    # a component shared by several steps names none: the task's path does
    name = task_name(task["path"], task["label"], origin["step"] if origin is not None else "")
    where = ""
    if origin is not None and origin["notebook_cells"]:
        cells = origin["notebook_cells"].split(",")
        where = f"notebook cell{'s' if len(cells) > 1 else ''} {', '.join(cells)}"
    elif origin is not None and origin["function"]:
        where = f"function {origin['function']}"
    return name, where
