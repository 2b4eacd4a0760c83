"""End to end, in Chromium: what the panel shows of runs, parameters, problems and large graphs.

A run parameter refused where it is typed; the graph coloured while a run goes (a step running, a
loop's iterations counted) and a loop's row timed as the whole loop; a metric kept when the step
reading it is skipped; Stop leaving a waiting step "not run"; a DataFrame's and an array's preview;
a notebook with a bad tag still showing its graph and parameters, the cycle message naming the real
cycle, and no console error per edit; group labels clear of edges in a 50-step notebook with loops
and branches; a long step name inside its node and the runs table's metrics in view at the
sidebar's default width; files a panel compile or run writes get the user's umask.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from test_panel import PANEL_TAB, code_cell, open_notebook, open_pipeline, settled_screenshot, widen_sidebar, \
    write_notebook
from ui_lab import ARTIFACTS, REPO, open_lab

LIVE = [
    ("seeds = [1, 2, 3, 4]\nwait = 1.5\nrate = 1", ["pipeline-parameters"]),
    ("import time", ["imports"]),
    ("x = 1.0", ["step:load"]),
    ("time.sleep(wait)\nscore = x * seed", ["step:train", "foreach:seed:seeds", "parallelism:1"]),
    ("best = max(score)\ntime.sleep(wait)", ["step:pick"]),
    ("print('ok', best)\nacc = best / 10", ["step:report", "when:best:>=:rate"]),
    ("best", ["pipeline-metrics"]),
]


@pytest.fixture
def no_kernel_left(page, lab):
    """The notebooks opened here start kernels; the lab's later tests expect none."""
    yield
    page.evaluate("() => window.jupyterapp.serviceManager.sessions.shutdownAll()")
    deadline = time.monotonic() + 30
    while lab.get("/api/kernels") and time.monotonic() < deadline:
        time.sleep(0.2)


def statuses(panel) -> dict[str, str]:
    return dict(panel.locator(".kl-GraphNode").evaluate_all("(nodes) => nodes.map(n => [n.dataset.step, n.dataset.status])"))


def umask() -> int:
    previous = os.umask(0)
    os.umask(previous)
    return previous


def test_a_parameter_of_the_wrong_type_is_refused_where_it_is_typed(page, lab, no_kernel_left):
    name = write_notebook(lab, "typed_params.ipynb", LIVE)
    panel = open_pipeline(page, lab, name, steps=4)
    wait = panel.get_by_role("textbox", name="parameter wait")
    expect(panel.locator(".kl-RunLocal")).to_be_enabled()
    wait.fill("abc")
    expect(wait).to_have_attribute("aria-invalid", "true")
    expect(panel.locator(".kl-ParamProblem").nth(1)).to_have_text("'abc' is not a float (a number, e.g. 0.5)")
    expect(panel.locator(".kl-RunLocal")).to_be_disabled()
    expect(panel.locator(".kl-Hint").first).to_contain_text("Parameter wait: 'abc' is not a float")
    seeds = panel.get_by_role("textbox", name="parameter seeds")
    seeds.fill("[1, 2")
    expect(panel.locator(".kl-ParamProblem").nth(0)).to_contain_text("is not a list")
    widen_sidebar(page, 470)
    settled_screenshot(panel.locator(".kl-Parameters"), ARTIFACTS / "param-refused.png")
    seeds.fill("[1]")
    wait.fill("0")
    expect(wait).to_have_attribute("aria-invalid", "false")
    expect(panel.locator(".kl-RunLocal")).to_be_enabled()
    expect(panel.locator(".kl-Compile")).to_be_enabled()


def test_a_run_colours_the_graph_as_it_goes_and_times_the_whole_loop(page, lab, no_kernel_left):
    """Mid-run: the loop's step shown running and its box counting n/4; after: the loop's row timed
    first start to last end (4 x 1.5 s one at a time), the metric `best` kept though `report` (which
    reads it under a when:) was skipped; a second run stopped while the loop goes: `pick` never
    started and reads `not run`."""
    name = write_notebook(lab, "live.ipynb", LIVE)
    panel = open_pipeline(page, lab, name, steps=4)
    widen_sidebar(page, 520)
    panel.get_by_role("textbox", name="parameter rate").fill("100")
    panel.locator(".kl-RunLocal").click()
    expect(panel.locator('.kl-GraphNode[data-step="train"]')).to_have_attribute("data-status", "running", timeout=60_000)
    expect(panel.locator(".kl-GraphGroupProgress")).to_have_text(re.compile(r"^\s*[0-3]/4 done$"), timeout=20_000)
    expect(panel.locator('.kl-Task[data-task="train"] .kl-TaskStatus')).to_have_text(re.compile(r"^running \([0-3]/4\)$"))
    assert statuses(panel)["load"] in ("done", "cached") and statuses(panel)["pick"] in ("", "pending")
    settled_screenshot(panel.locator(".kl-GraphBox"), ARTIFACTS / "run-graph-live.png")
    expect(panel.locator(".kl-RunState")).to_contain_text("Local run succeeded", timeout=120_000)
    assert statuses(panel) == {"load": "done", "train": "done", "pick": "done", "report": "skipped"}
    seconds = float(panel.locator('.kl-Task[data-task="train"] .kl-Seconds').text_content().split()[0])
    assert seconds >= 4 * 1.5, f"the loop's row shows {seconds} s, one iteration's time"
    expect(panel.locator('.kl-Task[data-task="report"] .kl-TaskIcon')).to_have_text("↷")
    expect(panel.locator('.kl-RunItem .kl-Metric[data-metric="best"]').first).to_have_text("4")
    # Stop while the loop goes: the step that was only waiting is "not run"
    panel.get_by_role("textbox", name="parameter wait").fill("3")
    panel.locator(".kl-RunLocal").click()
    expect(panel.locator('.kl-Task[data-task="train"]')).to_have_attribute("data-status", "running", timeout=60_000)
    panel.locator(".kl-Stop").click()
    expect(panel.locator(".kl-RunState")).to_contain_text("Local run stopped", timeout=60_000)
    rows = dict(panel.locator(".kl-Task").evaluate_all("(rows) => rows.map(r => [r.dataset.task, r.dataset.status])"))
    assert rows["train"] == "stopped" and rows["pick"] == "not run" and rows["report"] == "not run", rows
    settled_screenshot(panel.locator(".kl-RunBox"), ARTIFACTS / "run-stopped.png")


def test_a_dataframe_and_an_array_preview(page, lab, no_kernel_left):
    name = write_notebook(lab, "previews.ipynb", [
        ("import numpy as np\nimport pandas as pd", ["imports"]),
        ("frame = pd.DataFrame({'city': ['Oslo', 'Lima', 'Pune'], 'rain': [7.5, 0.5, 3.0]})\n"
         "grid = np.arange(12, dtype='int32').reshape(3, 4)", ["step:make"]),
        ("total = float(frame['rain'].sum()) + int(grid.sum())", ["step:use"]),
    ])
    panel = open_pipeline(page, lab, name, steps=2)
    widen_sidebar(page, 520)
    panel.locator(".kl-RunLocal").click()
    expect(panel.locator(".kl-RunState")).to_contain_text("Local run succeeded", timeout=120_000)
    panel.locator('.kl-Task[data-task="make"]').click()
    frame = panel.locator('.kl-Output[data-output="frame"]')
    expect(frame).to_contain_text("DataFrame", timeout=30_000)
    expect(frame.locator(".kl-OutputTable th")).to_contain_text(["city", "rain"])
    expect(frame.locator(".kl-OutputTable")).to_contain_text("Oslo")
    grid = panel.locator('.kl-Output[data-output="grid"]')
    expect(grid).to_contain_text("(3, 4)")
    expect(grid).to_contain_text("int32")
    settled_screenshot(panel.locator(".kl-Outputs"), ARTIFACTS / "run-outputs-table.png")


def test_a_notebook_with_problems_keeps_its_graph_and_names_the_real_cycle(page, lab, no_kernel_left):
    """Opened with a cycle (a <- c) and a step `d` downstream of it: the message names a -> b -> c -> a
    only; the graph (without the tag that closes the cycle, marked stale) and the parameters stay;
    edits that keep or mend the problems log no console error."""
    name = write_notebook(lab, "cycle.ipynb", [
        ("n = 2", ["pipeline-parameters"]),
        ("x = n", ["step:start"]),
        ("a = x", ["step:a", "prev:c"]),
        ("b = a", ["step:b"]),
        ("c = b", ["step:c"]),
        ("d = c", ["step:d"]),
    ])
    open_lab(page, lab)
    open_notebook(page, name)
    panel = page.locator("#kale-like-panel")
    expect(panel.locator(".kl-Problem")).to_have_count(1, timeout=30_000)
    problem = panel.locator(".kl-Problem pre")
    expect(problem).to_contain_text("the steps a -> b -> c -> a depend on each other in a cycle")
    expect(problem).not_to_contain_text("-> d")
    expect(panel.locator(".kl-GraphNode")).to_have_count(5)
    expect(panel.locator(".kl-Graph")).to_have_class(re.compile(r"kl-mod-stale"))
    expect(panel.locator(".kl-Status")).to_have_text("1 problem to fix (the graph below leaves out the tags they are on)")
    expect(panel.locator(".kl-ParamTable")).to_contain_text("n")
    expect(panel.locator(".kl-RunLocal")).to_be_disabled()
    widen_sidebar(page, 470)
    settled_screenshot(panel, ARTIFACTS / "problems-with-graph.png")
    tags = "(i, t) => window.jupyterapp.shell.currentWidget.content.model.cells.get(i).setMetadata('tags', t)"
    page.evaluate(f"([i, t]) => ({tags})(i, t)", [2, ["step:a", "prev:c", "cache:false"]])
    expect(panel.locator(".kl-Problem pre")).to_contain_text("did you mean 'cache:disabled'?", timeout=10_000)
    expect(panel.locator(".kl-GraphNode")).to_have_count(5)
    page.evaluate(f"([i, t]) => ({tags})(i, t)", [2, ["step:a"]])
    expect(panel.locator(".kl-Status")).to_have_text("5 steps, 4 dependencies", timeout=10_000)
    expect(panel.locator(".kl-Graph")).not_to_have_class(re.compile(r"kl-mod-stale"))
    page.evaluate(f"([i, t]) => ({tags})(i, t)", [3, ["step:b", "prev:strat"]])
    expect(panel.locator(".kl-Problem pre")).to_contain_text("did you mean 'prev:start'?", timeout=10_000)
    expect(panel.locator(".kl-Status")).to_contain_text("(the graph below is from the last good version)")
    assert not [e for e in page.errors if "400" in e or "kale" in e.lower()], page.errors


LABELS_CROSSED = """(where) => {
    const svg = document.querySelector(`${where} .kl-Graph`);
    const labels = [...svg.querySelectorAll('.kl-GraphGroupLabel')].map(l => ({t: l.textContent, b: l.getBBox()}));
    const nodes = Object.fromEntries([...svg.querySelectorAll('.kl-GraphNode')].map(node => {
        const [x, y] = node.getAttribute('transform').match(/[-0-9.]+/g).map(Number);
        return [node.dataset.step, {x, y, w: Number(node.querySelector('rect').getAttribute('width'))}];
    }));
    const over = [], short = [];
    for (const edge of svg.querySelectorAll('.kl-GraphEdge')) {
        const path = edge.querySelector('path');
        const name = `${edge.dataset.source} -> ${edge.dataset.target}`;
        for (let at = 0; at <= path.getTotalLength(); at += 2) {
            const p = path.getPointAtLength(at);
            for (const l of labels) {
                if (p.x > l.b.x && p.x < l.b.x + l.b.width && p.y > l.b.y && p.y < l.b.y + l.b.height) {
                    over.push(`${name} over '${l.t}'`);
                }
            }
        }
        const end = path.getPointAtLength(path.getTotalLength()), step = nodes[edge.dataset.target];
        if (Math.abs(end.y - step.y) > 0.5 || end.x <= step.x || end.x >= step.x + step.w) {
            short.push(`${name} ends at ${end.x},${end.y}`);
        }
    }
    return {labels: labels.length, over: [...new Set(over)], short};
}"""


def test_fifty_steps_with_loops_and_branches_keep_edges_off_the_group_labels(page, lab, no_kernel_left):
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from groups_notebook import write_groups_notebook
    finally:
        sys.path.remove(str(REPO / "tests"))
    write_groups_notebook(lab.root / "groups50.ipynb")
    panel = open_pipeline(page, lab, "groups50.ipynb", steps=50)
    widen_sidebar(page, 560)
    found = page.evaluate(LABELS_CROSSED, "#kale-like-panel")
    assert found["labels"] >= 12 and found["over"] == [] and found["short"] == [], found
    settled_screenshot(panel.locator(".kl-GraphBox"), ARTIFACTS / "graph-groups50.png")
    panel.locator(".kl-GraphOpen").click()
    tab = page.locator(".kl-GraphTab")
    expect(tab.locator(".kl-GraphNode")).to_have_count(50)
    tab.locator(".kl-ZoomReset").click()
    page.wait_for_timeout(300)
    assert page.evaluate(LABELS_CROSSED, ".kl-GraphTab")["over"] == []
    tab.screenshot(path=str(ARTIFACTS / "graph-groups50-tab.png"))


def test_a_long_step_name_stays_in_its_node_and_the_runs_metrics_stay_in_view(page, lab, no_kernel_left):
    name = write_notebook(lab, "long_names.ipynb", [
        ("x = 3", ["step:machine_learning_on_the_whole_dataset_with_many_models"]),
        ("best = x * 2", ["step:pick_the_best_model_of_all_mmmmmmmmmm"]),
        ("best", ["pipeline-metrics"]),
    ])
    panel = open_pipeline(page, lab, name, steps=2)
    too_wide = panel.locator(".kl-GraphNode").evaluate_all("""(nodes) => nodes.filter(node => {
        const text = node.querySelector('.kl-GraphNodeName'), rect = node.querySelector('rect');
        return text.getComputedTextLength() > Number(rect.getAttribute('width')) - 12;
    }).map(node => node.dataset.step)""")
    assert too_wide == []
    expect(panel.locator(".kl-GraphNodeName").first).to_have_text(re.compile(r"^machine_lear.*…$"))
    panel.locator(".kl-RunLocal").click()
    expect(panel.locator(".kl-RunState")).to_contain_text("Local run succeeded", timeout=120_000)
    expect(panel.locator('.kl-RunItem .kl-Metric[data-metric="best"]')).to_have_text("6")
    # the sidebar at its default width: the runs table fits, its metric column in view
    box = panel.locator(".kl-RunList").evaluate("(list) => [list.scrollWidth, list.clientWidth]")
    assert box[0] <= box[1], f"the runs table is {box[0]} px wide in {box[1]} px"
    metric = panel.locator('.kl-RunItem .kl-Metric[data-metric="best"]').bounding_box()
    listed = panel.locator(".kl-RunList").bounding_box()
    assert metric["x"] + metric["width"] <= listed["x"] + listed["width"] + 0.5
    settled_screenshot(panel.locator(".kl-RunList"), ARTIFACTS / "runs-default-width.png")
    settled_screenshot(panel.locator(".kl-GraphBox"), ARTIFACTS / "graph-long-names.png")


def test_files_a_panel_compile_and_run_write_get_the_users_umask(page, lab, no_kernel_left):
    name = write_notebook(lab, "modes.ipynb", [("x = 1", ["step:make"]), ("y = x + 1", ["step:use"])])
    panel = open_pipeline(page, lab, name, steps=2)
    started = time.time()
    panel.locator(".kl-Compile").click()
    expect(panel.locator(".kl-YamlPath")).to_have_text("modes.yaml", timeout=60_000)
    panel.locator(".kl-RunLocal").click()
    expect(panel.locator(".kl-RunState")).to_contain_text("Local run succeeded", timeout=120_000)
    expected = 0o666 & ~umask()
    written = [lab.root / "modes.yaml", lab.root / "modes_kfp.py"]
    runs = lab.root / ".kale_like" / "runs"
    written += [p for p in runs.rglob("*") if p.is_file() and p.stat().st_mtime >= started - 1]
    assert len(written) > 2
    wrong = {str(p.relative_to(lab.root)): oct(stat.S_IMODE(p.stat().st_mode)) for p in written
             if stat.S_IMODE(p.stat().st_mode) != expected}
    assert wrong == {}, f"expected {oct(expected)}"
