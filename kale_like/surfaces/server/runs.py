"""Local runs started from the panel: one worker process each, followed through its event stream.

The worker (`run_worker.py`) runs in its own process group, so Stop ends it and every step process
it forked. Events are read on the server's event loop as they arrive; the panel polls `status`.

Each run is also a record in the notebook's run store, `.kale_like/panel_runs/<id>.json` beside
the notebook (written when it starts, as each task starts or ends, and when it ends; the newest
KEPT_RECORDS are kept),
so a restarted Jupyter server lists the runs of a notebook with their final state, rows, metrics,
outputs and logs. A run the server was following when it stopped (or died) ends as `interrupted`:
nothing follows it any more.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from kale_like.surfaces.run_rows import log_tail, stamp, step_rows
from kale_like.surfaces.server.preview import image_file
from kale_like.surfaces.server.service import value_text
from kale_like.surfaces.tracebacks import readable_log

FINAL_STATES = ("succeeded", "failed", "stopped", "interrupted")
FILE_LIMIT = 500  # files listed of a run folder
PREVIEW_SECONDS = 30
RECORDS = "panel_runs"  # the folder of the run records in a store
KEPT_RECORDS = 50  # per store
INTERRUPTED = ("the Jupyter server stopped while this run was going, so nothing followed it to its end; "
               "what its steps wrote until then is in its folder")
_RECORDED = ("id", "source", "params", "state", "message", "pipeline", "steps", "tasks", "warnings", "cells", "metrics",
             "outputs", "started", "finished", "kale_run_id")


def ended_status(status: str, cut: str) -> str:
    """What a task still going when its run ended reads: `cut` (stopped, failed) for one that had
    started, `not run` for one that was only waiting for its turn."""
    return "not run" if status == "pending" else cut


@dataclass
class LocalRun:
    id: str
    source: str  # relative to the Jupyter root, as the panel names it
    store: Path
    params: dict = field(default_factory=dict)  # the values the user changed, as sent
    process: asyncio.subprocess.Process | None = None
    state: str = "starting"  # starting | running | succeeded | failed | stopped
    message: str = ""
    pipeline: str = ""
    steps: list[str] = field(default_factory=list)
    tasks: dict[str, dict] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    cells: dict[str, list[int]] = field(default_factory=dict)  # step -> its notebook cells
    metrics: dict[str, float] = field(default_factory=dict)  # what its steps logged as KFP metrics
    outputs: dict[str, dict] = field(default_factory=dict)  # task label -> its parameters and artifact URIs
    started: float = field(default_factory=time.time)
    finished: float | None = None
    kale_run_id: str = ""
    stderr_path: Path | None = None
    follower: asyncio.Future | None = None  # what follows the run's process to its end (`_follow`)

    def record(self) -> dict:
        """What the run store keeps of the run (a task's log tail only for a failure: its log file has the rest)."""
        data = {key: getattr(self, key) for key in _RECORDED}
        data["tasks"] = {path: {k: v for k, v in task.items() if k != "log_tail" or task.get("status") == "failed"}
                         for path, task in self.tasks.items()}
        return data

    @classmethod
    def from_record(cls, data: dict, store: Path) -> LocalRun:
        """A run read back from its record; one the record leaves going was interrupted (see the module)."""
        run = cls(str(data["id"]), str(data["source"]), store)
        for key in _RECORDED[2:]:
            if key in data:
                setattr(run, key, data[key])
        if run.state not in FINAL_STATES:
            run.state, run.message = "interrupted", INTERRUPTED
            run.finished = run.finished or float(data.get("saved") or run.started)
            for task in run.tasks.values():
                if task.get("status") in ("running", "pending", "retrying"):
                    task["status"] = ended_status(task["status"], "stopped")
        return run

    def save(self) -> None:
        """Write the run's record (a whole new file, renamed into place); the oldest beyond KEPT_RECORDS go."""
        folder = self.store / RECORDS
        try:
            folder.mkdir(parents=True, exist_ok=True)
            partial = folder / f".{self.id}.json.partial"
            partial.write_text(json.dumps({**self.record(), "saved": time.time()}, default=str), encoding="utf-8")
            os.replace(partial, folder / f"{self.id}.json")
            records = sorted(folder.glob("*.json"), key=lambda path: path.stat().st_mtime)
            for old in records[:-KEPT_RECORDS]:
                old.unlink(missing_ok=True)
        except OSError:
            pass  # a store that cannot be written: the run goes on, kept in memory only

    def status(self) -> dict:
        return {
            "id": self.id, "source": self.source, "state": self.state, "message": self.message,
            "pipeline": self.pipeline, "steps": self.steps, "warnings": self.warnings,
            "tasks": list(self.tasks.values()), "started": self.started, "finished": self.finished,
            "seconds": round((self.finished or time.time()) - self.started, 1), "kale_run_id": self.kale_run_id,
            "params": self.params, "rows": self.rows(), "folder": self.folder_name(), "metrics": self.metrics,
        }

    def rows(self) -> list[dict]:
        """One row per step of the user's graph, in graph order and under the step's own name (`run_rows.py`)."""
        return step_rows(self.steps, self.tasks.values(), self.state in FINAL_STATES, self.cells)

    async def previews(self, label: str) -> list[dict]:
        """Previews of a task's outputs (known once the run has ended); KeyError for a task without them.

        Parameter values are JSON already (a string naming an image file the step saved shows that
        picture); stored values are read by a process of its own (`preview.py`), given PREVIEW_SECONDS."""
        outputs = self.outputs[label]
        shown = [(isinstance(value, str) and image_file(name, value, self.store.parent))
                 or {"name": name, "kind": type(value).__name__, "summary": type(value).__name__,
                     "text": value_text(value)} for name, value in outputs.get("parameters", {}).items()]
        artifacts = outputs.get("artifacts", {})
        if artifacts:
            reader = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "kale_like.surfaces.server.preview", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(self.store.parent))
            try:
                out, err = await asyncio.wait_for(reader.communicate(json.dumps(artifacts).encode()), PREVIEW_SECONDS)
            except asyncio.TimeoutError:
                reader.kill()
                await reader.wait()
                return shown + [{"name": n, "kind": "", "summary": f"not read within {PREVIEW_SECONDS} s"}
                                for n in artifacts]
            try:
                shown += json.loads(out)
            except ValueError:
                shown += [{"name": n, "kind": "", "summary": "cannot be read: " + err.decode(errors="replace")[-300:]}
                          for n in artifacts]
        return shown

    def folder(self) -> Path | None:
        """The run's folder in the store (its outputs and logs), once the run has one."""
        if self.kale_run_id:
            return self.store / "runs" / self.kale_run_id
        for task in self.tasks.values():  # a log file is `<store>/runs/<run id>/logs/<task>.log`
            if task.get("log_path"):
                return Path(task["log_path"]).parent.parent
        return None

    def folder_name(self) -> str:
        """The run folder as the panel names it: relative to the Jupyter root, like the notebook."""
        folder = self.folder()
        if folder is None:
            return ""
        return str(PurePosixPath(self.source).parent / ".kale_like" / "runs" / folder.name)

    def files(self) -> list[dict]:
        """The files of the run folder (outputs, logs), relative to it, at most FILE_LIMIT."""
        folder = self.folder()
        if folder is None or not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                found.append({"name": path.relative_to(folder).as_posix(), "bytes": path.stat().st_size})
                if len(found) >= FILE_LIMIT:
                    break
        return found

    def file(self, name: str) -> Path:
        """A file of the run folder by its relative name; KeyError for anything outside it (`..`, a link out)."""
        folder = self.folder()
        if folder is None or not name or PurePosixPath(name).is_absolute():
            raise KeyError(name)
        base = Path(os.path.realpath(folder))
        path = Path(os.path.realpath(folder.joinpath(*PurePosixPath(name).parts)))
        if base not in path.parents or not path.is_file():
            raise KeyError(name)
        return path

    def log(self, label: str) -> str:
        for task in self.tasks.values():
            if task["label"] == label and task.get("log_path"):
                return readable_log(log_tail(Path(task["log_path"])))  # the raw file is in the run folder
        if label == "" and self.stderr_path is not None:
            return log_tail(self.stderr_path)
        raise KeyError(label)


class RunManager:
    """The server's local runs, by id (kept in memory; the last 20 finished ones are remembered)."""

    def __init__(self, log=None):
        self.runs: dict[str, LocalRun] = {}
        self.log = log
        self.scratch = Path(tempfile.mkdtemp(prefix="kale_like_runs_"))
        self.followers: set[asyncio.Task] = set()

    async def start(self, source_path: Path, relative: str, params: dict, image: str = "",
                    max_workers: int | None = None, kfp_version: str = "") -> LocalRun:
        run = LocalRun(uuid.uuid4().hex[:12], relative, source_path.parent / ".kale_like", params=dict(params))
        spec = {"source": str(source_path), "display": relative, "params": params, "image": image, "store": str(run.store),
                "max_workers": max_workers or os.cpu_count() or 1, "kfp_version": kfp_version}
        spec_path = self.scratch / f"{run.id}.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        run.stderr_path = self.scratch / f"{run.id}.stderr"
        stderr = open(run.stderr_path, "wb")  # noqa: SIM115 - handed to the child
        try:
            run.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "kale_like.surfaces.server.run_worker", str(spec_path),
                cwd=str(source_path.parent), stdout=asyncio.subprocess.PIPE, stderr=stderr,
                stdin=asyncio.subprocess.DEVNULL, start_new_session=True, limit=8 * 1024 * 1024,
            )
        finally:
            stderr.close()
        run.state = "running"
        self.runs[run.id] = run
        run.save()
        self._forget_old()
        follower = asyncio.ensure_future(self._follow(run))
        run.follower = follower
        self.followers.add(follower)
        follower.add_done_callback(self.followers.discard)
        return run

    async def _follow(self, run: LocalRun) -> None:
        assert run.process is not None and run.process.stdout is not None and run.stderr_path is not None  # start()
        while True:
            line = await run.process.stdout.readline()
            if not line:
                break
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self._apply(run, event)
        code = await run.process.wait()
        run.finished = run.finished or time.time()
        if run.state == "stopped":
            run.message = run.message or "stopped"
        elif run.state == "running":  # no finished event: the worker died
            run.state = "failed"
            run.message = run.message or f"the run process exited with code {code}: " + log_tail(run.stderr_path)[-2000:]
        for task in run.tasks.values():
            if task["status"] in ("running", "pending", "retrying"):
                task["status"] = ended_status(task["status"], "stopped" if run.state == "stopped" else "failed")
        run.save()

    def _apply(self, run: LocalRun, event: dict) -> None:
        try:
            self._update(run, event)
        finally:
            if event.get("status") != "pending":  # a task waiting changes nothing the record shows
                run.save()

    def _update(self, run: LocalRun, event: dict) -> None:
        kind = event.get("event")
        if kind == "started":
            run.pipeline = event.get("pipeline", "")
            run.steps = event.get("steps", [])
            run.cells = event.get("cells", {})
            run.warnings = event.get("warnings", [])
        elif kind == "task":
            previous = run.tasks.get(event["path"], {})
            merged = {**previous, **{k: v for k, v in event.items() if k != "event" and v not in ("", None)}}
            merged["status"] = event["status"]
            stamp(merged, event["status"], float(event.get("at") or time.time()))
            merged.pop("at", None)
            run.tasks[event["path"]] = merged
        elif kind == "finished":
            if run.state != "stopped":
                run.state = "succeeded" if event.get("status") == "SUCCEEDED" else "failed"
                run.message = event.get("error", "")
            run.finished = time.time()  # what is left is the worker's exit
            run.kale_run_id = event.get("run_id", "")
            run.metrics = event.get("metrics") or {}
            run.outputs = event.get("outputs") or {}
            run.warnings += event.get("warnings", [])
        elif kind == "error":
            if run.state != "stopped":
                run.state = "failed"
                run.message = event.get("message", "")

    async def stop(self, run: LocalRun) -> None:
        if run.process is None or run.state in FINAL_STATES:
            return
        run.state = "stopped"
        run.message = "stopped by the user"
        _signal_group(run.process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(run.process.wait(), 5)
        except asyncio.TimeoutError:
            _signal_group(run.process.pid, signal.SIGKILL)
        if run.follower is not None:  # its steps' final statuses (stopped, not run) before Stop answers
            await asyncio.wait([run.follower], timeout=5)

    async def shutdown(self) -> None:
        """Stop every run and wait until each is followed to its end."""
        for run in list(self.runs.values()):
            await self.stop(run)
        if self.followers:
            await asyncio.wait(list(self.followers), timeout=10)

    def stop_all(self) -> None:
        """At server exit: end every run still going, and record it as interrupted."""
        for run in self.runs.values():
            if run.process is not None and run.state not in FINAL_STATES:
                _signal_group(run.process.pid, signal.SIGKILL)
                run.state, run.message, run.finished = "interrupted", INTERRUPTED, time.time()
                for task in run.tasks.values():
                    if task.get("status") in ("running", "pending", "retrying"):
                        task["status"] = ended_status(task["status"], "stopped")
                run.save()

    def load(self, store: Path, source: str) -> None:
        """Read the records of the runs of `source` (as the panel names the notebook) in `store` that
        this server does not hold: the runs of an earlier server. A record that cannot be read is skipped."""
        folder = store / RECORDS
        if not folder.is_dir():
            return
        for path in folder.glob("*.json"):
            if path.stem in self.runs:
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if _readable(data) and data.get("source") == source and data.get("id") == path.stem:
                    self.runs[path.stem] = LocalRun.from_record(data, store)
            except (OSError, ValueError, KeyError, TypeError):
                continue

    def _forget_old(self) -> None:
        finished = [r for r in self.runs.values() if r.state in FINAL_STATES]
        for run in sorted(finished, key=lambda r: r.started)[:-20]:
            self.runs.pop(run.id, None)


_RECORD_TYPES: dict[str, type | tuple[type, ...]] = {
    "id": str, "source": str, "params": dict, "state": str, "message": str, "pipeline": str, "steps": list,
    "tasks": dict, "warnings": list, "cells": dict, "metrics": dict, "outputs": dict, "started": (int, float),
    "kale_run_id": str}


def _readable(data: object) -> bool:
    """Whether a run record has the shape `LocalRun.record` writes (a damaged or foreign file has not)."""
    return (isinstance(data, dict) and all(isinstance(data.get(key), kinds) for key, kinds in _RECORD_TYPES.items())
            and all(isinstance(task, dict) and isinstance(task.get("path"), str) and isinstance(task.get("label"), str)
                    and isinstance(task.get("status"), str) for task in data["tasks"].values())
            and all(isinstance(step, str) for step in data["steps"]) and re.fullmatch(r"[0-9a-f]+", data["id"])
            is not None)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
