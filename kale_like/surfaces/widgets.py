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

A step picked in the run widget (its button under the rows; a loop's iteration in the menu beside it)
shows below what the panel shows of it, with the same code: its log with the error line first and only
the user's frames (`run_rows.py`, `tracebacks.py`), and its outputs previewed as the Jupyter server
previews them (`server/runs.py` `LocalRun.previews`: stored values read in a process of their own).
"""

from __future__ import annotations

import asyncio
import html
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from kale_like.errors import KaleLikeError
from kale_like.surfaces.graph_layout import BADGE_H, LABEL_H, NODE_H, layout
from kale_like.surfaces.run_rows import log_tail, stamp, step_rows, task_name, task_step
from kale_like.surfaces.tracebacks import readable_log

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
              iterations: dict[str, tuple[int, int]] | None = None, selected: str | None = None) -> str:
    """An SVG of a step graph document (`StepGraph.to_json()`), laid out as the JupyterLab panel lays
    it out (`graph_layout.py`: one layout for both). `statuses`: each step's status in a run, filling
    its node; `iterations`: a loop's steps' (done, total) iterations, counted on the loop's box as the
    panel counts them (its steps' fewest done, of the most any has); `selected`: the step whose detail
    the run widget shows, outlined."""
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
        kind += " selected" if node.name == selected else ""
        width = 4 if node.name == selected else 1 if node.generated else 2
        parts.append(f'<g class="node{kind}" data-step="{esc(node.name)}" data-status="{esc(status)}" '
                     f'transform="translate({node.x:.1f},{node.y:.1f})">'
                     f'<rect width="{node.w}" height="{node.h}" rx="6" fill="{fill}" stroke="{color}" '
                     f'stroke-width="{width}"{dashed}/>{bar}'
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
        # a step's detail: pick it (a button per step), a loop's iteration, and below, its log and outputs
        self.picker = widgets.ToggleButtons(options=[], value=None, description="step:", tooltips=[])
        self.picker.add_class("kale-like-step-picker")
        self.iteration = widgets.Dropdown(options=[], description="iteration:", layout=widgets.Layout(display="none"))
        self.iteration.add_class("kale-like-iteration")
        self.detail = widgets.HTML()
        self.detail.add_class("kale-like-step-detail")
        self.selected: str | None = None  # the step shown below the rows
        self.folder = Path.cwd()  # the notebook's folder: an image file a step names is read from it
        self.graph_object: Any = None  # the StepGraph, when known: a step's one output under its own name
        self._previews: dict[tuple[str, str], list[dict]] = {}  # (task label, status) -> its outputs' previews
        self._reader: threading.Thread | None = None
        self._drawing = threading.RLock()
        self._shown = ""  # what the detail was last drawn from, so an unchanged step is not drawn again
        self._updating = False  # the picker's options being replaced: its value changes, nobody picked
        self.picker.observe(lambda change: self.select(change["new"]) if change["new"] and not self._updating
                            else None, names="value")
        self.iteration.observe(lambda change: self._show_detail() if change["new"] and not self._updating
                               else None, names="value")
        self.widget = widgets.VBox([self.label, self.bar, self.graph, self.table,
                                    widgets.HBox([self.picker, self.iteration]), self.detail])
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
            if getattr(event, "outputs", None):  # a finished task's parameter values and artifact URIs
                task["outputs"] = event.outputs
            stamp(task, event.status, time.time())
        self._render()

    def finish(self, result) -> None:
        self.state = "succeeded" if result.succeeded else "failed"
        self.error = result.error
        with self._lock:  # the outputs as the run reports them, for a task whose event had none
            for report in getattr(result, "tasks", ()):
                if report.path in self.tasks and report.outputs:
                    self.tasks[report.path].setdefault("outputs", report.outputs)
        self._render()
        failed = next((r["step"] for r in self._rows() if r["status"] == "failed"), None)
        if self.selected is None and failed is not None:
            self.select(failed)  # what went wrong, without a click

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
            f"<tr class='kale-like-task' data-step='{html.escape(r['step'])}' data-status='{r['status']}'"
            + (" style='background:#e3f2fd'" if r["step"] == self.selected else "") + ">"
            f"<td style='color:{STATUS_COLOR.get(r['status'], '#000')}'>{STATUS_ICON.get(r['status'], '?')}</td>"
            f"<td>{html.escape(r['step'])}</td>"
            f"<td>{_status_text(r)}</td>"
            f"<td>{r['seconds']:.1f} s</td>"
            f"<td><pre style='color:#c62828;margin:0;white-space:pre-wrap'>{html.escape(r.get('error', '')[:2000])}</pre></td></tr>"
            for r in rows)
        self.table.value = f"<table>{cells}</table>"
        if self.document is not None:
            self.graph.value = graph_svg(self.document, {r["step"]: r["status"] for r in rows},
                                         {r["step"]: (r["done"], r["total"]) for r in rows if r["loop"]},
                                         self.selected)
        names = tuple(r["step"] for r in rows)
        if tuple(self.picker.options) != names:
            self._updating = True
            try:
                self.picker.options = names
                self.picker.value = self.selected if self.selected in names else None
            finally:
                self._updating = False
        self.picker.tooltips = [f"{r['step']}: {_status_text(r)} (its log and outputs below)" for r in rows]
        if self.selected is not None:
            self._show_detail()

    # ---------------------------------------------------------------------------- a step's detail

    def select(self, step: str, iteration: str | None = None) -> None:
        """Show `step`'s log and outputs below the rows (`iteration`: a loop's iteration, `train[2]`)."""
        self.selected, self._shown = step, ""
        if self.picker.value != step and step in self.picker.options:
            self.picker.value = step  # which comes back here: drawn once, below
        labels = self._labels(step)
        self._offer_iterations(labels, next((label for name, label in labels if iteration in (name, label)),
                                            self._default(step)))
        self._render()  # the graph outlines the step; the detail is drawn below

    def _offer_iterations(self, labels: list[tuple[str, str]], wanted: str | None) -> None:
        """The iteration menu holding `labels` (shown for a loop only), `wanted` picked in it; set
        here, not by the user, so the menu's change handler draws nothing."""
        self._updating = True
        try:
            if tuple(self.iteration.options) != tuple(labels):
                self.iteration.options = labels
            self.iteration.layout.display = "" if len(labels) > 1 else "none"
            if wanted in [label for _, label in labels]:
                self.iteration.value = wanted
        finally:
            self._updating = False

    def wait(self, timeout: float = 60.0) -> None:
        """Until the shown step's outputs are read (their previews come from a process of their own)."""
        reader = self._reader
        if reader is not None:
            reader.join(timeout)

    def _labels(self, step: str) -> list[tuple[str, str]]:
        """The tasks of `step` (a loop's iterations, in order): (the user's name, `square[2]`, KFP's label)."""
        with self._lock:
            found = [(task_name(t["path"], t["label"], step), t["label"]) for t in self.tasks.values()
                     if task_step(t["path"]) == step]
        return sorted(found, key=lambda named: (len(named[0]), named[0]))

    def _default(self, step: str) -> str | None:
        """The task shown first: the failed one, else the first (as the panel's row opens)."""
        rows = self._rows()
        row = next((r for r in rows if r["step"] == step), None)
        return (row or {}).get("log_task") or None

    def _rows(self) -> list[dict]:
        with self._lock:
            tasks = list(self.tasks.values())
            steps = self.steps or list(dict.fromkeys(task_step(t["path"]) for t in tasks))
        return step_rows(steps, tasks, ended=self.state != "running")

    def _task(self, label: str | None) -> dict | None:
        with self._lock:
            found = next((t for t in self.tasks.values() if t["label"] == label), None)
            return dict(found) if found is not None else None

    def _show_detail(self) -> None:
        with self._drawing:  # events come from the run's threads, picks from the kernel's
            self._draw_detail()

    def _draw_detail(self) -> None:
        step = self.selected
        if step is None:
            return
        labels = self._labels(step)
        known = [label for _, label in labels]
        if tuple(self.iteration.options) != tuple(labels):  # a loop's iterations appear as they start
            picked = self.iteration.value  # replacing the options resets it: the one picked stays
            self._offer_iterations(labels, picked if picked in known else self._default(step))
        label = self.iteration.value if self.iteration.value in known else self._default(step)
        task = self._task(label)
        row = next((r for r in self._rows() if r["step"] == step), {"status": "pending"})
        key = repr((step, label, row.get("status"), task and (task["status"], task.get("seconds"),
                                                               bool(task.get("outputs")))))
        if key == self._shown:
            return
        self._shown = key
        top = self.detail_html(step, label, previews=None)
        self.detail.value = top
        if label is None or task is None or not task.get("outputs"):
            return
        if (label, task["status"]) in self._previews:
            self.detail.value = self.detail_html(step, label, self._previews[(label, task["status"])])
            return

        def read() -> None:
            shown = self.previews(label)
            if self._shown == key:
                self.detail.value = self.detail_html(step, label, shown)

        self._reader = threading.Thread(target=read, name=f"kale-like-preview-{label}", daemon=True)
        self._reader.start()

    def previews(self, label: str) -> list[dict]:
        """Previews of a task's outputs, as the Jupyter server makes them (`LocalRun.previews`: a
        parameter's text or the image file it names, stored values read in a process of its own)."""
        from kale_like.surfaces.server.run_worker import task_outputs
        from kale_like.surfaces.server.runs import LocalRun

        task = self._task(label)
        if task is None or not task.get("outputs"):
            return []
        cached = self._previews.get((label, task["status"]))
        if cached is not None:
            return cached
        report = SimpleNamespace(path=task["path"], label=label, outputs=task["outputs"])
        outputs = task_outputs(SimpleNamespace(tasks=[report]), self._named_steps())
        run = LocalRun("widget", "", self.folder / ".kale_like", outputs=outputs)
        result: list[list[dict]] = []

        def read() -> None:  # on a thread of its own: the notebook's kernel has its event loop running
            try:
                result.append(asyncio.run(run.previews(label)))
            except Exception as error:  # noqa: BLE001 - said in the widget, as the panel says it
                result.append([{"name": "", "kind": "", "summary": f"outputs cannot be read: {error}"}])

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join()
        self._previews[(label, task["status"])] = result[0]
        return result[0]

    def _named_steps(self) -> Any:
        """The graph's steps and their outputs (what `task_outputs` names a step's one output after)."""
        if self.graph_object is not None:
            return self.graph_object
        steps = (self.document or {}).get("steps", []) + [s for s in [(self.document or {}).get("exit_step")] if s]
        return SimpleNamespace(all_steps=[SimpleNamespace(name=s["name"], outputs=[
            SimpleNamespace(name=o["name"] if isinstance(o, dict) else str(o)) for o in s.get("outputs") or []])
            for s in steps])

    def detail_html(self, step: str, label: str | None, previews: list[dict] | None) -> str:
        """What the widget shows of a step: status, the error first (the user's frames only) for a
        failure, the log as the panel shows it, and its outputs (`previews`; None while being read)."""
        esc = html.escape
        task = self._task(label)
        row = next((r for r in self._rows() if r["step"] == step), None)
        if task is None:
            status = row["status"] if row else "pending"
            return (f"<div class='kale-like-detail' data-step='{esc(step)}'><b>{esc(step)}</b>: {esc(status)} "
                    "<i>(no log: the step has not run)</i></div>")
        status, name = task["status"], task_name(task["path"], task["label"], step)
        parts = [f"<div class='kale-like-detail' data-step='{esc(step)}' data-task='{esc(name)}' "
                 f"data-status='{esc(status)}'><b>{esc(name)}</b>: "
                 f"<span style='color:{STATUS_COLOR.get(status, '#000')}'>{esc(status)}</span>"
                 + (f", {task['seconds']:.1f} s" if task.get("seconds") else "") + "</div>"]
        if status == "failed":
            failure = step_rows([step], [task], ended=True)[0].get("error", "")  # error line first, user frames
            parts.append(f"<pre class='kale-like-error' style='color:#c62828;white-space:pre-wrap;margin:4px 0'>"
                         f"{esc(failure)}</pre>")
        log = readable_log(log_tail(Path(task["log_path"]))) if task.get("log_path") else task.get("log_tail", "")
        if status == "cached":
            log = log or "(from the cache: not run again, so no log in this run)"
        parts.append("<div><b>log</b></div><pre class='kale-like-log' style='white-space:pre-wrap;max-height:24em;"
                     f"overflow:auto;background:#f5f5f5;padding:4px;margin:0'>{esc(log) or '<i>(empty)</i>'}</pre>")
        if task.get("outputs"):
            parts.append("<div><b>outputs</b></div>")
            if previews is None:
                parts.append("<div class='kale-like-outputs'><i>reading the outputs…</i></div>")
            else:
                parts.append("<div class='kale-like-outputs'>" + "".join(_preview_html(p) for p in previews)
                             + ("" if previews else "<i>none</i>") + "</div>")
        elif status in ("running", "retrying", "pending"):
            parts.append("<div><i>outputs: once the step has finished</i></div>")
        return "".join(parts)


def _preview_html(preview: dict) -> str:
    """One output as the panel shows it (`server/preview.py`'s dict): its summary, then a DataFrame's
    first rows as a table, a picture, or the value's text."""
    esc = html.escape
    parts = [f"<div class='kale-like-output' data-name='{esc(str(preview.get('name', '')))}' style='margin:4px 0'>"
             f"<code>{esc(str(preview.get('name', '')))}</code>: {esc(str(preview.get('summary', '')))}"]
    if preview.get("columns") is not None:
        head = "".join(f"<th>{esc(str(c))}</th>" for c in preview["columns"])
        body = "".join("<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in row) + "</tr>"
                       for row in preview.get("rows", []))
        parts.append(f"<table class='kale-like-frame' border='1' style='border-collapse:collapse;font-size:90%'>"
                     f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    if str(preview.get("image", "")).startswith("data:image/"):
        parts.append(f"<div><img src='{esc(preview['image'])}' style='max-width:100%' "
                     f"alt='{esc(str(preview.get('name', '')))}'/></div>")
    elif preview.get("text") is not None and preview.get("columns") is None:
        parts.append(f"<pre style='white-space:pre-wrap;margin:0'>{esc(str(preview['text']))}</pre>")
    parts.append("</div>")
    return "".join(parts)


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
        progress.graph_object = graph
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
