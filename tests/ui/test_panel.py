"""End to end, in Chromium: the Pipeline panel on an example notebook.

Open the notebook, tag a cell as a step with a dependency through the cell's step editor, see the
graph gain the node and the edge, Compile (the YAML on disk), Run locally (every step finishes),
errors on their cell, calm KFP status without a host, and the start-up cost of the extension.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from run_view_cells import RUN_VIEW_CELLS
from ui_lab import ARTIFACTS, copy_example, open_lab

NOTEBOOK = "parallel_branches.ipynb"
PANEL_TAB = '.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="kale-like-panel"]'
VISIBLE = ".jp-NotebookPanel:not(.lm-mod-hidden)"


@pytest.fixture(autouse=True)
def default_settings(lab):
    """Each test starts from the default panel settings (the panel remembers a KFP host typed into it)."""
    settings = lab.base / "settings" / "kale-like" / "plugin.jupyterlab-settings"
    settings.unlink(missing_ok=True)
    yield settings
    settings.unlink(missing_ok=True)


def write_notebook(lab, name: str, cells: list[tuple[str, list[str]]]) -> str:
    notebook = nbformat.v4.new_notebook()
    for source, tags in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        notebook.cells.append(cell)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, lab.root / name)
    return name


def open_pipeline(page, lab, path: str, steps: int):
    """Lab opened on a notebook, once the panel's graph shows its `steps` steps: the panel."""
    open_lab(page, lab)
    open_notebook(page, path)
    panel = page.locator("#kale-like-panel")
    expect(panel.locator(".kl-GraphNode")).to_have_count(steps, timeout=30_000)
    return panel


def open_notebook(page, path: str) -> None:
    page.evaluate(f"window.jupyterapp.commands.execute('docmanager:open', {{path: {json.dumps(path)}}})")
    page.wait_for_selector(f"{VISIBLE} .jp-Cell")
    page.locator(PANEL_TAB).click()
    expect(page.locator("#kale-like-panel")).to_be_visible()


def graph_nodes(page) -> list[str]:
    return page.locator("#kale-like-panel .kl-GraphNode").evaluate_all("(nodes) => nodes.map(n => n.dataset.step)")


def graph_edges(page) -> dict[tuple[str, str], str]:
    edges = page.locator("#kale-like-panel .kl-GraphEdgeLabel").evaluate_all(
        "(labels) => labels.map(l => [l.dataset.source, l.dataset.target, l.textContent])")
    return {(s, t): label for s, t, label in edges}


def boxes_around(page, where: str = "#kale-like-panel") -> dict[str, list[str]]:
    """Each group box's label, and the steps whose nodes lie within the box as the browser draws them."""
    return page.evaluate("""(where) => {
        const svg = document.querySelector(`${where} .kl-Graph`);
        const found = {};
        for (const group of svg.querySelectorAll('.kl-GraphGroup')) {
            const box = group.querySelector('rect').getBoundingClientRect();
            const label = svg.querySelector(`.kl-GraphGroupLabel[data-group="${group.dataset.group}"]`);
            found[label.firstChild.textContent] = [...svg.querySelectorAll('.kl-GraphNode')].filter(node => {
                const r = node.getBoundingClientRect();
                return r.left >= box.left && r.right <= box.right && r.top >= box.top && r.bottom <= box.bottom;
            }).map(node => node.dataset.step);
        }
        return found;
    }""", where)


def code_cell(page, index: int):
    return page.locator(f"{VISIBLE} .jp-Notebook .jp-Cell").nth(index)


def widen_sidebar(page, width: int = 520) -> None:
    """Drag the sidebar's edge to `width` px, as a user does to see more of the panel."""
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(width, box["y"] + 200, steps=5)
    page.mouse.up()


def settled_screenshot(locator, path: Path, attempts: int = 5) -> None:
    """A picture of what `locator` finds, taken again when the panel draws that part anew meanwhile
    (an analysis after a notebook change replaces its elements)."""
    for attempt in range(attempts):
        try:
            locator.screenshot(path=str(path))
            return
        except PlaywrightError:
            if attempt == attempts - 1:
                raise
            locator.page.wait_for_timeout(200)


def screenshot_panel(page) -> None:
    """The panel beside the notebook, sidebar widened, scrolled to its top (artifacts/panel.png)."""
    page.set_viewport_size({"width": 1500, "height": 1250})
    widen_sidebar(page)
    page.locator("#kale-like-panel").evaluate("(node) => node.scrollTop = 0")
    code_cell(page, 6).scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "panel.png"))
    settled_screenshot(page.locator("#kale-like-panel"), ARTIFACTS / "panel-only.png")


def test_tag_a_step_see_the_graph_compile_and_run_locally(page, lab):
    copy_example(lab, NOTEBOOK)
    open_lab(page, lab)
    assert lab.get("/api/kernels") == [], "the extension must not start a kernel on page load"
    open_notebook(page, NOTEBOOK)
    panel = page.locator("#kale-like-panel")

    # the analyzer's graph of the example: four steps, data edges labelled with variables
    expect(panel.locator(".kl-GraphNode")).to_have_count(4, timeout=30_000)
    assert graph_nodes(page) == ["load_data", "train_logreg", "train_forest", "compare"]
    assert "X_train" in graph_edges(page)[("load_data", "train_logreg")]
    expect(panel.locator(".kl-Status")).to_have_text("4 steps, 4 dependencies")
    expect(panel.locator(".kl-ParamTable")).to_contain_text("n_estimators")
    assert page.locator(".jp-Dialog").count() == 0, "opening a notebook must raise no dialog"

    # chips above the cells: coloured step chips, parents, a continuation chip
    expect(code_cell(page, 5).locator(".kl-Chip.kl-mod-step")).to_have_text("step: load_data")
    expect(code_cell(page, 8).locator(".kl-Chip.kl-mod-after")).to_have_text("after: load_data")
    expect(code_cell(page, 11).locator(".kl-Chip.kl-mod-none")).to_have_text("↳ train_forest")

    # tag the skipped cell 6 as a step "inspect" that depends on load_data, in its step editor
    cell = code_cell(page, 6)
    cell.locator(".kl-Chip").first.click()
    cell.locator(".kl-KindSelect").select_option("step")
    cell.locator(".kl-StepName").fill("inspect")
    cell.locator(".kl-StepName").press("Enter")
    edited = time.perf_counter()
    cell.get_by_role("checkbox", name="depends on load_data").check()
    expect(panel.locator('.kl-GraphNode[data-step="inspect"]')).to_have_count(1, timeout=10_000)
    expect(panel.locator('.kl-GraphEdgeLabel[data-source="load_data"][data-target="inspect"]')).to_have_count(1)
    redraw = time.perf_counter() - edited
    tags = page.evaluate(
        "window.jupyterapp.shell.currentWidget.content.model.cells.get(6).getMetadata('tags')")
    assert tags == ["step:inspect", "prev:load_data"]
    assert "y_train" in graph_edges(page)[("load_data", "inspect")]
    cell.locator(".kl-Done").click()

    # Compile: saves the notebook, writes the YAML next to it, shows its path and a preview
    panel.locator(".kl-Compile").click()
    expect(panel.locator(".kl-YamlPath")).to_have_text("parallel_branches.yaml", timeout=60_000)
    expect(panel.locator(".kl-Preview")).to_contain_text("# PIPELINE DEFINITION")
    href = panel.locator(".kl-Download").get_attribute("href")
    assert href.endswith("/files/parallel_branches.yaml?download=1")
    download = page.request.get(href, headers={"Referer": lab.url + "/lab"})  # as a click sends
    assert download.ok and "attachment" in download.headers.get("content-disposition", "")
    assert download.text() == (lab.root / "parallel_branches.yaml").read_text()
    compiled = yaml.safe_load_all((lab.root / "parallel_branches.yaml").read_text())
    tasks = next(compiled)["root"]["dag"]["tasks"]
    assert set(tasks) == {"load-data", "inspect", "train-logreg", "train-forest", "compare"}
    saved = json.loads((lab.root / NOTEBOOK).read_text())
    assert saved["cells"][6]["metadata"]["tags"] == ["step:inspect", "prev:load_data"]

    # Run locally: live per-step status, every step finishes
    panel.locator(".kl-RunLocal").click()
    expect(panel.locator(".kl-RunState")).to_contain_text("Local run succeeded", timeout=240_000)
    rows = panel.locator(".kl-Task")
    statuses = rows.evaluate_all("(rows) => rows.map(r => [r.dataset.task, r.dataset.status])")
    assert statuses == [["load_data", "done"], ["inspect", "done"], ["train_logreg", "done"], ["train_forest", "done"],
                        ["compare", "done"]]  # graph order, the user's step names
    panel.locator('.kl-Task[data-task="inspect"]').click()
    expect(panel.locator(".kl-Log")).to_contain_text("class balance (train)")
    # the run list has a column per metric the steps logged (the runs side by side)
    expect(panel.locator('.kl-RunItem .kl-Metric[data-metric="best_accuracy"]')).to_have_text(re.compile(r"^0\.\d+$"))
    expect(panel.locator(".kl-Stop")).to_be_disabled()

    screenshot_panel(page)
    assert redraw < 3.0, f"the graph took {redraw:.2f} s to show two edits"
    assert not [e for e in page.errors if "kale" in e.lower()], page.errors


def test_errors_appear_on_their_cell_with_the_cli_message(page, lab):
    copy_example(lab, NOTEBOOK)
    panel = open_pipeline(page, lab, NOTEBOOK, steps=4)
    # a tag the grammar refuses, typed as a plain Jupyter tag (not through the editor)
    page.evaluate("window.jupyterapp.shell.currentWidget.content.model.cells.get(8).setMetadata("
                  "'tags', ['step:train_logreg', 'prev:load_data', 'retries:many'])")
    error = code_cell(page, 8).locator(".kl-CellError")
    expect(error).to_contain_text(f"error: {NOTEBOOK}:cell 9", timeout=10_000)
    expect(error).to_contain_text("unknown tag 'retries:many'")
    expect(panel.locator(".kl-Problem")).to_have_count(1)
    expect(panel.locator(".kl-Compile")).to_be_disabled()
    expect(panel.locator(".kl-Hint").first).to_have_text("Fix the problems above first.")
    # an invalid step name typed into the editor is refused before it becomes a tag
    cell = code_cell(page, 10)
    cell.locator(".kl-Chip").first.click()
    cell.locator(".kl-StepName").fill("Train-Forest")
    cell.locator(".kl-StepName").press("Enter")
    expect(cell.locator(".kl-EditorMessage").last).to_contain_text("is not a valid step name")
    # fixing the tag clears the error
    page.evaluate("window.jupyterapp.shell.currentWidget.content.model.cells.get(8).setMetadata("
                  "'tags', ['step:train_logreg', 'prev:load_data', 'retries:2'])")
    expect(error).to_have_count(0, timeout=10_000)
    expect(code_cell(page, 8).locator(".kl-Chip.kl-mod-setting")).to_have_text("retries 2")
    expect(panel.locator(".kl-Compile")).to_be_enabled()
    assert page.locator(".jp-Dialog").count() == 0
    # a red tag is removable from the cell, and its message says what was meant
    page.evaluate("window.jupyterapp.shell.currentWidget.content.model.cells.get(8).setMetadata("
                  "'tags', ['step:train_logreg', 'retry:3', 'prev:load_data', 'retries:2'])")
    expect(error).to_contain_text("did you mean 'retries:3'?", timeout=10_000)
    expect(panel.locator(".kl-Problem button")).to_have_text("go to cell 9")
    code_cell(page, 8).get_by_role("button", name="remove tag retry:3").click()
    expect(error).to_have_count(0, timeout=10_000)
    tags = page.evaluate("window.jupyterapp.shell.currentWidget.content.model.cells.get(8).getMetadata('tags')")
    assert tags == ["step:train_logreg", "prev:load_data", "retries:2"]
    # a setting on a cell that is not a step has no editor there: its chip removes it
    page.evaluate("window.jupyterapp.shell.currentWidget.content.model.cells.get(1).setMetadata("
                  "'tags', ['imports', 'limit:cpu:1'])")
    expect(code_cell(page, 1).locator(".kl-CellError")).to_contain_text("only applies to step cells", timeout=10_000)
    code_cell(page, 1).get_by_role("button", name="remove tag limit:cpu:1").click()
    expect(code_cell(page, 1).locator(".kl-CellError")).to_have_count(0, timeout=10_000)
    assert page.evaluate("window.jupyterapp.shell.currentWidget.content.model.cells.get(1).getMetadata('tags')") == \
        ["imports"]


def test_renaming_a_step_rewrites_the_prev_tags_that_name_it(page, lab):
    copy_example(lab, NOTEBOOK)
    panel = open_pipeline(page, lab, NOTEBOOK, steps=4)
    cell = code_cell(page, 5)
    cell.locator(".kl-Chip").first.click()
    cell.locator(".kl-StepName").fill("make_data")
    page.wait_for_timeout(500)  # the analyzer is idle: time one edit alone
    edited = time.perf_counter()
    cell.locator(".kl-StepName").press("Enter")
    expect(panel.locator('.kl-GraphNode[data-step="make_data"]')).to_have_count(1, timeout=10_000)
    redraw = time.perf_counter() - edited
    server_ms = int(panel.locator(".kl-Status").get_attribute("data-analysis-ms"))
    (ARTIFACTS / "redraw.json").write_text(json.dumps({"rename_to_graph_seconds": round(redraw, 3),
                                                       "server_analysis_ms": server_ms}))
    tags = page.evaluate("[8, 10, 13].map(i => window.jupyterapp.shell.currentWidget.content.model"
                         ".cells.get(i).getMetadata('tags'))")
    assert tags == [["step:train_logreg", "prev:make_data"], ["step:train_forest", "prev:make_data"],
                    ["step:compare", "prev:train_logreg", "prev:train_forest"]]
    expect(panel.locator(".kl-Problem")).to_have_count(0)
    assert redraw < 1.5, f"the graph took {redraw:.2f} s to show one edit"


def test_without_a_kfp_host_the_panel_says_so_and_local_work_stays_available(page, lab):
    copy_example(lab, NOTEBOOK)
    open_lab(page, lab)
    open_notebook(page, NOTEBOOK)
    panel = page.locator("#kale-like-panel")
    expect(panel.locator(".kl-KfpBadge")).to_contain_text("No Kubeflow Pipelines host is set", timeout=15_000)
    expect(panel.locator(".kl-Upload")).to_be_disabled()
    expect(panel.locator(".kl-Schedule")).to_be_disabled()
    expect(panel.locator(".kl-Compile")).to_be_enabled(timeout=30_000)
    # an unreachable host: said calmly, upload stays off
    panel.locator(".kl-KfpHost").fill("http://127.0.0.1:9")
    expect(panel.locator(".kl-KfpBadge")).to_contain_text("Not reachable", timeout=20_000)
    expect(panel.locator(".kl-Upload")).to_be_disabled()
    # the cron preview works without a cluster: the next three fire times before confirming
    panel.locator(".kl-Cron").fill("0 2 * * 0")
    expect(panel.locator(".kl-FireTimes li")).to_have_count(3, timeout=10_000)
    expect(panel.locator(".kl-FireTimes li").first).to_contain_text("02:00 UTC (Sun)")
    panel.locator(".kl-Cron").fill("every sunday")
    expect(panel.locator(".kl-CronPreview")).to_contain_text("error: schedule 'every sunday'")
    assert page.locator(".jp-Dialog").count() == 0


def test_start_up_cost_of_the_extension(browser, lab, lab_without_extension):
    """Median time to a restored JupyterLab, with and without the extension (warm loads)."""
    assert lab_without_extension.get("/api/status")
    timings: dict[str, list[float]] = {"with": [], "without": []}
    servers = {"with": lab, "without": lab_without_extension}
    for round_ in range(4):
        for key in ("without", "with"):
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            elapsed = open_lab(page, servers[key])
            present = page.locator(PANEL_TAB).count()
            assert present == (1 if key == "with" else 0)
            context.close()
            if round_:  # the first round warms caches
                timings[key].append(elapsed)
    result = {
        "median_ms_with_extension": round(statistics.median(timings["with"])),
        "median_ms_without_extension": round(statistics.median(timings["without"])),
        "samples_ms": {k: [round(v) for v in values] for k, values in timings.items()},
        "server_start_s": {"with": round(lab.started_in, 2), "without": round(lab_without_extension.started_in, 2)},
    }
    result["added_ms"] = result["median_ms_with_extension"] - result["median_ms_without_extension"]
    (ARTIFACTS / "startup.json").write_text(json.dumps(result, indent=2))
    print("start-up:", json.dumps(result))
    assert result["added_ms"] < 1000, result


def test_ipywidgets_graph_and_live_run_progress_in_a_notebook(page, lab):
    """`kale_like.show(...)` and a local run started in a notebook, rendered by JupyterLab's widget manager."""
    import nbformat

    copy_example(lab, NOTEBOOK)
    tiny = nbformat.v4.new_notebook()
    for source, tags in (("x = 20", ["step:make"]), ("y = x + 1\nprint('y is', y)", ["step:use"])):
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        tiny.cells.append(cell)
    nbformat.write(tiny, lab.root / "tiny_widget.ipynb")
    demo = nbformat.v4.new_notebook()
    demo.cells = [
        nbformat.v4.new_code_cell(f"import kale_like\nkale_like.show({NOTEBOOK!r})"),
        nbformat.v4.new_code_cell("from kale_like.surfaces.widgets import run\n"
                                  "result = run('tiny_widget.ipynb', store='.kale_like_widgets', max_workers=1)\n"
                                  "print(result.status, result.value('make', 'x'))"),
    ]
    demo.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(demo, lab.root / "widgets_demo.ipynb")
    open_lab(page, lab)
    page.evaluate("window.jupyterapp.commands.execute('docmanager:open', {path: 'widgets_demo.ipynb'})")
    page.wait_for_selector(f"{VISIBLE} .jp-Cell")
    page.wait_for_function("window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel?.status === 'idle'",
                           timeout=90_000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    graph = page.locator(f"{VISIBLE} .kale-like-show svg")
    expect(graph.locator(".node")).to_have_count(4, timeout=90_000)
    expect(graph.locator('.edge[data-source="load_data"][data-target="train_logreg"]')).to_have_count(1)
    progress = page.locator(f"{VISIBLE} .kale-like-progress")
    expect(progress.locator(".kale-like-state")).to_have_text("succeeded", timeout=180_000)
    expect(progress.locator('.kale-like-task[data-status="done"]')).to_have_count(2)
    # the run's graph above the rows, each step filled with its status
    expect(progress.locator('svg .node[data-status="done"]')).to_have_count(2)
    expect(page.locator(f"{VISIBLE} .jp-OutputArea-output").last).to_contain_text("SUCCEEDED 20")
    page.locator(f"{VISIBLE} .jp-Cell").first.screenshot(path=str(ARTIFACTS / "widget-graph.png"))


def test_loops_and_conditions_show_on_their_steps(page, lab):
    name = write_notebook(lab, "flow.ipynb", [
        ("seeds = [1, 2, 3]\nfloor = 1.0", ["pipeline-parameters"]),
        ("score = seed / 10", ["step:train", "foreach:seed:seeds", "parallelism:2"]),
        ("best = max(score)", ["step:pick"]),
        ("print('best', best)", ["step:report", "when:best:>=:0.2"]),
    ])
    panel = open_pipeline(page, lab, name, steps=3)
    # the loop and the branch are labelled boxes around their steps
    expect(panel.locator(".kl-GraphGroupLabel")).to_have_text(["for seed in seeds, 2 at a time", "if pick.best >= 0.2"])
    assert boxes_around(page) == {"for seed in seeds, 2 at a time": ["train"], "if pick.best >= 0.2": ["report"]}
    assert graph_edges(page) == {("train", "pick"): "score", ("pick", "report"): "best"}
    expect(code_cell(page, 1).locator(".kl-Chip.kl-mod-setting")).to_have_text("↻ seed in seeds ≤2")
    # the settings dialog edits the condition; the tags change accordingly
    cell = code_cell(page, 3)
    cell.locator(".kl-Chip").first.click()
    cell.locator(".kl-SettingsButton").click()
    dialog = page.locator(".jp-Dialog")
    dialog.get_by_role("tab", name="Fan-out & condition").click()
    # a float parameter keeps its type on screen
    expect(panel.get_by_role("textbox", name="parameter floor")).to_have_value("1.0")
    # a value that is neither a literal nor a parameter is refused where it is typed
    dialog.locator('input[name="when_value"]').fill("flor")
    expect(dialog.locator(".kl-WhenProblem")).to_contain_text(
        "'flor' is neither a Python literal nor a pipeline parameter (parameters: seeds, floor). "
        "Did you mean floor?")
    expect(dialog.get_by_role("button", name="Apply")).to_be_disabled()
    dialog.locator('input[name="when_value"]').fill("floor")
    expect(dialog.locator(".kl-WhenProblem")).to_be_hidden()
    expect(dialog.locator(".kl-TagPreview")).to_contain_text("when:best:>=:floor")
    dialog.get_by_role("button", name="Apply").click()
    expect(panel.locator(".kl-GraphGroupLabel").last).to_have_text("if pick.best >= floor", timeout=10_000)
    tags = page.evaluate("window.jupyterapp.shell.currentWidget.content.model.cells.get(3).getMetadata('tags')")
    assert tags == ["step:report", "when:best:>=:floor"]


def test_the_exit_handler_is_drawn_below_the_body(page, lab):
    """Also: a dependency that skips a step (first -> third, past second) is drawn beside it, not through it."""
    name = write_notebook(lab, "exit.ipynb", [
        ("x = 1", ["step:first"]),
        ("y = x + 1", ["step:second"]),
        ("z = x + y", ["step:third"]),
        ("print('finished with', pipeline_status)", ["exit-handler"]),
    ])
    panel = open_pipeline(page, lab, name, steps=4)
    through = page.evaluate("""() => {
        const svg = document.querySelector('#kale-like-panel .kl-Graph');
        const path = svg.querySelector('.kl-GraphEdge[data-source="first"][data-target="third"] path');
        const box = svg.querySelector('.kl-GraphNode[data-step="second"]');
        const [dx, dy] = box.getAttribute('transform').match(/[-0-9.]+/g).map(Number);
        const rect = box.querySelector('rect');
        const [w, h] = [Number(rect.getAttribute('width')), Number(rect.getAttribute('height'))];
        const inside = [];
        for (let at = 0; at <= path.getTotalLength(); at += 2) {
            const p = path.getPointAtLength(at);
            if (p.x > dx && p.x < dx + w && p.y > dy && p.y < dy + h) inside.push([p.x, p.y]);
        }
        return inside;
    }""")
    assert through == [], "the edge first -> third is drawn through the step second"
    exit_node = panel.locator(".kl-GraphNode.kl-mod-exit")
    expect(exit_node).to_have_attribute("data-step", "exit_handler")
    expect(exit_node.locator(".kl-GraphNodeBadge")).to_have_text("⚑ runs last, always")
    bottom = page.evaluate("""() => {
        const y = s => document.querySelector(`#kale-like-panel .kl-GraphNode[data-step="${s}"]`).getBoundingClientRect();
        return [y('third').bottom, y('exit_handler').top];
    }""")
    assert bottom[0] < bottom[1], bottom
    settled_screenshot(panel.locator(".kl-Graph"), ARTIFACTS / "graph-exit-handler.png")
    # the graph in a tab of its own: zoom in and out, a click on a step opens its cell
    panel.locator(".kl-GraphOpen").click()
    tab = page.locator(".kl-GraphTab")
    expect(tab.locator(".kl-GraphNode")).to_have_count(4)
    expect(tab.locator(".kl-GraphScale")).to_have_text("100 %")  # it fits at full size
    width = float(tab.locator(".kl-Graph").get_attribute("width"))
    tab.locator(".kl-ZoomIn").click()
    expect(tab.locator(".kl-GraphScale")).to_have_text("125 %")
    assert abs(float(tab.locator(".kl-Graph").get_attribute("width")) - width * 1.25) <= 1
    tab.locator('.kl-GraphNode[data-step="third"]').click()
    assert page.evaluate("window.jupyterapp.shell.currentWidget.content.activeCellIndex") == 2


def test_a_run_reads_as_the_notebook_and_stays_after_a_reload(page, lab):
    name = write_notebook(lab, "run_view.ipynb", RUN_VIEW_CELLS)
    panel = open_pipeline(page, lab, name, steps=5)
    panel.get_by_role("textbox", name="parameter floor").fill("5")  # deploy runs only when best >= 5
    panel.locator(".kl-RunLocal").click()
    expect(panel.locator(".kl-RunState")).to_contain_text("Local run failed", timeout=120_000)
    expect(panel.locator(".kl-RunState")).to_be_in_viewport()
    # the user's steps in graph order: no KFP task names, no condition row; the loop counts its iterations
    rows = panel.locator(".kl-Task").evaluate_all("(rows) => rows.map(r => [r.dataset.task, r.dataset.status])")
    assert rows == [["load_data", "done"], ["train", "done"], ["pick", "done"], ["deploy", "skipped"], ["audit", "failed"]]
    expect(panel.locator('.kl-Task[data-task="train"] .kl-TaskStatus')).to_have_text("done (3/3)")
    # the failure: the error line first, the user's frames only, a link to the cell and line
    failure = panel.locator('.kl-StepFailure[data-step="audit"]')
    expect(failure.locator("pre")).to_contain_text("audit failed: ValueError: too good: 3.0")
    expect(failure.locator("pre")).to_contain_text("cell 6 (audit), line 2, in check")
    expect(failure.locator("pre")).not_to_contain_text("component_runner")
    failure.locator(".kl-FailureCell").click()
    assert page.evaluate("window.jupyterapp.shell.currentWidget.content.activeCellIndex") == 5
    expect(code_cell(page, 5).locator(".kl-CellRunError")).to_have_text(
        "failed in the last run: audit: ValueError: too good: 3.0 (line 2)")
    # the graph shows the run: each node takes its step's status; a click on a node opens its cell
    statuses = panel.locator(".kl-GraphNode").evaluate_all("(nodes) => nodes.map(n => [n.dataset.step, n.dataset.status])")
    assert dict(statuses) == {"load_data": "done", "train": "done", "pick": "done", "deploy": "skipped", "audit": "failed"}
    loop = panel.locator(".kl-GraphGroup.kl-mod-loop")
    expect(loop).to_have_attribute("data-progress", "3/3")  # the loop's iterations, done of all
    expect(panel.locator(".kl-GraphGroupProgress")).to_have_text("3/3 done")
    widen_sidebar(page, 470)
    settled_screenshot(panel.locator(".kl-GraphBox"), ARTIFACTS / "run-graph.png")
    panel.locator('.kl-GraphNode[data-step="train"]').click()
    assert page.evaluate("window.jupyterapp.shell.currentWidget.content.activeCellIndex") == 2
    # a step's row shows its log and the values it hands on
    panel.locator('.kl-Task[data-task="pick"]').click()
    expect(panel.locator('.kl-Output[data-output="best"]')).to_contain_text("best — float")
    expect(panel.locator('.kl-Output[data-output="best"] .kl-OutputText')).to_have_text("3.0")
    # the run folder is hidden from the file browser: its files are listed as downloads
    panel.locator(".kl-OpenFolder").click()
    expect(panel.locator('.kl-RunFiles a', has_text="logs/audit.log")).to_have_count(1)
    settled_screenshot(panel.locator(".kl-RunBox"), ARTIFACTS / "run-view.png")
    # after a reload the notebook's runs are still listed, the newest shown
    open_lab(page, lab)
    open_notebook(page, name)
    expect(panel.locator(".kl-RunItem")).to_have_count(1, timeout=30_000)
    expect(panel.locator(".kl-RunItem .kl-RunParams")).to_have_text("floor=5")
    expect(panel.locator(".kl-RunState")).to_contain_text("Local run failed")
    # re-run with other values: the run's parameters go back into the table
    expect(panel.get_by_role("textbox", name="parameter floor")).to_have_value("1.0")
    panel.locator(".kl-UseParams").click()
    expect(panel.get_by_role("textbox", name="parameter floor")).to_have_value("5")


def test_palette_commands_and_shortcuts_compile_run_and_stop(page, lab):
    """The panel's actions from the keyboard, Stop included (it ends the step processes too)."""
    name = write_notebook(lab, "keys.ipynb", [
        ("import time\nx = 1", ["step:first"]),
        ("time.sleep(300)\ny = x", ["step:sleepy"]),
    ])
    open_lab(page, lab)
    page.evaluate(f"window.jupyterapp.commands.execute('docmanager:open', {{path: {json.dumps(name)}}})")
    page.wait_for_selector(f"{VISIBLE} .jp-Cell")
    panel = page.locator("#kale-like-panel")
    # the command palette lists the panel's commands
    page.evaluate("window.jupyterapp.commands.execute('apputils:activate-command-palette')")
    page.keyboard.type("pipeline")
    palette = page.locator(".lm-CommandPalette-item")
    for label in ("Open the Pipeline panel", "Compile the notebook to a Kubeflow pipeline",
                  "Run the pipeline locally", "Stop the local pipeline run"):
        expect(palette.filter(has_text=label)).to_have_count(1)
    page.keyboard.press("Escape")
    code_cell(page, 0).click()
    page.keyboard.press("Alt+Shift+P")
    expect(panel).to_be_visible()
    expect(panel.locator(".kl-GraphNode")).to_have_count(2, timeout=30_000)
    page.keyboard.press("Alt+Shift+C")
    expect(panel.locator(".kl-YamlPath")).to_have_text("keys.yaml", timeout=60_000)
    page.keyboard.press("Alt+Shift+R")
    expect(panel.locator('.kl-Task[data-task="sleepy"]')).to_have_attribute("data-status", "running", timeout=90_000)
    expect(panel.locator(".kl-RunLocal")).to_be_disabled()
    page.keyboard.press("Alt+Shift+S")  # Stop ends the run and its step processes
    expect(panel.locator(".kl-RunState")).to_contain_text("Local run stopped", timeout=20_000)
    expect(panel.locator('.kl-Task[data-task="sleepy"]')).to_have_attribute("data-status", "stopped")
    expect(panel.locator(".kl-RunLocal")).to_be_enabled()


def test_enabling_a_notebook_without_tags_shows_a_guide(page, lab):
    """Not a red error: the steps the analyzer makes of an untagged notebook, and how to choose them."""
    name = write_notebook(lab, "plain.ipynb", [("import pandas as pd", []), ("df = pd.DataFrame()", [])])
    open_lab(page, lab)
    open_notebook(page, name)
    panel = page.locator("#kale-like-panel")
    panel.locator(".kl-Enable").check()
    expect(panel.locator(".kl-Guide")).to_contain_text("Make a pipeline of this notebook", timeout=20_000)
    expect(panel.locator(".kl-Guide")).to_contain_text("No cell is tagged as a step yet")
    expect(panel.locator(".kl-Problem")).to_have_count(0)
    expect(code_cell(page, 0).locator(".kl-CellError")).to_have_count(0)
    settled_screenshot(panel.locator(".kl-Guide"), ARTIFACTS / "guide.png")
    # once a cell is tagged as a step, the guide has done its work
    page.evaluate("window.jupyterapp.shell.currentWidget.content.model.cells.get(1).setMetadata('tags', ['step:make'])")
    expect(panel.locator(".kl-Guide")).to_have_count(0, timeout=10_000)


CELL_TAGS = ("(() => { const m = window.jupyterapp.shell.currentWidget.content.model;"
             " return Array.from({length: m.cells.length}, (_, i) => m.cells.get(i).getMetadata('tags') ?? []); })()")


def test_make_steps_from_the_headings_writes_their_tags(page, lab):
    """The guide's button writes the tags the analyzer made of the headings into the cells (one
    undoable edit that marks the notebook dirty); the notebook is then an ordinary tagged one."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# Load"),
        nbformat.v4.new_code_cell("import json"),
        nbformat.v4.new_code_cell("data = [1, 2, 3]"),
        nbformat.v4.new_markdown_cell("## 2. Clean the data"),
        nbformat.v4.new_code_cell("clean = [v * 2 for v in data]\nprint(json.dumps(clean))"),
    ]
    notebook.metadata.update(kale_like={"enabled": True},
                             kernelspec={"name": "python3", "display_name": "Python 3", "language": "python"})
    nbformat.write(notebook, lab.root / "sections.ipynb")
    open_lab(page, lab)
    open_notebook(page, "sections.ipynb")
    panel = page.locator("#kale-like-panel")
    expect(panel.locator(".kl-MakeSteps")).to_be_visible(timeout=20_000)
    assert graph_nodes(page) == ["load", "clean_the_data"]
    # the kernel's start updates the notebook's metadata, and the panel analyses it again (and draws
    # the guide anew): the picture is taken once that is over
    page.wait_for_function("window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel?.status === 'idle'",
                           timeout=90_000)
    settled_screenshot(panel.locator(".kl-Guide"), ARTIFACTS / "guide-make-steps.png")
    panel.locator(".kl-MakeSteps").click()
    expect(panel.locator(".kl-Guide")).to_have_count(0, timeout=10_000)
    assert page.evaluate(CELL_TAGS) == [[], ["imports"], ["step:load"], [], ["step:clean_the_data"]]
    assert page.evaluate("window.jupyterapp.shell.currentWidget.context.model.dirty")
    expect(panel.locator(".kl-Warnings")).to_be_hidden(timeout=10_000)  # analysed as tagged: no "no step tags"
    expect(panel.locator(".kl-Status")).to_have_text("2 steps, 1 dependency")
    assert graph_nodes(page) == ["load", "clean_the_data"]
    expect(code_cell(page, 2).locator(".kl-Chip.kl-mod-step")).to_have_text("step: load")
    expect(code_cell(page, 4).locator(".kl-Chip.kl-mod-step")).to_have_text("step: clean_the_data")
    page.screenshot(path=str(ARTIFACTS / "steps-from-headings.png"))
    # one undo (Edit → Undo Cell Operation, Z) takes every tag back; then one step for the whole notebook
    page.evaluate("window.jupyterapp.commands.execute('notebook:undo-cell-action')")
    expect(panel.locator(".kl-OneStep")).to_be_visible(timeout=10_000)
    assert page.evaluate(CELL_TAGS) == [[]] * 5
    panel.locator(".kl-OneStep").click()
    expect(panel.locator(".kl-Status")).to_have_text("1 step, 0 dependencies", timeout=10_000)
    expect(panel.locator(".kl-Warnings")).to_be_hidden()
    assert page.evaluate(CELL_TAGS) == [[], ["imports"], ["step:sections"], [], ["step:sections"]]
    assert not page.errors, page.errors


def test_settings_output_folder_and_default_image(page, lab, default_settings):
    default_settings.parent.mkdir(parents=True, exist_ok=True)
    default_settings.write_text(json.dumps({"outputFolder": "pipelines", "defaultImage": "python:3.12-slim"}))
    copy_example(lab, NOTEBOOK)
    open_lab(page, lab)
    open_notebook(page, NOTEBOOK)
    panel = page.locator("#kale-like-panel")
    expect(panel.locator(".kl-Compile")).to_be_enabled(timeout=30_000)
    panel.locator(".kl-Compile").click()
    expect(panel.locator(".kl-YamlPath")).to_have_text("pipelines/parallel_branches.yaml", timeout=60_000)
    assert "image: python:3.12-slim" in (lab.root / "pipelines" / "parallel_branches.yaml").read_text()


def test_the_kfp_version_setting_travels_to_compile(page, lab, default_settings):
    """A loop in a pipeline with an exit step: KFP 2.14 (the default target) cannot run it; with the
    panel's KFP server version set to 2.15 it compiles, says so, and shows the warning 2.15 gets."""
    name = write_notebook(lab, "loop_exit.ipynb", [
        ("items = [1, 2]", ["pipeline-parameters"]),
        ("print('item', item)", ["step:work", "foreach:item:items"]),
        ("print(pipeline_status['state'])", ["exit-handler"]),
    ])
    open_lab(page, lab)
    open_notebook(page, name)
    panel = page.locator("#kale-like-panel")
    expect(panel.locator(".kl-Compile")).to_be_enabled(timeout=30_000)
    panel.locator(".kl-Compile").click()
    expect(panel.locator(".kl-Failure")).to_contain_text("on KFP 2.14", timeout=60_000)
    assert not (lab.root / "loop_exit.yaml").exists()

    default_settings.parent.mkdir(parents=True, exist_ok=True)
    default_settings.write_text(json.dumps({"kfpVersion": "2.15"}))
    open_lab(page, lab)  # the settings are read when the panel loads
    open_notebook(page, name)
    expect(panel.locator(".kl-Compile")).to_be_enabled(timeout=30_000)
    panel.locator(".kl-Compile").click()
    expect(panel.locator(".kl-KfpVersion")).to_have_text(", checked for KFP 2.15", timeout=60_000)
    expect(panel.locator(".kl-CompileWarning").first).to_contain_text("on KFP 2.15")
    assert (lab.root / "loop_exit.yaml").exists()


@pytest.fixture
def fake_kfp():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from kfp_api_server import FakeKfp

    with FakeKfp() as server:
        yield server


def test_upload_run_and_schedule_on_kfp(page, lab, fake_kfp):
    copy_example(lab, NOTEBOOK)
    open_lab(page, lab)
    open_notebook(page, NOTEBOOK)
    panel = page.locator("#kale-like-panel")
    panel.locator(".kl-KfpHost").fill(fake_kfp.url)
    expect(panel.locator(".kl-KfpBadge")).to_have_text(f"Connected: {fake_kfp.url}", timeout=20_000)
    expect(panel.locator(".kl-Upload")).to_be_enabled(timeout=30_000)
    panel.get_by_role("textbox", name="parameter n_estimators").fill("80")
    panel.locator(".kl-RunName").fill("from-the-browser")
    panel.locator(".kl-Upload").click()
    link = panel.locator(".kl-DeployResult a")
    expect(link).to_have_text("open the run", timeout=60_000)
    (run,) = fake_kfp.runs.values()
    assert link.get_attribute("href") == f"{fake_kfp.url}/#/runs/details/{run['run_id']}"
    assert run["display_name"] == "from-the-browser"
    assert run["runtime_config"]["parameters"] == {"n_estimators": 80}
    # schedule: the next three fire times, then confirm
    expect(panel.locator(".kl-Schedule")).to_be_disabled()
    panel.locator(".kl-Cron").fill("30 6 * * 1-5")
    expect(panel.locator(".kl-FireTimes li")).to_have_count(3, timeout=10_000)
    expect(panel.locator(".kl-Schedule")).to_be_enabled()
    panel.locator(".kl-Schedule").click()
    expect(panel.locator(".kl-DeployResult")).to_contain_text("Recurring run 'parallel-branches-schedule' created",
                                                              timeout=60_000)
    (job,) = fake_kfp.recurring_runs.values()
    assert job["trigger"]["cron_schedule"]["cron"] == "0 30 6 * * 1-5"
    assert fake_kfp.violations == []
    # the host typed into the panel is remembered in the settings
    assert "kfpHost" in (lab.base / "settings" / "kale-like" / "plugin.jupyterlab-settings").read_text()


def test_a_plot_shows_as_a_picture_and_the_runs_outlive_a_restart(page, lab):
    """A step's plot (a figure it hands on, an image file it saved) shows as a picture. Then the lab
    restarts: the notebook's finished run comes back with its state and rows, and the run that was
    going when the server stopped shows as interrupted (not running for ever)."""
    name = write_notebook(lab, "kept.ipynb", [
        ("wait = 0", ["pipeline-parameters"]),
        ("import matplotlib.pyplot as plt", ["imports"]),
        ("fig, ax = plt.subplots(figsize=(4, 3))\nax.bar(['a', 'b', 'c'], [3, 1, 2])\nfig.savefig('bars.png')\n"
         "chart = 'bars.png'", ["step:plot"]),
        ("import time\ntime.sleep(wait)\nprint('plotted', chart, fig.get_size_inches())", ["step:sleepy"]),
    ])
    panel = open_pipeline(page, lab, name, steps=2)
    panel.locator(".kl-RunLocal").click()  # one run that ends, then one still going when the server stops
    expect(panel.locator(".kl-RunState")).to_contain_text("Local run succeeded", timeout=120_000)
    panel.locator('.kl-Task[data-task="plot"]').click()
    figure = panel.locator('.kl-Output[data-output="fig"]')
    expect(figure).to_contain_text("fig — Figure (matplotlib), 320×240 px")
    saved = panel.locator('.kl-Output[data-output="chart"]')
    expect(saved).to_contain_text("chart — image file bars.png, 400×300 px")
    for output, size in ((figure, [320, 240]), (saved, [400, 300])):
        image = output.locator("img.kl-OutputImage")
        expect(image).to_be_visible()
        # the browser decoded the picture at its size (a broken image has no natural size)
        assert image.evaluate("(img) => [img.naturalWidth, img.naturalHeight]") == size
    widen_sidebar(page, 470)
    settled_screenshot(panel.locator(".kl-Outputs"), ARTIFACTS / "run-outputs-plot.png")

    panel.get_by_role("textbox", name="parameter wait").fill("300")
    panel.locator(".kl-RunLocal").click()
    expect(panel.locator('.kl-Task[data-task="sleepy"]')).to_have_attribute("data-status", "running", timeout=90_000)
    lab.restart()
    panel = open_pipeline(page, lab, name, steps=2)
    expect(panel.locator(".kl-RunItem")).to_have_count(2, timeout=30_000)
    listed = panel.locator(".kl-RunItem").evaluate_all("(rows) => rows.map(r => r.dataset.state)")
    assert listed == ["interrupted", "succeeded"]  # newest first
    expect(panel.locator(".kl-RunState")).to_contain_text("Local run interrupted")
    expect(panel.locator(".kl-RunBox .kl-Message")).to_contain_text("the Jupyter server stopped while this run")
    rows = panel.locator(".kl-Task").evaluate_all("(rows) => rows.map(r => [r.dataset.task, r.dataset.status])")
    assert rows == [["plot", "cached"], ["sleepy", "stopped"]]  # plot: from the first run's cache
    expect(panel.locator(".kl-RunLocal")).to_be_enabled()
    widen_sidebar(page, 470)
    settled_screenshot(panel.locator(".kl-RunBox"), ARTIFACTS / "runs-after-restart.png")
    # the finished run, as it ended: its rows, its steps' logs and outputs
    panel.locator(".kl-RunItem").nth(1).click()
    expect(panel.locator(".kl-RunState")).to_contain_text("Local run succeeded")
    expect(panel.locator(".kl-RunItem .kl-RunParams").nth(0)).to_have_text("wait=300")
    panel.locator('.kl-Task[data-task="sleepy"]').click()
    expect(panel.locator(".kl-Log")).to_contain_text("plotted bars.png")
    panel.locator('.kl-Task[data-task="plot"]').click()
    expect(panel.locator('.kl-Output[data-output="fig"] img.kl-OutputImage')).to_be_visible()
