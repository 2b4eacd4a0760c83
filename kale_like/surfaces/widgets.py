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
from kale_like.surfaces.graph_layout import BADGE_H, LABEL_H, NODE_H, layout
from kale_like.surfaces.run_rows import stamp, step_rows, task_step

STATUS_ICON = {"pending": "○", "running": "◔", "retrying": "↻", "done": "✔", "cached": "✔", "skipped": "↷",
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


def graph_svg(document: dict, statuses: dict[str, str] | None = None,
              iterations: dict[str, tuple[int, int]] | None = None) -> str:
    """An SVG of a step graph document (`StepGraph.to_json()`), laid out as the JupyterLab panel lays
    it out (`graph_layout.py`: one layout for both). `statuses`: each step's status in a run, filling
    its node; `iterations`: a loop's steps' (done, total) iterations, counted on the loop's box as the
    panel counts them (its steps' fewest done, of the most any has)."""
    placed = layout(document)
    esc = html.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="kale-like-graph" width="{placed.width:.0f}" '
             f'height="{placed.height:.0f}" viewBox="0 0 {placed.width:.0f} {placed.height:.0f}" '
             'font-family="sans-serif">',
             '<defs><marker id="kl-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto"><path d="M 0 0 L 10 5 L 0 10 z" fill="#757575"/></marker></defs>']
    labels = []
    for group in placed.groups:  # a loop's or a branch's box behind its steps; its label over the edges
        fill, stroke = ("#e3f2fd", "#64b5f6") if group.kind == "loop" else ("#fff8e1", "#ffb74d")
        parts.append(f'<rect class="group" data-group="{esc(group.id)}" data-kind="{group.kind}" x="{group.x}" '
                     f'y="{group.y}" width="{group.w}" height="{group.h}" rx="8" fill="{fill}" fill-opacity="0.55" '
                     f'stroke="{stroke}" stroke-dasharray="5 3"><title>{esc(group.label)}</title></rect>')
        counts = [(iterations or {})[name] for name in group.members if (iterations or {}).get(name, (0, 0))[1]]
        done = (f'<tspan class="group-progress" font-weight="600">  {min(d for d, _ in counts)}/'
                f'{max(t for _, t in counts)} done</tspan>') if counts and group.kind == "loop" else ""
        labels.append(f'<text class="group-label" data-group="{esc(group.id)}" x="{group.x + 6}" '
                      f'y="{group.y + LABEL_H - 4}" font-size="10" fill="#37474f" stroke="white" stroke-width="3" '
                      f'paint-order="stroke">{esc(group.label)}{done}</text>')
    for edge in placed.edges:
        parts.append(f'<path class="edge" data-source="{esc(edge.source)}" data-target="{esc(edge.target)}" '
                     f'd="{edge.path}" fill="none" stroke="#757575" stroke-width="1.5" marker-end="url(#kl-arrow)"/>')
        text = ", ".join(edge.names) or "after"
        text = text if len(text) <= 20 else text[:19] + "…"
        labels.append(f'<text class="edge-label" x="{edge.label_x:.1f}" y="{edge.label_y + 3:.1f}" '
                      'text-anchor="middle" font-size="10" fill="#424242" stroke="white" stroke-width="3" '
                      f'paint-order="stroke">{esc(text)}</text>')
    parts += labels
    for node in placed.nodes:
        color = step_color(node.name)
        status = (statuses or {}).get(node.name, "")
        fill = {"done": "#e8f5e9", "cached": "#e8f5e9", "failed": "#ffebee", "running": "#e3f2fd", "skipped": "#eeeeee",
                "not run": "#eeeeee", "stopped": "#eeeeee"}.get(status, "white")
        dashed = ' stroke-dasharray="6 3"' if node.kind == "exit" else ""
        bar = f'<rect width="6" height="{node.h}" rx="3" fill="{color}"/>'
        text = 'font-size="12" font-weight="600"'
        most, centre = 20, node.w / 2 + 3
        if node.generated:  # kale_like's own step: small, grey, in italics
            color, dashed, bar = "#9e9e9e", ' stroke-dasharray="3 2"', ""
            text, most, centre = 'font-size="10" font-style="italic" fill="#616161"', 15, node.w / 2
        kind = " generated" if node.generated else ""
        parts.append(f'<g class="node{kind}" data-step="{esc(node.name)}" data-status="{esc(status)}" '
                     f'transform="translate({node.x:.1f},{node.y:.1f})">'
                     f'<rect width="{node.w}" height="{node.h}" rx="6" fill="{fill}" stroke="{color}" '
                     f'stroke-width="{1 if node.generated else 2}"{dashed}/>{bar}'
                     f'<text x="{centre}" y="{node.h / 2 + 4}" text-anchor="middle" {text}>'
                     f'{esc(_fit(node.name, node.w - (10 if node.generated else 18), 10 if node.generated else 12, most))}'
                     '</text>')
        for index, badge in enumerate(node.badges):
            parts.append(f'<text x="{node.w / 2 + 3}" y="{NODE_H + index * BADGE_H + 2}" text-anchor="middle" '
                         f'font-size="10" fill="#616161">{esc(badge[:26])}</text>')
        parts.append(f"<title>{esc(node.name)}</title></g>")
    parts.append("</svg>")
    return "".join(parts)


_NARROW, _WIDE = set("iljft.,:;|!'()[]rI1 "), set("mwMW@%")


def _fit(text: str, width: float, size: int, most: int) -> str:
    """`text` cut (with …) to fit `width` px at `size` px (bold sans-serif, an estimate per character):
    a long step name made from a heading stays inside its node."""
    def wide(part: str) -> float:
        return sum((0.36 if c in _NARROW else 0.95 if c in _WIDE else 0.72 if c.isupper() else 0.62) * size
                   for c in part)

    if len(text) <= most and wide(text) <= width:
        return text
    keep = min(len(text) - 1, most - 1)
    while keep > 1 and wide(text[:keep] + "…") > width:
        keep -= 1
    return text[:keep] + "…"


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
    """A live view of a local run: a progress bar and a row per step (as the panel shows a run:
    `run_rows.py`). `observe` is the run observer."""

    def __init__(self, title: str = "local run", document: dict | None = None):
        widgets = _widgets()
        self.title = title
        self.document = document  # the graph (`StepGraph.to_json()`): drawn, each step in its status
        self.steps: list[str] = []
        self.tasks: dict[str, dict] = {}
        self.started = time.perf_counter()
        self.state = "running"
        self._lock = threading.Lock()
        self.bar = widgets.IntProgress(value=0, min=0, max=1, description="", bar_style="info")
        self.label = widgets.HTML()
        self.table = widgets.HTML()
        self.graph = widgets.HTML()
        self.widget = widgets.VBox([self.label, self.bar, self.graph, self.table])
        self.widget.add_class("kale-like-progress")
        self._render()

    def _ipython_display_(self):  # pragma: no cover - display hook
        from IPython.display import display

        display(self.widget)

    def expect(self, steps: list[str]) -> None:
        """The steps of the graph, in its order: a row each, pending until their tasks start."""
        with self._lock:
            self.steps = list(steps)
        self._render()

    def observe(self, event) -> None:
        """Run observer: called (from worker threads) as tasks change state."""
        with self._lock:
            task = self.tasks.setdefault(event.path, {"path": event.path, "label": event.label, "status": "pending",
                                                      "seconds": 0.0, "error": "", "log_tail": "", "log_path": ""})
            task.update(status=event.status, seconds=event.seconds or task["seconds"],
                        error=event.error or task["error"], log_tail=event.log_tail or task["log_tail"],
                        log_path=event.log_path or task["log_path"])
            stamp(task, event.status, time.time())
        self._render()

    def finish(self, result) -> None:
        self.state = "succeeded" if result.succeeded else "failed"
        self.error = result.error
        self._render()

    def _render(self) -> None:
        with self._lock:
            tasks = list(self.tasks.values())
            steps = self.steps or list(dict.fromkeys(task_step(t["path"]) for t in tasks))
        rows = step_rows(steps, tasks, ended=self.state != "running")
        finished = sum(r["status"] in ("done", "cached", "skipped") for r in rows)
        failed = sum(r["status"] in ("failed", "not run") for r in rows)
        self.bar.max = max(1, len(rows))
        self.bar.value = finished + failed
        self.bar.bar_style = {"succeeded": "success", "failed": "danger"}.get(self.state, "info")
        seconds = time.perf_counter() - self.started
        self.label.value = (f"<b>{html.escape(self.title)}</b>: <span class='kale-like-state'>{self.state}</span> "
                            f"({finished}/{len(rows)} done, {seconds:.0f} s)")
        cells = "".join(
            f"<tr class='kale-like-task' data-step='{html.escape(r['step'])}' data-status='{r['status']}'>"
            f"<td style='color:{STATUS_COLOR.get(r['status'], '#000')}'>{STATUS_ICON.get(r['status'], '?')}</td>"
            f"<td>{html.escape(r['step'])}</td>"
            f"<td>{_status_text(r)}</td>"
            f"<td>{r['seconds']:.1f} s</td>"
            f"<td><pre style='color:#c62828;margin:0;white-space:pre-wrap'>{html.escape(r.get('error', '')[:2000])}</pre></td></tr>"
            for r in rows)
        self.table.value = f"<table>{cells}</table>"
        if self.document is not None:
            self.graph.value = graph_svg(self.document, {r["step"]: r["status"] for r in rows},
                                         {r["step"]: (r["done"], r["total"]) for r in rows if r["loop"]})


def _status_text(row: dict) -> str:
    """`done`, or for a loop `done (2/3)`: how many of its iterations finished."""
    return f"{row['status']} ({row['done']}/{row['total']})" if row["loop"] else row["status"]


def run(source: Any, params: dict | None = None, **options):
    """`kale_like.run` with a live progress widget displayed in the notebook (the graph, each step in its
    status, and a row per step); returns the RunResult."""
    import json

    from IPython.display import display

    from kale_like.surfaces.api import load_graph
    from kale_like.surfaces.api import run as run_locally

    progress = RunProgress(f"local run of {getattr(source, '__name__', source)}")
    try:
        graph = load_graph(source, options.get("pipeline"))
        progress.document = json.loads(graph.to_json())
        progress.expect([s.name for s in graph.steps] + ([graph.exit_step.name] if graph.exit_step else []))
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
