"""The graph layout the panel and the notebook widget share: no dependency drawn through a step.

A dependency that skips layers runs beside the steps of the layers it crosses, so on any graph no
edge passes through a node that is not its own end: checked on Kale's candies notebook (kid1 -> kid3
was drawn behind kid2) and on the 150-step benchmark notebook.
"""

from __future__ import annotations

import json
import sys

import pytest

from conftest import KALE_CASES, REPO
from kale_like.surfaces.api import load_graph
from kale_like.surfaces.graph_layout import EXIT_BADGE, GraphLayout, layout

pytest.importorskip("igraph")


def crossings(placed: GraphLayout) -> list[tuple[str, str, str]]:
    """(source, target, node) for every edge segment that enters the box of a node other than its ends.

    A path is straight lines inside the bands of nodes and S-curves across the gaps between bands;
    a curve stays within its gap (its control points are at the gap's middle height), so it is
    enough that no node reaches into the height a curve spans."""
    found = []
    for edge in placed.edges:
        for (x1, y1), (x2, y2) in zip(edge.points, edge.points[1:]):
            for node in placed.nodes:
                if node.name in (edge.source, edge.target):
                    continue
                overlaps_height = node.y < max(y1, y2) and min(y1, y2) < node.y + node.h
                if x1 == x2:
                    if overlaps_height and node.x < x1 < node.x + node.w:
                        found.append((edge.source, edge.target, node.name))
                elif overlaps_height:
                    found.append((edge.source, edge.target, node.name))
    return found


def document(source) -> dict:
    return json.loads(load_graph(source).to_json())


def test_a_dependency_that_skips_a_step_is_routed_beside_it():
    placed = layout({
        "body": [{"kind": "step", "name": n} for n in ("kid1", "kid2", "kid3")],
        "steps": [],
        "edges": [{"source": "kid1", "target": "kid2", "names": ["a"]},
                  {"source": "kid2", "target": "kid3", "names": ["b"]},
                  {"source": "kid1", "target": "kid3", "names": ["c"]}],
    })
    nodes = {n.name: n for n in placed.nodes}
    assert nodes["kid1"].y < nodes["kid2"].y < nodes["kid3"].y
    (skip,) = [e for e in placed.edges if (e.source, e.target) == ("kid1", "kid3")]
    beside = [x for x, _ in skip.points[2:-1]]  # its slot in kid2's layer
    assert all(x >= nodes["kid2"].x + nodes["kid2"].w or x <= nodes["kid2"].x for x in beside)
    assert crossings(placed) == []
    labels = {(e.label_x, e.label_y) for e in placed.edges}
    assert len(labels) == 3  # no two labels on one spot


def test_the_exit_handler_has_a_band_of_its_own_below_the_body():
    placed = layout({"body": [{"kind": "step", "name": "first"}, {"kind": "step", "name": "second"}], "steps": [],
                     "edges": [{"source": "first", "target": "second", "names": ["x"]}],
                     "exit_step": {"name": "exit_handler"}})
    nodes = {n.name: n for n in placed.nodes}
    assert nodes["exit_handler"].kind == "exit" and nodes["exit_handler"].badges == (EXIT_BADGE,)
    assert nodes["exit_handler"].y > nodes["second"].y + nodes["second"].h
    assert placed.height >= nodes["exit_handler"].y + nodes["exit_handler"].h


def test_loops_and_branches_are_badges_on_their_steps():
    placed = layout(document(REPO / "examples" / "pipelines" / "train_many_pick_best.py"))
    badges = [badge for node in placed.nodes for badge in node.badges]
    assert any(b.startswith("↻ each of") for b in badges) and any(b.startswith("if ") for b in badges)


def test_kales_candies_notebook_draws_no_edge_through_a_step():
    candies = KALE_CASES / "candies_sharing.ipynb"
    if not candies.exists():
        pytest.skip(f"Kale's example notebooks are not at {KALE_CASES}")
    placed = layout(document(candies))
    assert len(placed.nodes) >= 4
    assert crossings(placed) == []


def test_the_150_step_notebook_draws_no_edge_through_a_step(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from make_notebooks import write_notebook
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    path = tmp_path / "steps_150.ipynb"
    assert write_notebook(path, 380) == 150  # the benchmark's 150-step case
    graph = document(path)
    placed = layout(graph)
    assert len(placed.nodes) == len(graph["steps"]) and len(placed.edges) == len(graph["edges"])
    assert crossings(placed) == []
