"""Where each step and each dependency of a pipeline graph is drawn: one layout for the JupyterLab
panel (the server sends it with the analysis) and for the notebook widget (`kale_like.show`).

The layering, the order within a layer (fewest crossings) and the routing of long edges are
igraph's Sugiyama layout: a dependency that skips layers gets a slot of its own in each layer it
crosses, beside the steps there. Every node of a layer sits in that layer's band, and an edge runs
straight down through a band (in its node's or its slot's column) and bends only in the gaps between
bands, so no edge passes through a node. Loops and branches are badges on their steps; the exit
handler, which runs after the body whatever happened, gets a band of its own below it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

NODE_W, NODE_H, BADGE_H = 140, 30, 14
GAP_X, GAP_Y, MARGIN = 24, 46, 12
EXIT_BADGE = "⚑ runs last, always"


@dataclass(frozen=True)
class PlacedNode:
    name: str
    kind: str  # step | pipelinecall | exit
    x: float  # top-left corner
    y: float
    w: float
    h: float
    badges: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlacedEdge:
    source: str
    target: str
    names: tuple[str, ...]
    path: str  # SVG path data, from the source's bottom to the target's top
    points: tuple[tuple[float, float], ...]  # the corners the path goes through, in order
    label_x: float
    label_y: float


@dataclass(frozen=True)
class GraphLayout:
    width: float
    height: float
    nodes: tuple[PlacedNode, ...] = field(default_factory=tuple)
    edges: tuple[PlacedEdge, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        """JSON-ready, as the panel reads it."""
        return asdict(self)


def layout(document: dict) -> GraphLayout:
    """The layout of a step graph document (`StepGraph.to_json()` or the panel's analysis payload)."""
    import igraph

    names, kinds = _body_names(document)
    index = {name: i for i, name in enumerate(names)}
    edges = [e for e in document.get("edges", []) if e["source"] in index and e["target"] in index
             and e["source"] != e["target"]]
    around = containers(document.get("body", []))
    levels = _layers(names, edges)  # per vertex: the steps first, then the slots added below
    # a dependency that skips layers becomes a chain through one slot (a dummy vertex) per layer it
    # crosses, so igraph orders the slots with the steps and every link spans one layer
    slots: list[list[int]] = []
    links: list[tuple[int, int]] = []
    for edge in edges:
        source, target = index[edge["source"]], index[edge["target"]]
        chain = []
        for level in range(levels[source] + 1, levels[target]):
            chain.append(len(levels))
            levels.append(level)
        path = [source, *chain, target]
        links += list(zip(path, path[1:]))
        slots.append(chain)
    graph = igraph.Graph(n=len(levels), edges=links, directed=True)
    coords = [(float(x), float(y)) for x, y in graph.layout_sugiyama(layers=levels, maxiter=200).coords] \
        if names else []
    bands = sorted(set(levels))
    heights = {band: NODE_H for band in bands}
    for name, level in zip(names, levels):
        heights[level] = max(heights[level], NODE_H + BADGE_H * len(around.get(name, ())))
    coords_all, coords = coords, coords[:len(names)]
    top: dict[int, float] = {}
    cursor = float(MARGIN)
    for band in bands:
        top[band] = cursor
        cursor += heights[band] + GAP_Y
    xs = [x for x, _ in coords_all]
    left = min(xs, default=0.0)
    column = NODE_W + GAP_X

    def centre(x: float) -> float:
        return MARGIN + NODE_W / 2 + (x - left) * column

    nodes: dict[str, PlacedNode] = {}
    for name, (x, _), level in zip(names, coords, levels):
        badges = around.get(name, ())
        nodes[name] = PlacedNode(name, kinds[name], centre(x) - NODE_W / 2, top[level], NODE_W,
                                 NODE_H + BADGE_H * len(badges), badges)
    width = MARGIN * 2 + NODE_W + (max(xs, default=0.0) - left) * column
    exit_name = (document.get("exit_step") or {}).get("name")
    if exit_name and exit_name not in nodes:
        nodes[exit_name] = PlacedNode(exit_name, "exit", (width - NODE_W) / 2, cursor, NODE_W, NODE_H + BADGE_H,
                                      (EXIT_BADGE,))
        cursor += NODE_H + BADGE_H + GAP_Y
    parents = {name: 0 for name in names}
    for edge in edges:
        parents[edge["target"]] += 1
    placed_edges = []
    for edge, chain in zip(edges, slots):
        start, end = nodes[edge["source"]], nodes[edge["target"]]
        level = levels[index[edge["source"]]]
        points = [(start.x + NODE_W / 2, start.y + start.h), (start.x + NODE_W / 2, top[level] + heights[level])]
        for slot in chain:  # a slot in each layer the edge crosses: straight down through the band
            x, level = centre(coords_all[slot][0]), levels[slot]
            points += [(x, top[level]), (x, top[level] + heights[level])]
        points.append((end.x + NODE_W / 2, end.y))
        placed_edges.append(_edge(edge, points, near_source=parents[edge["target"]] > 1))
    height = max(cursor - GAP_Y + MARGIN, NODE_H + 2 * MARGIN)
    return GraphLayout(round(max(width, NODE_W + 2 * MARGIN), 1), round(height, 1), tuple(nodes.values()),
                       tuple(placed_edges))


def _edge(edge: dict, points: list[tuple[float, float]], near_source: bool) -> PlacedEdge:
    """The path: straight down inside a band, an S-curve across each gap (it never leaves the gap).
    The label sits in the gap next to the target, or next to the source when the target has several
    parents, so the labels of a fan-in do not pile up on one spot."""
    points = [(round(x, 1), round(y, 1)) for x, y in points]
    d = [f"M {points[0][0]} {points[0][1]}"]
    for (x1, y1), (x2, y2) in zip(points, points[1:]):
        if x1 == x2 or y2 <= y1:
            d.append(f"L {x2} {y2}")
        else:
            middle = round((y1 + y2) / 2, 1)
            d.append(f"C {x1} {middle}, {x2} {middle}, {x2} {y2}")
    # the gaps between bands: every other segment, starting with the one below the source's band
    crossing = list(zip(points[1::2], points[2::2]))
    gap = (crossing[0] if near_source else crossing[-1]) if crossing else (points[0], points[-1])
    (x1, y1), (x2, y2) = gap
    # on the curve, a quarter of the way from the end it is near: the labels of a fan-out sit above
    # their targets' columns, those of a fan-in below their sources', one column apart
    t = 0.25 if near_source else 0.75
    u = 1 - t
    x = x1 * (u ** 3 + 3 * u * u * t) + x2 * (3 * u * t * t + t ** 3)
    y = y1 * u ** 3 + (y1 + y2) / 2 * (3 * u * u * t + 3 * u * t * t) + y2 * t ** 3
    return PlacedEdge(edge["source"], edge["target"], tuple(edge.get("names", ())), " ".join(d), tuple(points),
                      round(x, 1), round(y, 1))


def _layers(names: list[str], edges: list[dict]) -> list[int]:
    """Longest-path layering: a step one layer below its lowest parent (the analyzer's graphs are acyclic;
    a cycle, which it refuses, still ends)."""
    index = {name: i for i, name in enumerate(names)}
    parents: list[list[int]] = [[] for _ in names]
    for edge in edges:
        parents[index[edge["target"]]].append(index[edge["source"]])
    layer: list[int | None] = [None] * len(names)

    def depth(vertex: int, seen: frozenset[int]) -> int:
        known = layer[vertex]
        if known is None:
            known = 1 + max((depth(p, seen | {vertex}) for p in parents[vertex] if p not in seen), default=-1)
            layer[vertex] = known
        return known

    return [depth(vertex, frozenset()) for vertex in range(len(names))]


def _body_names(document: dict) -> tuple[list[str], dict[str, str]]:
    """The steps (and nested pipeline calls) in body order, then any step the body does not hold."""
    names: list[str] = []
    kinds: dict[str, str] = {}

    def collect(body: list[dict]) -> None:
        for node in body:
            if node["kind"] in ("step", "pipelinecall") and node.get("name") and node["name"] not in kinds:
                names.append(node["name"])
                kinds[node["name"]] = node["kind"]
            collect(node.get("body", []))
            for branch in node.get("branches", []):
                collect(branch.get("body", []))

    collect(document.get("body", []))
    for step in document.get("steps", []):
        if step["name"] not in kinds:
            names.append(step["name"])
            kinds[step["name"]] = "step"
    return names, kinds


def containers(body: list[dict], around: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """Each step's loops and branches, outermost first, as the badges drawn on it."""
    result: dict[str, tuple[str, ...]] = {}
    for node in body:
        if node["kind"] in ("step", "pipelinecall"):
            result[node["name"]] = around
        elif node["kind"] == "loop":
            items = _ref_text(node.get("items") or {})
            limit = f" ≤{node['parallelism']}" if node.get("parallelism") else ""
            result.update(containers(node.get("body", []), around + (f"↻ each of {items}{limit}",)))
        elif node["kind"] == "condition":
            for number, branch in enumerate(node.get("branches", [])):
                test = branch.get("test")
                label = f"{'if' if number == 0 else 'elif'} {_test_text(test)}" if test else "else"
                result.update(containers(branch.get("body", []), around + (label,)))
    return result


def _ref_text(ref: dict) -> str:
    kind, source, output = ref.get("kind"), ref.get("source", ""), ref.get("output", "")
    if kind == "parameter":
        return source
    if kind in ("task", "collected"):
        return f"{source}.{output}" if output and output != "Output" else source
    if kind == "item":
        return f"{source}.{output}" if output else "item"
    if kind == "constant":
        return repr(ref.get("value"))
    return source or str(kind)


def _test_text(test: dict) -> str:
    op = test.get("op")
    if op == "truth":
        return _ref_text(test["operands"][0])
    if op == "not":
        return "not (" + ", ".join(_test_text(t) for t in test.get("tests", [])) + ")"
    if op in ("and", "or"):
        return f" {op} ".join(_test_text(t) for t in test.get("tests", []))
    operands = test.get("operands", [])
    return f"{_ref_text(operands[0])} {op} {_ref_text(operands[1])}" if len(operands) == 2 else str(op)
