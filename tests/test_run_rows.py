"""A run's rows as the panel and the notebook widget show them (`run_rows.py`, `runs.py`): a loop's
time is the whole loop's, a step that never started reads `not run` when the run is stopped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kale_like.surfaces.run_rows import stamp, step_rows
from kale_like.surfaces.server.runs import LocalRun, RunManager


def _loop_events(start: float = 1000.0):
    """Four iterations of 3 s, one at a time (parallelism:1): the loop takes 12 s."""
    for index in range(4):
        begin = start + 3 * index
        yield f"root/for-loop-1[{index}]/train", f"train[{index}]", "running", 0.0, begin
        yield f"root/for-loop-1[{index}]/train", f"train[{index}]", "done", 3.0, begin + 3


def test_a_loops_row_shows_the_whole_loops_wall_time_not_one_iterations():
    tasks: dict[str, dict] = {}
    for path, label, status, seconds, at in _loop_events():
        task = tasks.setdefault(path, {"path": path, "label": label})
        task.update(status=status, seconds=seconds)
        stamp(task, status, at)
    (row,) = step_rows(["train"], tasks.values(), ended=True)
    assert (row["done"], row["total"]) == (4, 4)
    assert row["seconds"] == pytest.approx(12.0)


def test_parallel_iterations_take_the_time_of_the_longest_span():
    tasks = []
    for index, (begin, seconds) in enumerate(((0.0, 3.0), (0.5, 2.0), (1.0, 4.0))):
        task = {"path": f"root/for-loop-1[{index}]/train", "label": f"train[{index}]", "status": "done",
                "seconds": seconds}
        stamp(task, "running", 100 + begin)
        stamp(task, "done", 100 + begin + seconds)
        tasks.append(task)
    (row,) = step_rows(["train"], tasks, ended=True)
    assert row["seconds"] == pytest.approx(5.0)  # from 100.0 to 105.0


def test_a_single_step_keeps_its_own_time_and_old_records_without_stamps_still_read():
    (row,) = step_rows(["load"], [{"path": "root/load", "label": "load", "status": "done", "seconds": 2.5}], True)
    assert row["seconds"] == 2.5
    old = [{"path": f"root/for-loop-1[{i}]/train", "label": f"train[{i}]", "status": "done", "seconds": 3.0}
           for i in range(2)]
    assert step_rows(["train"], old, True)[0]["seconds"] == 3.0


def test_the_panels_run_stamps_each_task_with_the_worker_events_time(tmp_path):
    manager = RunManager()
    run = LocalRun("abc", "live.ipynb", tmp_path)
    manager._update(run, {"event": "started", "steps": ["train"]})
    for path, label, status, seconds, at in _loop_events():
        manager._update(run, {"event": "task", "path": path, "label": label, "status": status, "seconds": seconds,
                              "at": at})
    assert all("at" not in task for task in run.tasks.values())
    (row,) = run.rows()
    assert row["seconds"] == pytest.approx(12.0)


def test_the_widget_shows_a_loops_wall_time(monkeypatch):
    pytest.importorskip("ipywidgets")
    from kale_like.backends.local.scheduler import TaskEvent
    from kale_like.surfaces import widgets

    progress = widgets.RunProgress("test")
    progress.expect(["train"])
    for path, label, status, seconds, at in _loop_events():
        monkeypatch.setattr(widgets.time, "time", lambda at=at: at)
        progress.observe(TaskEvent(path, label, status, seconds))
    assert re.search(r"<td>12\.0 s</td>", progress.table.value), progress.table.value


# ------------------------------------------------------------------ a stopped run's waiting steps


def _stopped_run(tmp_path: Path) -> LocalRun:
    run = LocalRun("abc", "live.ipynb", tmp_path)
    run.steps = ["load", "train", "pick"]
    run.tasks = {
        "root/load": {"path": "root/load", "label": "load", "status": "done", "seconds": 1.0},
        "root/for-loop-1[0]/train": {"path": "root/for-loop-1[0]/train", "label": "train[0]", "status": "running"},
        "root/pick": {"path": "root/pick", "label": "pick", "status": "pending"},
    }
    return run


def test_stop_marks_a_step_that_never_started_not_run(tmp_path):
    import asyncio

    run = _stopped_run(tmp_path)
    run.state = "stopped"

    class Ended:
        pid = 0

        def __init__(self) -> None:
            self.stdout = asyncio.StreamReader()
            self.stdout.feed_eof()

        async def wait(self):
            return -15

    async def follow():
        run.process = Ended()  # type: ignore[assignment]
        run.stderr_path = tmp_path / "stderr"
        await RunManager()._follow(run)

    # a loop of its own, never the thread's: asyncio.run() would leave the thread without one, and the
    # server tests that run next in this process ask for it
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(follow())
    finally:
        loop.close()
    rows = {row["step"]: row["status"] for row in run.rows()}
    assert rows == {"load": "done", "train": "stopped", "pick": "not run"}


def test_an_interrupted_run_read_back_marks_a_waiting_step_not_run(tmp_path):
    run = _stopped_run(tmp_path)
    run.state = "running"
    again = LocalRun.from_record(run.record(), tmp_path)
    assert again.state == "interrupted"
    assert {row["step"]: row["status"] for row in again.rows()} == {"load": "done", "train": "stopped",
                                                                     "pick": "not run"}


# ------------------------------------------------------------------ the status glyphs


def _panel_glyphs() -> dict[str, str]:
    source = (Path(__file__).parent.parent / "labextension" / "src" / "panel.ts").read_text(encoding="utf-8")
    table = source[source.index("const STATUS_ICON"):].split("};", 1)[0]
    return dict(re.findall(r"^ *'?([a-z ]+?)'?: '(.)'", table, re.M))


def test_every_status_glyph_is_in_dejavu_sans():
    """The panel and the widget draw in a sans-serif font; `⤼` (skipped) was only in DejaVu Serif."""
    import shutil
    import subprocess

    from kale_like.surfaces.widgets import STATUS_ICON

    if shutil.which("fc-list") is None or "DejaVu Sans" not in subprocess.run(
            ["fc-list"], capture_output=True, text=True).stdout:
        pytest.skip("needs fontconfig and DejaVu Sans")
    glyphs = set(STATUS_ICON.values()) | set(_panel_glyphs().values())
    assert _panel_glyphs()["skipped"] == STATUS_ICON["skipped"]
    for glyph in glyphs:
        families = subprocess.run(["fc-list", f":charset={ord(glyph):x}", "family"], capture_output=True,
                                  text=True).stdout
        assert any(line.split(",")[0] == "DejaVu Sans" for line in families.splitlines()), (glyph, families)
