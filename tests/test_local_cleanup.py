"""A local run killed with `kill -9` leaves nothing running and nothing half-written.

tests/fixtures/local/orphans.py runs four loop iterations at once; each first takes its worker
process down (`os._exit`), so its retry runs on a worker forked in the middle of the run (on one of
the loop's threads, not the run's main thread), then blocks until a release file exists. Only the
run's main process gets SIGKILL, as from `kill -9 <pid>`: its workers must die on their own, not
finish their steps (they would block for two minutes) or wait for work forever. What the killed
run was writing is named `*.partial` and removed by the next run in the same store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_local_resume import wait_for

ORPHANS = Path(__file__).resolve().parent / "fixtures" / "local" / "orphans.py"
RESUME = Path(__file__).resolve().parent / "fixtures" / "local" / "resume.py"
CRASH_TOGETHER = Path(__file__).resolve().parent / "fixtures" / "local" / "crash_together.py"


def children_of(pid: int) -> set[int]:
    """The processes whose parent is `pid` (read from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (a dead orphan stays a zombie until PID 1 reaps it; in a container,
    PID 1 may never do so)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_workers_die_with_a_run_killed_mid_step_and_the_next_run_removes_its_partial_outputs(tmp_path):
    store, notes, release = tmp_path / "store", tmp_path / "notes.jsonl", tmp_path / "release"
    command = [sys.executable, "-m", "kale_like", str(ORPHANS), "--run", "--store", str(store),
               "--max-workers", "4", "--param", f"notes={notes}", "--param", f"release={release}"]
    killed = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: notes.exists() and len(notes.read_text().splitlines()) == 4, 60,
                 "the four retries to start")
        blocked = {json.loads(line)["pid"] for line in notes.read_text().splitlines()}
        workers = children_of(killed.pid)
        assert blocked <= workers and len(workers) >= 4, (blocked, workers)
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        wait_for(lambda: not any(running(pid) for pid in workers), 10, "the worker processes to die")
    finally:
        if killed.poll() is None:
            killed.kill()
        try:
            os.killpg(killed.pid, signal.SIGKILL)  # whatever is left, so a failure leaves nothing running
        except ProcessLookupError:
            pass

    (killed_run,) = (store / "runs").iterdir()
    writing = sorted(p.relative_to(killed_run).as_posix() for p in killed_run.rglob("*.partial"))
    assert writing == [f"root/for-loop-2@{i}/hold.partial" for i in range(4)], writing
    assert not [p for p in killed_run.rglob("hold") if p.is_dir()]  # no task folder under its final name

    release.touch()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert not list(store.rglob("*.partial"))
    assert list((store / "running").iterdir()) == []
    assert len(list(killed_run.rglob("hold"))) == 0  # the killed run's outputs: none, none half-written


def test_a_store_of_an_earlier_version_loses_its_partial_outputs_once(tmp_path):
    """Versions before the run locks left a value killed mid-write for good; the first run of this
    version removes every `*.partial` there, and nothing else."""
    import kale_like

    store = tmp_path / "store"
    old_run = store / "runs" / "20250101-000000-abcdef" / "root" / "train"
    (old_run / "model.partial").mkdir(parents=True)
    (old_run / "model.partial" / "value.pkl").write_bytes(b"half")
    (old_run / "model").mkdir()
    (old_run / "model" / "value.json").write_text("1", encoding="utf-8")
    (store / "cache").mkdir()
    (store / "cache" / "tmpk2j4.partial").write_text("{", encoding="utf-8")
    (store / "cache" / "0123abcd.json").write_text("{}", encoding="utf-8")

    release = tmp_path / "release"
    release.touch()
    result = kale_like.run(RESUME, {"log": str(tmp_path / "notes.jsonl"), "release": str(release)},
                           backend="thread", store=store, echo=False)
    assert result.succeeded, result.error
    assert not list(store.rglob("*.partial"))
    assert (old_run / "model" / "value.json").read_text() == "1" and (store / "cache" / "0123abcd.json").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_run_lock_appears_already_locked_so_a_starting_run_never_takes_it_for_a_dead_one(tmp_path):
    """The lock is taken under a hidden name and renamed into place: `running/<id>` never exists
    unlocked, which another run's cleanup would read as a run that is gone (and remove its outputs)."""
    import fcntl

    from kale_like.backends.local.partial_outputs import RunLock, remove_leftovers

    lock = RunLock(tmp_path, "20260101-000000-abcdef")
    assert sorted(p.name for p in (tmp_path / "running").iterdir()) == ["20260101-000000-abcdef"]
    other = os.open(lock.path, os.O_WRONLY)
    try:
        with pytest.raises(OSError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(other)
    assert remove_leftovers(tmp_path) == [] and lock.path.exists()
    lock.release()
    assert not lock.path.exists()


def test_workers_that_die_at_once_are_each_noticed_and_replaced(tmp_path):
    """Each iteration replaces its crashed worker on its own thread, all at about the same time; no
    new worker may keep a copy of another worker's pipe, or the run would wait forever for that
    worker's step (seen as a run hanging after one of four crashes)."""
    command = [sys.executable, "-m", "kale_like", str(CRASH_TOGETHER), "--run", "--store", str(tmp_path / "store"),
               "--max-workers", "8", "--no-cache", "--param", f"marks={tmp_path / 'marks'}"]
    for _ in range(3):
        for mark in tmp_path.glob("marks.crashed-*"):
            mark.unlink()
        finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert finished.returncode == 0, finished.stderr
        assert "SUCCEEDED" in finished.stdout and "8 of 8 done" in finished.stdout
        assert len(list(tmp_path.glob("marks.crashed-*"))) == 8
