"""What the command line tells of a local run, in the user's terms: the summary table names the
user's steps (`pick`, not KFP's `pick-best`-style task names), a loop as one row with its
iterations, kale_like's own tasks counted below (the live progress lines name them alike); the lineage of the run names each task's step and
its notebook cells, numbered from 1 as JupyterLab shows them."""

from __future__ import annotations

import re

import nbformat

from kale_like.surfaces.cli import main
from run_view_cells import RUN_VIEW_CELLS


def test_the_run_summary_and_the_lineage_name_the_users_steps_and_cells(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    notebook = nbformat.v4.new_notebook()
    for source, tags in RUN_VIEW_CELLS:  # a loop, a condition and a step that fails in cell 6
        notebook.cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": tags}))
    nbformat.write(notebook, tmp_path / "flow.ipynb")
    assert main(["flow.ipynb", "--run", "--param", "floor=5", "--store", "store"]) != 0
    out, err = capsys.readouterr()
    # the live lines too: the user's step names, a loop's iteration by its index
    assert "[kale-like] load_data: done" in err and "[kale-like] train[2]: done" in err
    assert "[kale-like] audit: FAILED" in err and "load-data" not in err
    table = out.split("\n\n", 1)[0].splitlines()
    assert table[0].split() == ["step", "status", "seconds", "cached", "iterations"]
    rows = [re.split(r"\s{2,}", line.strip()) for line in table[2:] if not line.startswith("(")]
    assert [(row[0], row[1]) for row in rows] == [("load_data", "done"), ("train", "done"), ("pick", "done"),
                                                  ("deploy", "skipped"), ("audit", "failed")]
    assert rows[1][-1] == "3 of 3 done"
    assert re.search(r"^\(and \d+ tasks? kale_like added for loops, branches and values: ", out, re.M), out
    assert "load-data" not in out

    run_id = re.search(r"^run (\S+) of 'flow'", out, re.M).group(1)
    assert main(["lineage", run_id, "--store", "store"]) == 0
    lineage = capsys.readouterr().out
    for task, status, cell in (("load_data", "done", 2), ("train[1]", "done", 3), ("pick", "done", 4),
                               ("audit", "failed", 6)):
        assert re.search(rf"^\s+{re.escape(task)}\s+{status}\s+[0-9.]+ s  notebook cell {cell}$", lineage, re.M), \
            lineage
