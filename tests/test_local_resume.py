"""A local run killed with SIGKILL resumes: finished steps are cache hits, the killed one runs again.

tests/fixtures/local/resume.py is a chain first -> second -> slow -> last; `slow` blocks until its
`release` file exists. The first run is the command line in a subprocess (its own process group);
once first's and second's cache records are in the store and slow has started, the run's main
process gets SIGKILL, as from `kill -9` (then the rest of its group, the worker processes, so
nothing of it is left running). The release file is created and the same command runs again.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent
RESUME = TESTS / "fixtures" / "local" / "resume.py"


def read_notes(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []


def summary_rows(stdout: str) -> dict[str, tuple[str, str]]:
    """step -> (status, cached) from the summary table the run prints."""
    rows = {}
    for line in stdout.splitlines():
        cells = line.split()
        if len(cells) == 4 and cells[3] in ("yes", "no") and cells[0] != "step":
            rows[cells[0]] = (cells[1], cells[3])
    return rows


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def test_run_killed_with_sigkill_resumes_from_the_cache(tmp_path):
    store, log, release = tmp_path / "store", tmp_path / "notes.jsonl", tmp_path / "release"
    command = [sys.executable, "-m", "kale_like", str(RESUME), "--run", "--store", str(store),
               "--param", f"log={log}", "--param", f"release={release}"]
    cache = store / "cache"

    killed = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for(lambda: len(list(cache.glob("*.json"))) >= 2 and any(n["what"] == "slow-start"
                                                                      for n in read_notes(log)),
                 60, "first and second to finish and slow to start")
    finally:
        os.kill(killed.pid, signal.SIGKILL)  # the run itself, as `kill -9 <pid>`
        killed.wait(timeout=30)
        try:
            os.killpg(killed.pid, signal.SIGKILL)  # its orphaned worker processes
        except ProcessLookupError:
            pass
    assert killed.returncode == -signal.SIGKILL

    # what the killed run left: records for first and second only, none half-written, no output of slow
    records = sorted(cache.iterdir())
    assert len(records) == 2 and all(p.suffix == ".json" for p in records), records
    (first_run,) = (store / "runs").iterdir()
    slow_folder = first_run / "root" / "slow"
    assert not slow_folder.exists() or not any(p.is_file() for p in slow_folder.rglob("*"))
    assert [n["what"] for n in read_notes(log)] == ["first", "second", "slow-start"]

    release.touch()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    rows = summary_rows(resumed.stdout)
    assert rows == {"first": ("cached", "yes"), "second": ("cached", "yes"), "slow": ("done", "no"),
                    "last": ("done", "no")}, resumed.stdout

    seen = read_notes(log)
    assert [n["what"] for n in seen] == ["first", "second", "slow-start", "slow-start", "slow-done", "last"]
    # slow read second's complete output from the first run; last got slow's complete result
    assert seen[3]["x"] == seen[4]["x"] == 1
    assert seen[5]["y"] == 1 * 100 + 100
    assert len(list(cache.glob("*.json"))) == 4 and not list(cache.glob("*.partial"))

    # the lineage of the resumed run: slow read second's artifact from the killed run, and it is whole
    with sqlite3.connect(store / "lineage.sqlite") as connection:
        (resumed_id,) = [row[0] for row in connection.execute("SELECT run_id FROM runs WHERE status = 'SUCCEEDED'")]
        (killed_status,) = [row[0] for row in connection.execute("SELECT status FROM runs WHERE run_id = ?",
                                                                  (first_run.name,))]
        inputs = connection.execute("SELECT uri FROM events WHERE run_id = ? AND task_path = 'root/slow' AND "
                                    "direction = 'in'", (resumed_id,)).fetchall()
    assert killed_status == "RUNNING"  # it never got to record an end
    (uri,) = [row[0] for row in inputs]
    assert Path(uri).is_relative_to(first_run)
    assert json.loads((Path(uri) / "value.json").read_text()) == {"x": 1, "rows": list(range(100))}


def test_ctrl_c_stops_the_run_and_its_running_step_at_once(tmp_path):
    """Ctrl-C in a terminal reaches the run's whole process group: the step running in a worker
    process stops too (it would otherwise block for a minute), the command exits 130 saying it was
    interrupted, without a traceback and with no process of it left; the next run resumes."""
    store, log, release = tmp_path / "store", tmp_path / "notes.jsonl", tmp_path / "release"
    command = [sys.executable, "-m", "kale_like", str(RESUME), "--run", "--store", str(store),
               "--param", f"log={log}", "--param", f"release={release}"]
    interrupted = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
    try:
        wait_for(lambda: any(n["what"] == "slow-start" for n in read_notes(log)), 60, "slow to start")
        started = time.monotonic()
        os.killpg(interrupted.pid, signal.SIGINT)  # as the terminal does on Ctrl-C
        _, stderr = interrupted.communicate(timeout=30)
        waited = time.monotonic() - started
    finally:
        if interrupted.poll() is None:
            os.killpg(interrupted.pid, signal.SIGKILL)
    assert interrupted.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    assert "error: interrupted (Ctrl-C)" in stderr, stderr  # the step's own report
    assert waited < 20, f"took {waited:.1f} s to stop"  # slow would have blocked for 60 s
    wait_for(lambda: not _group_alive(interrupted.pid), 10, "the worker processes to exit")
    assert "slow-done" not in [n["what"] for n in read_notes(log)]

    release.touch()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert summary_rows(resumed.stdout)["second"] == ("cached", "yes"), resumed.stdout


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
