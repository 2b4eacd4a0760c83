"""Where each step and each dependency of a pipeline graph is drawn: one layout for the JupyterLab
panel (the server sends it with the analysis) and for the notebook widget (`kale_like.show`).

The layering, the order within a layer (fewest crossings) and the routing of long edges are
igraph's Sugiyama layout: a dependency that skips layers gets a slot of its own in each layer it
crosses, beside the steps there. Every node of a layer sits in that layer's band, and an edge runs
straight down through a band (in its node's or its slot's column) and bends only in the gaps between
bands, so no edge passes through a node.

Loops and branches are groups: a labelled box (`for seed in seeds`, `if best >= 0.9`, `else`) around
their steps. No edge crosses a label (which would hide the arrow under it): an arrow into a step on a
box's first layer comes down right of the labels of the boxes starting there, and the box leaves the
room for that (`_label_inset`). Igraph's positions give each item of a layer its wished-for place; the items are then
placed container by container, a group's contents first, so a group is one block, the same columns
in every layer it spans, and nothing else is drawn inside it (`_place`). Steps kale_like generates
itself (an expression's value, a loop's items) are drawn small. The exit handler, which runs after
the body whatever happened, gets a band of its own below it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

NODE_W, NODE_H, BADGE_H = 140, 30, 14
SMALL_W, SMALL_H = 100, 22  # a generated step
SLOT_W, SLOT_GAP = 10, 4  # the column of a long edge passing a layer, and the space between two of them
GAP_X, GAP_Y, MARGIN = 24, 46, 12
GROUP_PAD, LABEL_H = 8, 16  # a group's box: padding around its contents, its label's line above them
COMPACT = 0.6  # igraph's columns drawn at this share of their width: a 47-step notebook 2,197 -> 1,508 px wide
CHAR_W = 6  # the width of a character of a group's label (10 px sans-serif), as the box leaves room for it
PROGRESS = "  10/10 done"  # what a run view adds to a loop's label
LABEL_X, LABEL_GAP, ENTRY_MARGIN = 6, 6, 12  # a label's inset in its box; room between it and an arrow; an
# arrow's least distance from its step's right end
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
    generated: bool = False  # written by kale_like, not the user: drawn small and muted


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
class PlacedGroup:
    """A loop (`kind` loop) or one branch of an if/elif/else (`kind` branch) around its steps."""

    id: str  # the loop's id, or the condition's id and the branch's number (`if-2/0`)
    kind: str
    label: str
    x: float
    y: float
    w: float
    h: float
    members: tuple[str, ...]  # every step inside, nested groups' too
    depth: int  # 0 for a group in the pipeline's body, 1 inside another group, ...


@dataclass(frozen=True)
class GraphLayout:
    width: float
    height: float
    nodes: tuple[PlacedNode, ...] = field(default_factory=tuple)
    edges: tuple[PlacedEdge, ...] = field(default_factory=tuple)
    groups: tuple[PlacedGroup, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        """JSON-ready, as the panel reads it."""
        return asdict(self)


@dataclass
class _Group:
    id: str
    kind: str
    label: str
    parent: int | None
    depth: int
    vertices: list[int] = field(default_factory=list)  # its own, not its subgroups'
    children: list[int] = field(default_factory=list)
    members: list[str] = field(default_factory=list)  # every step inside


@dataclass
class _Block:
    """A container's contents placed: left edges relative to the block, the layers it spans."""

    width: float
    low: int
    high: int
    wish: float  # where igraph would put its left edge
    left: dict[int, float]  # vertex -> left edge
    group_left: dict[int, float]  # group -> left edge
    group_width: dict[int, float]


def layout(document: dict) -> GraphLayout:
    """The layout of a step graph document (`StepGraph.to_json()` or the panel's analysis payload)."""
    import igraph

    names, kinds = _body_names(document)
    generated = {s["name"] for s in document.get("steps", []) if s.get("generated")} | {
        name for name, kind in kinds.items() if kind == "expression"}
    index = {name: i for i, name in enumerate(names)}
    groups, owner = _groups(document.get("body", []), document.get("steps", []), index)
    edges = [e for e in document.get("edges", []) if e["source"] in index and e["target"] in index
             and e["source"] != e["target"]]
    drawn, after = _items_edges(document.get("body", []), index, edges)
    edges += drawn
    levels = _layers(names, edges + after)  # per vertex: the steps first, then the slots added below
    widths = [float(SMALL_W if name in generated else NODE_W) for name in names]
    # a dependency that skips layers becomes a chain through one slot (a dummy vertex) per layer it
    # crosses, so igraph orders the slots with the steps and every link spans one layer; a slot
    # belongs to the innermost group holding both ends, so it never passes through another group
    slots: list[list[int]] = []
    links: list[tuple[int, int]] = []
    for edge in edges:
        source, target = index[edge["source"]], index[edge["target"]]
        home = _common(groups, owner[source], owner[target])
        chain = []
        for level in range(levels[source] + 1, levels[target]):
            chain.append(len(levels))
            levels.append(level)
            widths.append(SLOT_W)
            owner.append(home)
        path = [source, *chain, target]
        links += list(zip(path, path[1:]))
        slots.append(chain)
    for vertex in range(len(names), len(levels)):
        home = owner[vertex]
        if home is not None:
            groups[home].vertices.append(vertex)
    graph = igraph.Graph(n=len(levels), edges=links, directed=True)
    wished = _columns([x for x, _ in graph.layout_sugiyama(layers=levels, maxiter=200).coords], widths) \
        if names else []
    entered = {target for _, target in links if target < len(names)}  # steps an arrow comes into
    top_block = _place([v for v in range(len(levels)) if owner[v] is None],
                       [g for g, group in enumerate(groups) if group.parent is None], groups, levels, widths, wished,
                       entered)
    left = {v: MARGIN + x for v, x in top_block.left.items()}
    group_left = {g: MARGIN + x for g, x in top_block.group_left.items()}
    group_width = top_block.group_width
    bands = sorted(set(levels))
    spans = {g: _span(g, groups, levels) for g in range(len(groups))}
    head = {band: 0 for band in bands}  # label lines above the band's nodes: one per group starting there
    tail = {band: 0 for band in bands}  # padding lines below them: one per group ending there
    above, below = {}, {}
    for g, group in enumerate(groups):
        low, high = spans[g]
        above[g] = sum(1 for a in _ancestors(groups, g) if spans[a][0] == low)  # itself included
        below[g] = 1 + max((below_of(groups, spans, c, high) for c in group.children), default=0)
        head[low] = max(head[low], above[g])
        tail[high] = max(tail[high], below[g])
    heights = {band: 0.0 for band in bands}
    for name, level in zip(names, levels):
        heights[level] = max(heights[level], SMALL_H if name in generated else NODE_H)
    top: dict[int, float] = {}
    content: dict[int, float] = {}  # where the band's nodes start
    bottom: dict[int, float] = {}
    cursor = float(MARGIN)
    for band in bands:
        top[band] = cursor
        content[band] = cursor + head[band] * LABEL_H
        bottom[band] = content[band] + heights[band] + tail[band] * GROUP_PAD
        cursor = bottom[band] + GAP_Y
    nodes: dict[str, PlacedNode] = {}
    for vertex, name in enumerate(names):
        small = name in generated
        nodes[name] = PlacedNode(name, "step" if kinds[name] == "expression" else kinds[name], left[vertex],
                                 content[levels[vertex]], widths[vertex], SMALL_H if small else NODE_H, (), small)
    placed_groups = []
    for g, group in enumerate(groups):
        low, high = spans[g]
        y = top[low] + (above[g] - 1) * LABEL_H
        placed_groups.append(PlacedGroup(
            group.id, group.kind, group.label, round(group_left[g], 1), round(y, 1), round(group_width[g], 1),
            round(content[high] + heights[high] + below[g] * GROUP_PAD - y, 1), tuple(group.members), group.depth))
    width = max(MARGIN * 2 + top_block.width, NODE_W + 2 * MARGIN)
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
        points = [(start.x + start.w / 2, start.y + start.h), (start.x + start.w / 2, bottom[level])]
        for slot in chain:  # a slot in each layer the edge crosses: straight down through the band
            x, level = left[slot] + SLOT_W / 2, levels[slot]
            points += [(x, top[level]), (x, bottom[level])]
        target = index[edge["target"]]
        x = _entry(target, end, owner, groups, spans, group_left, levels[target])
        points += [(x, top[levels[target]]), (x, end.y)]
        placed_edges.append(_edge(edge, points, near_source=parents[edge["target"]] > 1))
    height = max(cursor - GAP_Y + MARGIN, NODE_H + 2 * MARGIN)
    return GraphLayout(round(width, 1), round(height, 1), tuple(nodes.values()), tuple(placed_edges),
                       tuple(placed_groups))


def _columns(xs: list[float], widths: list[float]) -> list[float]:
    """Igraph's x of each vertex (one unit a column) in pixels: a column as wide as its widest item,
    so the columns only slots pass through (long edges) stay narrow; and closer together than that
    (COMPACT), as igraph spreads the columns wide: `_place` moves apart what would overlap."""
    widest: dict[float, float] = {}
    for x, width in zip(xs, widths):
        widest[x] = max(widest.get(x, 0.0), width)
    columns = sorted(widest)
    at = {columns[0]: 0.0} if columns else {}
    for previous, x in zip(columns, columns[1:]):
        gap = SLOT_GAP if widest[x] == widest[previous] == SLOT_W else GAP_X
        at[x] = at[previous] + (widest[previous] / 2 + widest[x] / 2 + gap) * min(1.0, x - previous)
    return [at[x] * COMPACT for x in xs]


def below_of(groups: list[_Group], spans: dict[int, tuple[int, int]], g: int, high: int) -> int:
    """How many padding lines group `g` and the groups inside it that end on layer `high` need there."""
    if spans[g][1] != high:
        return 0
    return 1 + max((below_of(groups, spans, c, high) for c in groups[g].children), default=0)


def _place(vertices: list[int], children: list[int], groups: list[_Group], levels: list[int], widths: list[float],
           wished: list[float], entered: set[int]) -> _Block:
    """Place a container's own vertices and its groups (each a block placed first, recursively) side
    by side: in the order of their wished-for centres, each as near its wish as the items to its left
    in every layer it spans allow. One order for all layers, so a group keeps its columns throughout."""
    items: list[tuple[float, float, range, int, bool]] = []  # (wished left, width, layers, vertex or group, group?)
    for vertex in vertices:
        items.append((wished[vertex] - widths[vertex] / 2, widths[vertex], range(levels[vertex], levels[vertex] + 1),
                      vertex, False))
    inner: dict[int, _Block] = {}
    insets: dict[int, float] = {}
    for g in children:
        block = _place(groups[g].vertices, groups[g].children, groups, levels, widths, wished, entered)
        inner[g] = block
        width = max(block.width + 2 * GROUP_PAD, label_width(groups[g]) + 2 * GROUP_PAD)
        inset = max((width - block.width) / 2, _label_inset(groups[g], block, levels, widths, entered))
        insets[g] = inset
        width = max(width, inset + block.width + GROUP_PAD)
        items.append((block.wish - inset, width, range(block.low, block.high + 1), g, True))
    items.sort(key=lambda item: item[0] + item[1] / 2)
    right: dict[int, tuple[float, bool]] = {}  # per layer: where its last item ends, whether it is a slot
    left: dict[int, float] = {}
    group_left: dict[int, float] = {}
    group_width: dict[int, float] = {}
    for wish, width, layers, what, is_group in items:
        slot = not is_group and width == SLOT_W
        x = max([wish, *(right[layer][0] + (SLOT_GAP if slot and right[layer][1] else GAP_X)
                         for layer in layers if layer in right)])
        for layer in layers:
            right[layer] = (x + width, slot)
        if is_group:
            g = what
            block = inner[g]
            group_left[g], group_width[g] = x, width
            inset = x + insets[g]  # the contents in the middle of the box, or right of its label
            left.update({v: inset + at for v, at in block.left.items()})
            group_left.update({c: inset + at for c, at in block.group_left.items()})
            group_width.update(block.group_width)
        else:
            left[what] = x
    start = min((wish for wish, *_ in items), default=0.0)
    origin = min([*left.values(), *group_left.values()], default=0.0)
    end = max((right[layer][0] for layer in right), default=origin)
    all_layers = [layer for _, _, layers, _, _ in items for layer in layers]
    return _Block(end - origin, min(all_layers, default=0), max(all_layers, default=0), start,
                  {v: x - origin for v, x in left.items()}, {g: x - origin for g, x in group_left.items()},
                  group_width)


def label_width(group: _Group) -> float:
    """The width of a group's label as drawn, with the count of iterations a run view adds to a loop's."""
    return (len(group.label) + (len(PROGRESS) if group.kind == "loop" else 0)) * CHAR_W


def _label_inset(group: _Group, block: _Block, levels: list[int], widths: list[float], entered: set[int]) -> float:
    """How far into the box its contents must start for every arrow into a step on its first layer to
    come down right of its label (at least ENTRY_MARGIN inside the step's right end)."""
    ends = [at + widths[v] for v, at in block.left.items() if levels[v] == block.low and v in entered]
    return max((LABEL_X + label_width(group) + LABEL_GAP + ENTRY_MARGIN - end for end in ends), default=0.0)


def _entry(vertex: int, node: PlacedNode, owner: list[int | None], groups: list[_Group],
           spans: dict[int, tuple[int, int]], group_left: dict[int, float], level: int) -> float:
    """Where an arrow comes down into a step: its middle, or right of the labels of the boxes that
    start on its layer and hold it (their label line is above it)."""
    x = node.x + node.w / 2
    for g in _ancestors(groups, owner[vertex]):
        if spans[g][0] == level:
            x = max(x, group_left[g] + LABEL_X + label_width(groups[g]) + LABEL_GAP)
    return min(x, node.x + node.w - ENTRY_MARGIN) if x > node.x + node.w / 2 else x


def _span(g: int, groups: list[_Group], levels: list[int]) -> tuple[int, int]:
    found = [levels[v] for v in _all_vertices(groups, g)]
    return (min(found), max(found)) if found else (0, 0)


def _all_vertices(groups: list[_Group], g: int) -> Iterable[int]:
    yield from groups[g].vertices
    for child in groups[g].children:
        yield from _all_vertices(groups, child)


def _ancestors(groups: list[_Group], g: int | None) -> list[int]:
    """`g` and the groups around it, innermost first."""
    found = []
    while g is not None:
        found.append(g)
        g = groups[g].parent
    return found


def _common(groups: list[_Group], a: int | None, b: int | None) -> int | None:
    """The innermost group holding both `a` and `b` (None: the pipeline's body)."""
    around = set(_ancestors(groups, a))
    return next((g for g in _ancestors(groups, b) if g in around), None)


def _groups(body: list[dict], steps: list[dict], index: dict[str, int]) -> tuple[list[_Group], list[int | None]]:
    """The loops and branches of the body as groups, and each vertex's innermost group."""
    items = _item_names(steps)
    groups: list[_Group] = []
    owner: list[int | None] = [None] * len(index)

    def enter(nodes: list[dict], parent: int | None, depth: int) -> list[str]:
        inside: list[str] = []
        for node in nodes:
            kind = node["kind"]
            if kind in ("step", "pipelinecall", "expression") and node.get("name") in index:
                if parent is not None and owner[index[node["name"]]] is None:
                    owner[index[node["name"]]] = parent
                    groups[parent].vertices.append(index[node["name"]])
                inside.append(node["name"])
            elif kind == "loop":
                own = [n["name"] for n in node.get("body", []) if n.get("name")]
                names = list(dict.fromkeys(name for step in own for name in items.get((step, node.get("id", "")), ())))
                inside += open_group(node.get("id", "loop"), "loop", _loop_label(node, names), node.get("body", []),
                                     parent, depth)
            elif kind == "condition":
                for number, branch in enumerate(node.get("branches", [])):
                    test = branch.get("test")
                    label = f"{'if' if number == 0 else 'elif'} {_test_text(test)}" if test else "else"
                    inside += open_group(f"{node.get('id', 'if')}/{number}", "branch", label, branch.get("body", []),
                                         parent, depth)
        return inside

    def open_group(group_id: str, kind: str, label: str, nodes: list[dict], parent: int | None,
                   depth: int) -> list[str]:
        number = len(groups)
        groups.append(_Group(group_id, kind, label, parent, depth))
        if parent is not None:
            groups[parent].children.append(number)
        groups[number].members = enter(nodes, number, depth + 1)
        if not groups[number].members:  # nothing to draw around
            groups.pop()
            if parent is not None:
                groups[parent].children.remove(number)
        return groups[number].members if number < len(groups) else []

    enter(body, None, 0)
    return groups, owner


def _item_names(steps: list[dict]) -> dict[tuple[str, str], list[str]]:
    """(step, loop id) -> the names the step reads its loop's item as (`seed`, or `region, drift`)."""
    found: dict[tuple[str, str], list[str]] = {}
    for step in steps:
        for value in step.get("inputs", []):
            ref = value.get("ref") or {}
            if ref.get("kind") == "item":
                found.setdefault((step["name"], ref.get("source", "")), []).append(value["name"])
    return found


def _loop_label(node: dict, names: list[str]) -> str:
    """The loop as its author wrote it (the graph's `header`), else made from what its steps read."""
    items = _ref_text(node.get("items") or {})
    limit = f", {node['parallelism']} at a time" if node.get("parallelism") else ""
    if node.get("header"):
        return node["header"] + limit
    return (f"for {', '.join(names)} in {items}" if names else f"for each of {items}") + limit


def _items_edges(body: list[dict], index: dict[str, int], edges: list[dict]) -> tuple[list[dict], list[dict]]:
    """A loop over a step's result waits for that step (the graph's edges hold the values steps read,
    and a loop's items are read by the loop): (the edges drawn from the step to the loop's own steps,
    the order every step inside the loop keeps, nested ones too)."""
    drawn: list[dict] = []
    after: list[dict] = []
    known = {(e["source"], e["target"]) for e in edges}
    for node in _walk(body):
        items = node.get("items") or {}
        source = items.get("source", "")
        if node["kind"] != "loop" or items.get("kind") not in ("task", "collected") or source not in index:
            continue
        own = {member.get("name") for member in node.get("body", [])}
        for member in _walk(node.get("body", [])):
            name = member.get("name")
            if name not in index or name == source or (source, name) in known:
                continue
            known.add((source, name))
            edge = {"source": source, "target": name, "names": [items.get("output") or "items"]}
            (drawn if name in own else after).append(edge)
    return drawn, after


def _walk(body: list[dict]) -> Iterable[dict]:
    for node in body:
        yield node
        yield from _walk(node.get("body", []))
        for branch in node.get("branches", []):
            yield from _walk(branch.get("body", []))


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
    """The steps (nested pipeline calls, generated expression steps) in body order, then any step the
    body does not hold."""
    names: list[str] = []
    kinds: dict[str, str] = {}
    for node in _walk(document.get("body", [])):
        if node["kind"] in ("step", "pipelinecall", "expression") and node.get("name") and node["name"] not in kinds:
            names.append(node["name"])
            kinds[node["name"]] = node["kind"]
    exit_name = (document.get("exit_step") or {}).get("name")
    for step in document.get("steps", []):
        if step["name"] not in kinds and step["name"] != exit_name:
            names.append(step["name"])
            kinds[step["name"]] = "step"
    return names, kinds


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
