"""End to end, in Chromium: large graphs in the panel and in their tab.

The 150-step benchmark notebook, as the browser draws it: no edge passes through a step that is
not its own end (every edge's path sampled along its length). A graph fifty steps wide: the tab fits
it whole, zooms back to full size where the step names read at their size, moves by dragging, and a
click on a step opens its cell.
"""

from __future__ import annotations

import sys

from playwright.sync_api import expect
from test_panel import open_pipeline, write_notebook
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
        for (let at = 0; at <= path.getTotalLength(); at += 3) {
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


def test_the_150_step_notebook_draws_no_edge_through_a_step(page, lab):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from make_notebooks import write_notebook as write_benchmark
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    assert write_benchmark(lab.root / "steps_150.ipynb", 380) == 150
    panel = open_pipeline(page, lab, "steps_150.ipynb", steps=150)
    assert page.evaluate(EDGES_THROUGH_STEPS, "#kale-like-panel") == []
    edges = panel.locator(".kl-GraphEdge").count()
    assert edges > 150
    panel.locator(".kl-GraphOpen").click()
    tab = page.locator(TAB)
    expect(tab.locator(".kl-GraphNode")).to_have_count(150)
    assert page.evaluate(EDGES_THROUGH_STEPS, TAB) == []
    tab.locator(".kl-ZoomFit").click()
    page.locator(TAB).screenshot(path=str(ARTIFACTS / "graph-150-steps.png"))


def test_a_graph_fifty_steps_wide_fits_its_tab_and_zooms(page, lab):
    cells = [("rows = list(range(100))", ["step:split"])]
    cells += [(f"part_{i:02d} = sum(rows[{i}::50])", [f"step:part_{i:02d}"]) for i in range(50)]
    cells.append(("total = " + " + ".join(f"part_{i:02d}" for i in range(50)), ["step:gather"]))
    name = write_notebook(lab, "wide.ipynb", cells)
    panel = open_pipeline(page, lab, name, steps=52)
    # in the sidebar the graph keeps a legible size and scrolls sideways
    size = panel.locator('.kl-GraphNode[data-step="part_00"] .kl-GraphNodeName').evaluate(
        "(text) => text.getBoundingClientRect().height")
    assert size >= 8.5, f"the step names are {size:.1f} px high in the panel"
    assert page.evaluate(EDGES_THROUGH_STEPS, "#kale-like-panel") == []
    panel.locator(".kl-GraphOpen").click()
    tab = page.locator(TAB)
    expect(tab.locator(".kl-GraphNode")).to_have_count(52)
    # Fit: the whole graph inside the visible canvas
    tab.locator(".kl-ZoomFit").click()
    canvas = tab.locator(".kl-GraphTabCanvas").bounding_box()
    graph = tab.locator(".kl-Graph").bounding_box()
    assert graph["x"] >= canvas["x"] and graph["x"] + graph["width"] <= canvas["x"] + canvas["width"] + 1
    assert graph["y"] >= canvas["y"] and graph["y"] + graph["height"] <= canvas["y"] + canvas["height"] + 1
    fitted = int(tab.locator(".kl-GraphScale").text_content().rstrip(" %"))
    assert fitted < 50
    page.locator(TAB).screenshot(path=str(ARTIFACTS / "graph-wide-fit.png"))
    # back to full size: the names read at their size, and dragging the background moves the graph
    tab.locator(".kl-ZoomReset").click()
    expect(tab.locator(".kl-GraphScale")).to_have_text("100 %")
    size = tab.locator('.kl-GraphNode[data-step="part_00"] .kl-GraphNodeName').evaluate(
        "(text) => text.getBoundingClientRect().height")
    assert size >= 12
    scroller = tab.locator(".kl-GraphTabCanvas")
    before = scroller.evaluate("(node) => node.scrollLeft")
    box = scroller.bounding_box()
    start = (box["x"] + box["width"] / 2, box["y"] + box["height"] - 6)  # below the steps: the background
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] - 300, start[1], steps=5)
    page.mouse.up()
    assert scroller.evaluate("(node) => node.scrollLeft") == before + 300
    # Ctrl + wheel zooms in
    page.mouse.move(*start)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -100)
    page.keyboard.up("Control")
    expect(tab.locator(".kl-GraphScale")).to_have_text("125 %")
    # a click on a step opens its cell
    tab.locator('.kl-GraphNode[data-step="gather"]').scroll_into_view_if_needed()
    tab.locator('.kl-GraphNode[data-step="gather"]').click()
    assert page.evaluate("window.jupyterapp.shell.currentWidget.content.activeCellIndex") == 51
    assert not [e for e in page.errors if "kale" in e.lower()], page.errors
