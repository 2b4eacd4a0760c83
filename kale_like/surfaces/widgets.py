"""ipywidgets for notebooks: the pipeline graph (`kale_like.show`) and a live progress view of a local run.

```python
import kale_like
kale_like.show("analysis.ipynb")             # the graph, parameters and warnings (or the problems)

from kale_like.surfaces.widgets import run
result = run("multi_seed.py", params={"threshold": 0.9})   # live per-step progress while it runs
```

`RunProgress().observe` is an ordinary run observer, so `kale_like.run(source, observer=progress.observe)`
drives the same widget. The graph is drawn as SVG here, in Python: no kernel-side JavaScript is needed,
only ipywidgets.
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

from kale_like.errors import KaleLikeError

NODE_W, NODE_H, BADGE_H, GAP_X, GAP_Y, MARGIN = 150, 30, 14, 26, 48, 12
EXIT_BADGE = "⚑ runs last, always"  # the exit handler: after the body, whatever happened (as in the panel)
STATUS_ICON = {"pending": "○", "running": "◔", "retrying": "↻", "done": "✔", "cached": "✔", "skipped": "⤼",
               "failed": "✖"}
STATUS_COLOR = {"done": "#2e7d32", "cached": "#2e7d32", "failed": "#c62828", "running": "#1565c0",
                "retrying": "#ef6c00", "skipped": "#757575", "pending": "#9e9e9e"}


def _widgets():
    try:
        import ipywidgets
    except ImportError:  # pragma: no cover - the jupyter extra brings it
        raise KaleLikeError("kale_like.show needs ipywidgets", None,
                            "pip install 'kale-like[jupyter]' (or pip install ipywidgets)") from None
    return ipywidgets


def step_color(name: str) -> str:
    """The colour the JupyterLab panel gives the step (same hash)."""
    value = 0
    for char in name:
        value = (value * 31 + ord(char)) & 0xFFFFFFFF
    return f"hsl({value % 360}, 60%, 42%)"


# ------------------------------------------------------------------------------------ the graph


def _containers(body: list[dict], around: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    result: dict[str, tuple[str, ...]] = {}
    for node in body:
        if node["kind"] in ("step", "pipelinecall"):
            result[node["name"]] = around
        elif node["kind"] == "loop":
            items = _ref_text(node.get("items") or {})
            limit = f" ≤{node['parallelism']}" if node.get("parallelism") else ""
            result.update(_containers(node.get("body", []), around + (f"↻ each of {items}{limit}",)))
        elif node["kind"] == "condition":
            for index, branch in enumerate(node.get("branches", [])):
                test = branch.get("test")
                label = f"{'if' if index == 0 else 'elif'} {_test_text(test)}" if test else "else"
                result.update(_containers(branch.get("body", []), around + (label,)))
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


def _names(body: list[dict]) -> list[str]:
    names = []
    for node in body:
        if node["kind"] in ("step", "pipelinecall"):
            names.append(node["name"])
        names += _names(node.get("body", []))
        for branch in node.get("branches", []):
            names += _names(branch.get("body", []))
    return names


def graph_svg(document: dict, statuses: dict[str, str] | None = None) -> str:
    """An SVG of a step graph document (`StepGraph.to_json()`), layered top to bottom."""
    names = _names(document["body"]) or [s["name"] for s in document["steps"]]
    parents: dict[str, list[str]] = {name: [] for name in names}
    for edge in document["edges"]:
        if edge["target"] in parents and edge["source"] in parents:
            parents[edge["target"]].append(edge["source"])
    layer: dict[str, int] = {}

    def depth(name: str, seen: frozenset = frozenset()) -> int:
        if name not in layer:
            if name in seen:
                return 0
            layer[name] = 1 + max((depth(p, seen | {name}) for p in parents[name]), default=-1)
        return layer[name]

    rows: dict[int, list[str]] = {}
    for name in names:
        rows.setdefault(depth(name), []).append(name)
    around = _containers(document["body"])
    widest = max((len(r) for r in rows.values()), default=1)
    width = 2 * MARGIN + widest * NODE_W + (widest - 1) * GAP_X
    boxes: dict[str, tuple[float, float, float]] = {}
    y = MARGIN
    for row in (rows[k] for k in sorted(rows)):
        x = (width - (len(row) * NODE_W + (len(row) - 1) * GAP_X)) / 2
        row_height = NODE_H
        for name in row:
            h = NODE_H + BADGE_H * len(around.get(name, ()))
            boxes[name] = (x, y, h)
            row_height = max(row_height, h)
            x += NODE_W + GAP_X
        y += row_height + GAP_Y
    exit_step = (document.get("exit_step") or {}).get("name")
    if exit_step and exit_step not in boxes:  # outside the body: a row of its own, below it
        around = {**around, exit_step: (EXIT_BADGE,)}
        boxes[exit_step] = ((width - NODE_W) / 2, y, NODE_H + BADGE_H)
        y += NODE_H + BADGE_H + GAP_Y
    height = max(y - GAP_Y + MARGIN, NODE_H + 2 * MARGIN)
    esc = html.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="kale-like-graph" width="{width:.0f}" '
             f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif">',
             '<defs><marker id="kl-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto"><path d="M 0 0 L 10 5 L 0 10 z" fill="#757575"/></marker></defs>']
    labels = []
    for edge in document["edges"]:
        if edge["source"] not in boxes or edge["target"] not in boxes:
            continue
        (sx, sy, sh), (tx, ty, _) = boxes[edge["source"]], boxes[edge["target"]]
        x1, y1, x2, y2 = sx + NODE_W / 2, sy + sh, tx + NODE_W / 2, ty
        bend = max(20, (y2 - y1) / 2)
        parts.append(f'<path class="edge" data-source="{esc(edge["source"])}" data-target="{esc(edge["target"])}" '
                     f'd="M {x1:.1f} {y1:.1f} C {x1:.1f} {y1 + bend:.1f}, {x2:.1f} {y2 - bend:.1f}, {x2:.1f} {y2:.1f}" '
                     'fill="none" stroke="#757575" stroke-width="1.5" marker-end="url(#kl-arrow)"/>')
        text = ", ".join(edge["names"]) or "after"
        text = text if len(text) <= 20 else text[:19] + "…"
        lx, ly = _label_point(x1, y1, x2, y2, bend, len(parents[edge["target"]]) > 1)
        labels.append(f'<text class="edge-label" x="{lx:.1f}" y="{ly + 3:.1f}" '
                      'text-anchor="middle" font-size="10" fill="#424242" stroke="white" stroke-width="3" '
                      f'paint-order="stroke">{esc(text)}</text>')
    parts += labels
    for name, (x, y0, box_height) in boxes.items():
        color = step_color(name)
        status = (statuses or {}).get(name, "")
        fill = {"done": "#e8f5e9", "cached": "#e8f5e9", "failed": "#ffebee", "running": "#e3f2fd"}.get(status, "white")
        dashed = ' stroke-dasharray="6 3"' if name == exit_step else ""
        parts.append(f'<g class="node" data-step="{esc(name)}" transform="translate({x:.1f},{y0:.1f})">'
                     f'<rect width="{NODE_W}" height="{box_height}" rx="6" fill="{fill}" stroke="{color}" '
                     f'stroke-width="2"{dashed}/>'
                     f'<rect width="6" height="{box_height}" rx="3" fill="{color}"/>'
                     f'<text x="{NODE_W / 2 + 3}" y="19" text-anchor="middle" font-size="12" font-weight="600">'
                     f'{esc(name if len(name) <= 20 else name[:19] + "…")}</text>')
        for index, badge in enumerate(around.get(name, ())):
            parts.append(f'<text x="{NODE_W / 2 + 3}" y="{NODE_H + index * BADGE_H + 2}" text-anchor="middle" '
                         f'font-size="10" fill="#616161">{esc(badge[:26])}</text>')
        parts.append(f"<title>{esc(name)}</title></g>")
    parts.append("</svg>")
    return "".join(parts)


def _label_point(x1: float, y1: float, x2: float, y2: float, bend: float, shared_target: bool):
    """Where an edge's label goes: near the target, or near the source when the target has several parents
    (so the labels of a fan-out or a fan-in do not sit on top of each other)."""
    t = 0.3 if shared_target else 0.7
    u = 1 - t
    points = ((x1, y1), (x1, y1 + bend), (x2, y2 - bend), (x2, y2))
    weights = (u ** 3, 3 * u * u * t, 3 * u * t * t, t ** 3)
    return (sum(w * p[0] for w, p in zip(weights, points)), sum(w * p[1] for w, p in zip(weights, points)))


def show(source: Any, pipeline: str | None = None):
    """A widget with the pipeline graph of `source` (a notebook, a .py file or a @pipeline function).

    Problems the analyzer finds are shown in the widget with the command line's message.
    """
    import json

    from kale_like.graph.checks import check_graph
    from kale_like.surfaces.api import load_graph

    widgets = _widgets()
    try:
        graph = load_graph(source, pipeline)
        warnings = list(graph.warnings) + check_graph(graph)
    except KaleLikeError as error:
        return widgets.HTML(f'<pre class="kale-like-error" style="color:#c62828;white-space:pre-wrap">'
                            f'{html.escape("error: " + error.render())}</pre>')
    document = json.loads(graph.to_json())
    settings = graph.settings
    header = (f"<b>{html.escape(settings.name)}</b>: {len(graph.steps)} step{'s' if len(graph.steps) != 1 else ''}, "
              f"{len(document['edges'])} dependenc{'y' if len(document['edges']) == 1 else 'ies'}"
              + (f" — experiment {html.escape(settings.experiment)}" if settings.experiment else ""))
    parameters = "".join(f"<tr><td><code>{html.escape(p.name)}</code></td><td>{html.escape(p.type)}</td>"
                         f"<td><code>{html.escape(repr(p.default))}</code></td></tr>" for p in graph.parameters)
    body = [widgets.HTML(header), widgets.HTML(graph_svg(document))]
    if parameters:
        body.append(widgets.HTML("<table class='kale-like-parameters'><tr><th>parameter</th><th>type</th>"
                                 f"<th>default</th></tr>{parameters}</table>"))
    if warnings:
        body.append(widgets.HTML("<details><summary>" + f"{len(warnings)} warning(s)</summary>"
                                 + "".join(f"<div>{html.escape(w)}</div>" for w in warnings) + "</details>"))
    box = widgets.VBox(body)
    box.add_class("kale-like-show")
    return box


# --------------------------------------------------------------------------- live run progress


class RunProgress:
    """A live view of a local run: a progress bar and a row per task. `observe` is the run observer."""

    def __init__(self, title: str = "local run"):
        widgets = _widgets()
        self.title = title
        self.tasks: dict[str, dict] = {}
        self.started = time.perf_counter()
        self.state = "running"
        self._lock = threading.Lock()
        self.bar = widgets.IntProgress(value=0, min=0, max=1, description="", bar_style="info")
        self.label = widgets.HTML()
        self.table = widgets.HTML()
        self.widget = widgets.VBox([self.label, self.bar, self.table])
        self.widget.add_class("kale-like-progress")
        self._render()

    def _ipython_display_(self):  # pragma: no cover - display hook
        from IPython.display import display

        display(self.widget)

    def expect(self, steps: list[str]) -> None:
        """Show these steps as pending before they start."""
        with self._lock:
            for step in steps:
                label = step.replace("_", "-")
                self.tasks.setdefault(label, {"label": label, "status": "pending", "seconds": 0.0, "error": ""})
        self._render()

    def observe(self, event) -> None:
        """Run observer: called (from worker threads) as tasks change state."""
        with self._lock:
            task = self.tasks.setdefault(event.path, {"label": event.label, "status": "pending", "seconds": 0.0,
                                                      "error": ""})
            if event.label != event.path:
                self.tasks.pop(event.label, None)  # the pending row shown by `expect`
            task.update(status=event.status, seconds=event.seconds or task["seconds"],
                        error=event.error or task["error"])
        self._render()

    def finish(self, result) -> None:
        self.state = "succeeded" if result.succeeded else "failed"
        self.error = result.error
        self._render()

    def _render(self) -> None:
        with self._lock:
            tasks = list(self.tasks.values())
        finished = sum(t["status"] in ("done", "cached", "skipped") for t in tasks)
        failed = sum(t["status"] == "failed" for t in tasks)
        self.bar.max = max(1, len(tasks))
        self.bar.value = finished + failed
        self.bar.bar_style = {"succeeded": "success", "failed": "danger"}.get(self.state, "info")
        seconds = time.perf_counter() - self.started
        self.label.value = (f"<b>{html.escape(self.title)}</b>: <span class='kale-like-state'>{self.state}</span> "
                            f"({finished}/{len(tasks)} done, {seconds:.0f} s)")
        rows = "".join(
            f"<tr class='kale-like-task' data-status='{t['status']}'>"
            f"<td style='color:{STATUS_COLOR.get(t['status'], '#000')}'>{STATUS_ICON.get(t['status'], '?')}</td>"
            f"<td>{html.escape(t['label'])}</td><td>{t['status']}</td><td>{t['seconds']:.1f} s</td>"
            f"<td style='color:#c62828'>{html.escape(t['error'][:200])}</td></tr>"
            for t in tasks)
        self.table.value = f"<table>{rows}</table>"


def run(source: Any, params: dict | None = None, **options):
    """`kale_like.run` with a live progress widget displayed in the notebook; returns the RunResult."""
    from IPython.display import display

    from kale_like.surfaces.api import load_graph
    from kale_like.surfaces.api import run as run_locally

    progress = RunProgress(f"local run of {getattr(source, '__name__', source)}")
    try:
        progress.expect([s.name for s in load_graph(source, options.get("pipeline")).steps])
    except (KaleLikeError, TypeError, ValueError):
        pass  # the run itself reports the problem
    display(progress.widget)
    options.setdefault("echo", False)
    try:
        result = run_locally(source, params, observer=progress.observe, **options)
    except BaseException:
        progress.state = "failed"
        progress._render()
        raise
    progress.finish(result)
    return result
