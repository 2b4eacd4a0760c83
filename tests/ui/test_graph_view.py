"""End to end, in Chromium: a large graph in the panel and in its tab.

A 50-step benchmark notebook, as the browser draws it: no edge passes through a step that is not
its own end (every edge's path sampled along its length); the tab fits it whole, zooms back to full
size where the step names read at their size, moves by dragging, zooms with Ctrl + wheel, and a click
on a step opens its cell. (tests/test_graph_layout.py lays out the 150-step notebook and a graph
fifty steps wide.)
"""

from __future__ import annotations

import json
import sys
import time

import pytest
from playwright.sync_api import expect

from test_panel import open_pipeline
from ui_lab import ARTIFACTS, REPO

# every point of every edge that lies inside a step's box other than the edge's own ends
EDGES_THROUGH_STEPS = """(where) => {
    const svg = document.querySelector(`${where} .kl-Graph`);
    const boxes = [...svg.querySelectorAll('.kl-GraphNode')].map(node => {
        const [x, y] = node.getAttribute('transform').match(/[-0-9.]+/g).map(Number);
        const rect = node.querySelector('rect');
        return {name: node.dataset.step, x, y, w: Number(rect.getAttribute('width')), h: Number(rect.getAttribute('height'))};
    });
    const found = [];
    for (const edge of svg.querySelectorAll('.kl-GraphEdge')) {
        const path = edge.querySelector('path');
        const ends = [edge.dataset.source, edge.dataset.target];
        for (let at = 0; at <= path.getTotalLength(); at += 4) {
            const p = path.getPointAtLength(at);
            for (const box of boxes) {
                if (!ends.includes(box.name) && p.x > box.x && p.x < box.x + box.w && p.y > box.y && p.y < box.y + box.h) {
                    found.push(`${ends.join(' -> ')} through ${box.name}`);
                }
            }
        }
    }
    return [...new Set(found)];
}"""

TAB = ".kl-GraphTab"


@pytest.fixture
def no_kernel_left(page, lab):
    """The notebooks opened here start kernels; the lab's later tests expect none."""
    yield
    page.evaluate("() => window.jupyterapp.serviceManager.sessions.shutdownAll()")
    deadline = time.monotonic() + 30
    while lab.get("/api/kernels") and time.monotonic() < deadline:
        time.sleep(0.2)


def test_a_50_step_notebook_reads_in_its_tab(page, lab, no_kernel_left):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from make_notebooks import write_notebook as write_benchmark
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    path = lab.root / "steps_50.ipynb"
    assert write_benchmark(path, 138) == 50
    panel = open_pipeline(page, lab, path.name, steps=50)
    # in the sidebar the graph keeps a legible size and scrolls
    size = panel.locator('.kl-GraphNode[data-step="s000"] .kl-GraphNodeName').evaluate(
        "(text) => text.getBoundingClientRect().height")
    assert size >= 8.5, f"the step names are {size:.1f} px high in the panel"
    assert panel.locator(".kl-GraphEdge").count() > 50
    panel.locator(".kl-GraphOpen").click()  # the same drawing as the panel's, in a tab
    tab = page.locator(TAB)
    expect(tab.locator(".kl-GraphNode")).to_have_count(50)
    assert page.evaluate(EDGES_THROUGH_STEPS, TAB) == []
    # Fit: the whole graph inside the visible canvas
    tab.locator(".kl-ZoomFit").click()
    canvas = tab.locator(".kl-GraphTabCanvas").bounding_box()
    graph = tab.locator(".kl-Graph").bounding_box()
    assert graph["x"] >= canvas["x"] and graph["x"] + graph["width"] <= canvas["x"] + canvas["width"] + 1
    assert graph["y"] >= canvas["y"] and graph["y"] + graph["height"] <= canvas["y"] + canvas["height"] + 1
    assert int(tab.locator(".kl-GraphScale").text_content().rstrip(" %")) < 50
    page.locator(TAB).screenshot(path=str(ARTIFACTS / "graph-50-steps-fit.png"))
    # back to full size: the names read at their size, and dragging the background moves the graph
    tab.locator(".kl-ZoomReset").click()
    expect(tab.locator(".kl-GraphScale")).to_have_text("100 %")
    size = tab.locator('.kl-GraphNode[data-step="s000"] .kl-GraphNodeName').evaluate(
        "(text) => text.getBoundingClientRect().height")
    assert size >= 12
    scroller = tab.locator(".kl-GraphTabCanvas")
    scroller.evaluate("(node) => { node.scrollLeft = 0; node.scrollTop = 0; }")
    box = scroller.bounding_box()
    start = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    while page.evaluate("([x, y]) => !!document.elementFromPoint(x, y).closest('.kl-GraphNode')", start):
        start = (start[0], start[1] + 17)  # the background, between the steps
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] - 300, start[1] - 200, steps=5)
    page.mouse.up()
    assert scroller.evaluate("(node) => [node.scrollLeft, node.scrollTop]") == [300, 200]
    page.locator(TAB).screenshot(path=str(ARTIFACTS / "graph-50-steps.png"))
    # Ctrl + wheel zooms in
    page.mouse.move(*start)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -100)
    page.keyboard.up("Control")
    expect(tab.locator(".kl-GraphScale")).to_have_text("125 %")
    # a click on a step opens its cell
    cells = json.loads(path.read_text())["cells"]
    cell = next(i for i, c in enumerate(cells) if "step:s049" in c["metadata"].get("tags", []))
    tab.locator('.kl-GraphNode[data-step="s049"]').scroll_into_view_if_needed()
    tab.locator('.kl-GraphNode[data-step="s049"]').click()
    assert page.evaluate("window.jupyterapp.shell.currentWidget.content.activeCellIndex") == cell
    assert not [e for e in page.errors if "kale" in e.lower()], page.errors
