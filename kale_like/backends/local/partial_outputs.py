"""No half-written output under its final name in a local run's store, and no leftovers of runs
that were killed.

A task writes its outputs into `<task folder>.partial/`, renamed to the task folder once the step
has succeeded (`publish`); a value inside is written the same way (`_kl_save_value` in the step
runtime), and so is a cache record. So whatever stops a run (`kill -9`, a power cut, a full disk),
a folder or file without `.partial` in its name is complete, and what a killed run was writing is
all named `*.partial`.

Those leftovers are removed by the next run in the same store (`remove_leftovers`): a run holds an
advisory lock (`flock`) on `running/<run id>` for as long as it, or any worker process it forked,
is alive (the lock is released by the kernel when the last of them dies, however it dies). A lock
file whose lock can be taken belongs to a run that is gone. The lock is not an ordinary file lock
(`fcntl.lockf`) because those are per process: a run in another thread of the same process would
look dead.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock, and no fork either (only the thread backend runs there)
    fcntl = None  # type: ignore[assignment]

SUFFIX = ".partial"


def writing_folder(task_folder: Path) -> Path:
    """Where a task writes its outputs until it has succeeded."""
    return task_folder.with_name(task_folder.name + SUFFIX)


def publish(writing: Path, task_folder: Path, executor_output: dict) -> dict:
    """Move a succeeded task's outputs to their final folder in one rename; the executor output
    with its artifact URIs pointing there (also rewritten in its `executor_output.json`, which a
    reader of the store, such as a KFP tool, takes the URIs from)."""
    old, new = str(writing), str(task_folder)
    moved = False
    for entry in executor_output.get("artifacts", {}).values():
        for artifact in entry.get("artifacts", []):
            uri = artifact.get("uri", "")
            if uri == old or uri.startswith(old + os.sep):
                artifact["uri"] = new + uri[len(old):]
                moved = True
    record = writing / "executor_output.json"
    if moved and record.exists():
        temporary = writing / ("executor_output.json" + SUFFIX)
        temporary.write_text(json.dumps(executor_output), encoding="utf-8")
        os.replace(temporary, record)
    try:
        os.replace(writing, task_folder)
    except FileNotFoundError:  # the step wrote nothing at all
        pass
    except OSError:  # a folder of the same name from an earlier attempt: replaced
        shutil.rmtree(task_folder, ignore_errors=True)
        os.replace(writing, task_folder)
    return executor_output


class RunLock:
    """The lock that marks a run as alive; `release` at the run's end."""

    def __init__(self, store: Path, run_id: str):
        self.path = store / "running" / run_id
        self.descriptor: int | None = None
        if fcntl is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # locked under a name no cleanup looks at, then renamed into place: a run starting meanwhile
        # never finds this run's lock file unlocked (and takes this run for one that is gone)
        hidden = self.path.with_name(f".{self.path.name}{SUFFIX}")
        descriptor = os.open(hidden, os.O_WRONLY | os.O_CREAT, 0o644)
        fcntl.flock(descriptor, fcntl.LOCK_EX)  # a new file: nobody else holds it
        os.replace(hidden, self.path)
        self.descriptor = descriptor

    def release(self) -> None:
        if self.descriptor is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self.descriptor)
        self.descriptor = None


def remove_leftovers(store: Path) -> list[str]:
    """Delete what runs of this store that are gone were writing (their `*.partial` files and
    folders, in their run folder and among the cache records); the ids of those runs."""
    running = store / "running"
    if fcntl is None:
        return []
    if not running.is_dir():
        return _remove_earlier_versions_leftovers(store)
    gone = []
    for lock in running.iterdir():
        if lock.name.startswith("."):
            continue  # a lock being taken (RunLock)
        try:
            descriptor = os.open(lock, os.O_WRONLY)
        except OSError:
            continue  # removed by its run as it finished, or by another run cleaning up
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its run (or one of its worker processes) is alive
            _remove_partials(store / "runs" / lock.name)
            for record in (store / "cache").glob(f"{lock.name}.*{SUFFIX}"):
                record.unlink(missing_ok=True)
            lock.unlink(missing_ok=True)
            gone.append(lock.name)
        finally:
            os.close(descriptor)
    return gone


def _remove_earlier_versions_leftovers(store: Path) -> list[str]:
    """Once, in a store written by a version without run locks: every run folder's `*.partial`
    (those versions left a value killed mid-write there for good) and their cache records being
    written (`tmp*.partial`). A run of this version that starts meanwhile has its lock before its
    folder: it is left alone."""
    runs = store / "runs"
    if not runs.is_dir():
        return []
    cleaned = []
    for folder in runs.iterdir():
        if folder.is_dir() and not (store / "running" / folder.name).exists():
            _remove_partials(folder)
            cleaned.append(folder.name)
    for record in (store / "cache").glob(f"tmp*{SUFFIX}"):
        record.unlink(missing_ok=True)
    return cleaned


def _remove_partials(folder: Path) -> None:
    for parent, folders, files in os.walk(folder):
        for name in [n for n in folders if n.endswith(SUFFIX)]:
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
            folders.remove(name)
        for name in files:
            if name.endswith(SUFFIX):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(parent, name))
