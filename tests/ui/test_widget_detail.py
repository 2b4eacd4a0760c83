"""End to end, in Chromium: the notebook's run widget (`kale_like.surfaces.widgets.run`) in a real
JupyterLab; a click on a step's button under the rows shows its log and its outputs below, a loop's
iterations in a menu, a failed step's error line first with only the user's frames."""

from __future__ import annotations

import nbformat
from playwright.sync_api import expect

from ui_lab import ARTIFACTS, open_lab

VISIBLE = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def _notebook(path, cells, kernel: bool = False) -> None:
    notebook = nbformat.v4.new_notebook()
    for source, tags in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        notebook.cells.append(cell)
    if kernel:
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


def test_a_click_on_a_step_in_the_run_widget_shows_its_log_and_outputs(page, lab):
    _notebook(lab.root / "widget_detail.ipynb", [
        ("import pandas as pd", ["imports"]),
        ("seeds = [1, 2]", ["pipeline-parameters"]),
        ("print('building the frame')\nframe = pd.DataFrame({'alpha': [1, 2], 'beta': [0.5, 1.5]})", ["step:build"]),
        ("print('squaring seed', seed)\nsquare = seed * seed", ["step:square", "foreach:seed:seeds"]),
        ("def audit(f):\n    raise ValueError('only %d rows' % len(f))\n\nprint('auditing', sum(square))\naudit(frame)",
         ["step:audit"]),
    ])
    _notebook(lab.root / "widget_detail_demo.ipynb", [
        ("from kale_like.surfaces.widgets import run\n"
         "result = run('widget_detail.ipynb', store='.kale_like_widget_detail', max_workers=1)\n"
         "print(result.status)", []),
    ], kernel=True)
    open_lab(page, lab)
    page.evaluate("window.jupyterapp.commands.execute('docmanager:open', {path: 'widget_detail_demo.ipynb'})")
    page.wait_for_selector(f"{VISIBLE} .jp-Cell")
    page.wait_for_function("window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel?.status === 'idle'",
                           timeout=90_000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    progress = page.locator(f"{VISIBLE} .kale-like-progress")
    expect(progress.locator(".kale-like-state")).to_have_text("failed", timeout=180_000)
    detail = progress.locator(".kale-like-step-detail")
    # a failed run opens on its failed step: the error line first, then only the user's frames, then its log
    expect(detail.locator(".kale-like-error")).to_contain_text("ValueError: only 2 rows")
    expect(detail.locator(".kale-like-error")).to_contain_text("cell 5 (audit), line 5, in <module>")
    expect(detail.locator(".kale-like-error")).not_to_contain_text("kfp")
    expect(detail.locator(".kale-like-log")).to_contain_text("auditing 5")
    # a click on another step's button: its log and its DataFrame's first rows as a table
    picker = progress.locator(".kale-like-step-picker")
    picker.get_by_role("button", name="build", exact=True).click()
    expect(detail.locator(".kale-like-log")).to_contain_text("building the frame")
    expect(detail.locator(".kale-like-frame th")).to_have_text(["", "alpha", "beta"], timeout=30_000)
    expect(detail.locator(".kale-like-output")).to_contain_text("DataFrame, 2 rows × 2 columns")
    expect(progress.locator('svg .node.selected')).to_have_attribute("data-step", "build")  # outlined in the graph
    progress.screenshot(path=str(ARTIFACTS / "widget-step-detail.png"))
    # a loop's step: its iterations in a menu, one shown at a time
    picker.get_by_role("button", name="square", exact=True).click()
    expect(detail.locator(".kale-like-log")).to_contain_text("squaring seed 1")
    progress.locator(".kale-like-iteration select").select_option(label="square[1]")
    expect(detail.locator(".kale-like-log")).to_contain_text("squaring seed 2")
    expect(detail.locator(".kale-like-detail")).to_contain_text("square[1]")
