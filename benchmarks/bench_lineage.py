"""Lineage queries on a store that has seen many runs: `lineage RUN_ID` with and without the
index on events (run_id, task_path).

    python benchmarks/bench_lineage.py [--runs 20] [--tasks 3000]

Builds a lineage database with kale_like's own schema (`Lineage`) in a temporary folder, `runs` runs
of `tasks` loop iterations that each read one artifact and write one, then times
`describe_run` (what `python -m kale_like lineage RUN_ID` prints) for one run, once with the
index and once after dropping it, in this process.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kale_like.backends.local.lineage import Lineage  # noqa: E402
from kale_like.surfaces.lineage_cli import describe_run  # noqa: E402


def build(path: Path, runs: int, tasks: int) -> None:
    lineage = Lineage(path)
    with lineage.connection:
        for r in range(runs):
            lineage.connection.execute("INSERT INTO runs VALUES (?, 'p', 'SUCCEEDED', 0, 0, '{}', '', '', '', 0, '')",
                                       (f"run{r}",))
            lineage.connection.executemany(
                "INSERT INTO tasks VALUES (?, ?, ?, 'comp-step', 'done', 0.01, 0, '', '{}', '', '')",
                [(f"run{r}", f"root/for-loop-1[{t}]/step", f"step[{t}]") for t in range(tasks)])
            lineage.connection.executemany(
                "INSERT INTO events VALUES (?, ?, ?, 'data', ?)",
                [(f"run{r}", f"root/for-loop-1[{t}]/step", direction, f"/store/runs/run{r}/{t}/{direction}")
                 for t in range(tasks) for direction in ("in", "out")])
    lineage.close()


def timed(path: Path, run_id: str) -> float:
    connection = sqlite3.connect(str(path))
    connection.row_factory = sqlite3.Row
    run = connection.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    start = time.perf_counter()
    text = describe_run(connection, run)
    seconds = time.perf_counter() - start
    connection.close()
    assert text.count("\n") > 1
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lineage.sqlite"
        build(path, args.runs, args.tasks)
        with_index = timed(path, "run3")
        with sqlite3.connect(str(path)) as connection:
            connection.execute("DROP INDEX events_task")
        without = timed(path, "run3")
    events = args.runs * args.tasks * 2
    print(f"| store | `lineage RUN_ID` with the index | without | ratio |\n|---|---|---|---|\n"
          f"| {args.runs} runs x {args.tasks} tasks ({events:,} events) | {with_index * 1000:.0f} ms "
          f"| {without * 1000:.0f} ms | {without / with_index:.0f}x |")


if __name__ == "__main__":
    main()
