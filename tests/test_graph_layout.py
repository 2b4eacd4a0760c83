"""The graph layout the panel and the notebook widget share: no dependency drawn through a step,
loops and branches as boxes around their steps, generated steps small.

A dependency that skips layers runs beside the steps of the layers it crosses, so on any graph no
edge passes through a node that is not its own end: checked on Kale's candies notebook (kid1 -> kid3
was drawn behind kid2), on the 150-step benchmark notebook and on a graph 50 steps wide. A group's
box holds its steps and no other step, and sits inside the box of the group around it.
"""

from __future__ import annotations

import json
import sys

import pytest

from conftest import KALE_CASES, REPO
from kale_like.surfaces.api import load_graph
from kale_like.surfaces.graph_layout import CHAR_W, EXIT_BADGE, LABEL_H, NODE_W, PROGRESS, SMALL_W, GraphLayout, layout

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


def inside(inner, outer) -> bool:
    return (outer.x <= inner.x and inner.x + inner.w <= outer.x + outer.w
            and outer.y <= inner.y and inner.y + inner.h <= outer.y + outer.h)


def apart(a, b) -> bool:
    return a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y


def group_problems(placed: GraphLayout) -> list[str]:
    """Whatever makes the boxes lie: a member outside its box, another step inside (or across) it, a
    box across another that neither holds, two steps on one spot."""
    nodes = {n.name: n for n in placed.nodes}
    found = []
    for group in placed.groups:
        for node in placed.nodes:
            if node.name in group.members and not inside(node, group):
                found.append(f"{node.name} is outside the box of {group.label!r}")
            elif node.name not in group.members and not apart(node, group):
                found.append(f"{node.name} is drawn inside the box of {group.label!r}")
        for other in placed.groups:
            if other is group or not set(other.members) & set(group.members):
                if other is not group and not apart(other, group):
                    found.append(f"the boxes of {group.label!r} and {other.label!r} overlap")
            elif set(other.members) < set(group.members) and not inside(other, group):
                found.append(f"the box of {other.label!r} is not inside that of {group.label!r}")
    for a in nodes.values():
        found += [f"{a.name} and {b.name} overlap" for b in nodes.values() if a.name < b.name and not apart(a, b)]
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
    beside = [x for x, _ in skip.points[2:-2]]  # its slot in kid2's layer (then into kid3 from above)
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


def test_loops_and_branches_are_boxes_around_their_steps():
    placed = layout(document(REPO / "examples" / "pipelines" / "train_many_pick_best.py"))
    shown = {(g.kind, g.label, g.members) for g in placed.groups}
    assert shown == {("loop", "for seed in seeds, 3 at a time", ("train",)),
                     ("branch", "if pick_best.best >= threshold", ("deploy",)), ("branch", "else", ("alert",))}
    assert group_problems(placed) == [] and crossings(placed) == []
    assert all(not node.badges for node in placed.nodes)


def test_nested_loops_are_boxes_in_boxes():
    """Kale's loop example: a loop in a loop in a loop, over a step's result, beside a loop of its own."""
    placed = layout(document(REPO / "examples" / "pipelines" / "kale_loop_item.py"))
    depth = {g.members: g.depth for g in placed.groups}
    assert depth == {("printer", "printer2", "printer3"): 0, ("printer2", "printer3"): 1, ("printer3",): 2,
                     ("printer4",): 0}
    assert group_problems(placed) == [] and crossings(placed) == []
    nodes = {n.name: n for n in placed.nodes}
    # the loop over generate's result runs after it: every step inside is drawn below it
    assert all(nodes[name].y > nodes["generate"].y for name in ("printer", "printer2", "printer3"))
    assert [(e.source, e.target, e.names) for e in placed.edges] == [("generate", "printer", ("res",))]


def test_a_condition_inside_a_loop_and_a_generated_step_drawn_small():
    """A branch box inside a loop box; a step kale_like wrote ("generated": true, or an expression
    node of the body) is small, whatever its name."""
    test = {"op": ">", "operands": [{"kind": "task", "source": "train", "output": "score"},
                                    {"kind": "constant", "value": 0.5}], "tests": []}
    placed = layout({
        "body": [{"kind": "step", "name": "prepare"}, {"kind": "expression", "name": "seeds_items"},
                 {"kind": "loop", "id": "for-1", "parallelism": None,
                  "items": {"kind": "task", "source": "seeds_items", "output": "items"},
                  "body": [{"kind": "step", "name": "train"},
                           {"kind": "condition", "id": "if-2", "branches": [
                               {"test": test, "body": [{"kind": "step", "name": "keep"}]},
                               {"test": None, "body": [{"kind": "step", "name": "drop"},
                                                       {"kind": "step", "name": "drop_value"}]}]}]},
                 {"kind": "step", "name": "report"}],
        "steps": [{"name": "train", "inputs": [{"name": "seed", "ref": {"kind": "item", "source": "for-1"}}]},
                  {"name": "drop_value", "generated": True, "kind": "expression"}],
        "edges": [{"source": "prepare", "target": "train", "names": ["data"]},
                  {"source": "train", "target": "keep", "names": ["score"]},
                  {"source": "train", "target": "drop", "names": ["score"]},
                  {"source": "drop", "target": "drop_value", "names": ["value"]},
                  {"source": "keep", "target": "report", "names": ["kept"]},
                  {"source": "prepare", "target": "report", "names": ["data"]}],
    })
    groups = {g.label: g for g in placed.groups}
    assert set(groups) == {"for seed in seeds_items.items", "if train.score > 0.5", "else"}
    assert groups["else"].members == ("drop", "drop_value") and groups["else"].depth == 1
    nodes = {n.name: n for n in placed.nodes}
    assert [n for n, node in nodes.items() if node.generated] == ["seeds_items", "drop_value"]
    assert nodes["drop_value"].w == nodes["seeds_items"].w == SMALL_W < NODE_W == nodes["drop"].w
    assert nodes["drop_value"].h < nodes["drop"].h
    assert group_problems(placed) == [] and crossings(placed) == []


def test_a_graph_fifty_steps_wide_keeps_its_steps_apart():
    """One step fans out to 50 parallel ones that one step gathers, plus a dependency that skips them."""
    wide = [f"part_{i:02d}" for i in range(50)]
    placed = layout({
        "body": [{"kind": "step", "name": n} for n in ["split", *wide, "gather"]], "steps": [],
        "edges": [{"source": "split", "target": n, "names": ["chunk"]} for n in wide]
                 + [{"source": n, "target": "gather", "names": ["part"]} for n in wide]
                 + [{"source": "split", "target": "gather", "names": ["meta"]}],
    })
    nodes = {n.name: n for n in placed.nodes}
    assert len({nodes[n].y for n in wide}) == 1  # one layer, side by side
    assert placed.width < 51 * (NODE_W + 30)
    assert group_problems(placed) == [] and crossings(placed) == []


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
    assert crossings(placed) == [] and group_problems(placed) == []


def label_box(group) -> tuple[float, float, float, float]:
    """Where a group's label is drawn (x, y, w, h): from 6 px inside its box's top-left corner, one
    line high, as wide as its text with a run's iteration count (both front-ends draw it there)."""
    text = len(group.label) + (len(PROGRESS) if group.kind == "loop" else 0)
    return group.x + 6, group.y + 2, text * CHAR_W, LABEL_H - 2


def edges_over_labels(placed: GraphLayout) -> list[str]:
    """Every edge drawn across a group's label (which hides it there: the label has a white halo)."""
    found = []
    for group in placed.groups:
        x, y, w, h = label_box(group)
        for edge in placed.edges:
            for (x1, y1), (x2, y2) in zip(edge.points, edge.points[1:]):
                if max(y1, y2) > y and min(y1, y2) < y + h and max(x1, x2) > x and min(x1, x2) < x + w:
                    found.append(f"{edge.source} -> {edge.target} over {group.label!r}")
    return sorted(set(found))


def arrows_short_of_their_step(placed: GraphLayout) -> list[str]:
    nodes = {n.name: n for n in placed.nodes}
    found = []
    for edge in placed.edges:
        (x, y), end = edge.points[-1], nodes[edge.target]
        if not (y == round(end.y, 1) and end.x < x < end.x + end.w):
            found.append(f"{edge.source} -> {edge.target} ends at ({x}, {y}), not on {end.name}")
    return found


def test_fifty_steps_with_loops_and_branches_keep_edges_off_the_group_labels(tmp_path):
    """A 50-step notebook with loops and branches: 8 of its 12 groups had an edge across their label."""
    from groups_notebook import write_groups_notebook

    graph = document(write_groups_notebook(tmp_path / "groups50.ipynb"))
    placed = layout(graph)
    assert len(placed.nodes) == 50 and len(placed.groups) >= 12
    assert edges_over_labels(placed) == []
    assert arrows_short_of_their_step(placed) == []
    assert crossings(placed) == [] and group_problems(placed) == []


def test_an_edge_into_a_boxed_step_clears_the_label_of_every_box_starting_there():
    """A loop whose first step is in a branch of its own: the edge passes both labels' line."""
    placed = layout(document(REPO / "examples" / "pipelines" / "train_many_pick_best.py"))
    assert placed.groups and edges_over_labels(placed) == [] and arrows_short_of_their_step(placed) == []
