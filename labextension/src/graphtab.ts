/**
 * The pipeline graph in a main-area tab: the same drawing as the panel's, at a size the user picks
 * (zoom in, zoom out, 100 %, fit the tab; Ctrl + wheel zooms at the pointer), moved by dragging its
 * background or scrolling, for graphs too large for the sidebar (fifty steps side by side).
 */

import { Widget } from '@lumino/widgets';

import { GraphData } from './api';
import { h } from './dom';
import { GraphView, renderGraph } from './graph';

const STEP = 1.25;

export class GraphTab extends Widget {
  constructor() {
    super();
    this.addClass('kl-GraphTab');
    const button = (label: string, title: string, action: () => void, cls: string) =>
      h('button', { class: `jp-mod-styled kl-GraphZoom ${cls}`, type: 'button', title, 'aria-label': title, onclick: action }, label);
    this.scroller = h('div', { class: 'kl-GraphTabCanvas' });
    this.node.append(
      h(
        'div',
        { class: 'kl-GraphTabBar' },
        button('−', 'Zoom out', () => this.zoom(this.scale / STEP), 'kl-ZoomOut'),
        button('Fit', 'Fit the graph to the tab', () => this.fit(), 'kl-ZoomFit'),
        button('100 %', 'Actual size', () => this.zoom(1), 'kl-ZoomReset'),
        button('+', 'Zoom in', () => this.zoom(this.scale * STEP), 'kl-ZoomIn'),
        this.scaleText,
        h('span', { class: 'kl-Hint kl-GraphTabHint' }, 'drag to move, Ctrl + wheel to zoom')
      ),
      this.scroller
    );
    this.scroller.addEventListener('wheel', event => {
      if (!event.ctrlKey && !event.metaKey) {
        return; // scrolling moves the graph
      }
      event.preventDefault();
      const box = this.scroller.getBoundingClientRect();
      this.zoom(this.scale * (event.deltaY < 0 ? STEP : 1 / STEP), event.clientX - box.left, event.clientY - box.top);
    }, { passive: false });
    this.scroller.addEventListener('pointerdown', event => {
      if (event.button !== 0 || (event.target as Element).closest?.('.kl-GraphNode')) {
        return; // a click on a step opens its cell
      }
      const start = { x: event.clientX, y: event.clientY, left: this.scroller.scrollLeft, top: this.scroller.scrollTop };
      this.scroller.setPointerCapture(event.pointerId);
      this.scroller.classList.add('kl-mod-dragging');
      const move = (e: PointerEvent) => {
        this.scroller.scrollLeft = start.left - (e.clientX - start.x);
        this.scroller.scrollTop = start.top - (e.clientY - start.y);
      };
      const end = () => {
        this.scroller.classList.remove('kl-mod-dragging');
        this.scroller.removeEventListener('pointermove', move);
        this.scroller.removeEventListener('pointerup', end);
        this.scroller.removeEventListener('pointercancel', end);
      };
      this.scroller.addEventListener('pointermove', move);
      this.scroller.addEventListener('pointerup', end);
      this.scroller.addEventListener('pointercancel', end);
    });
  }

  /** Draw (again, after an edit or as a run goes) at the current scale. */
  setGraph(graph: GraphData, view: GraphView): void {
    this.graph = graph;
    this.view = view;
    this.draw();
  }

  /** Zoom to `scale`, keeping the point at (x, y) of the visible area (its middle by default) in place. */
  zoom(scale: number, x?: number, y?: number): void {
    const view = this.scroller;
    const at = { x: x ?? view.clientWidth / 2, y: y ?? view.clientHeight / 2 };
    const before = this.scale;
    const point = { x: (view.scrollLeft + at.x) / before, y: (view.scrollTop + at.y) / before };
    this.scale = Math.min(4, Math.max(0.05, scale));
    this.draw();
    view.scrollLeft = point.x * this.scale - at.x;
    view.scrollTop = point.y * this.scale - at.y;
  }

  /** The largest scale (at most 1) at which the whole graph shows in the tab. */
  fit(): void {
    const layout = this.graph?.layout;
    if (!layout || !this.scroller.clientWidth) {
      return;
    }
    this.zoom(Math.min(1, (this.scroller.clientWidth - 8) / layout.width, (this.scroller.clientHeight - 8) / layout.height));
  }

  private draw(): void {
    const layout = this.graph?.layout;
    if (!this.graph || !layout) {
      this.scroller.replaceChildren();
      return;
    }
    const svg = renderGraph(this.graph, this.view);
    svg.setAttribute('width', String(Math.round(layout.width * this.scale)));
    svg.setAttribute('height', String(Math.round(layout.height * this.scale)));
    svg.style.minWidth = '';
    svg.classList.add('kl-mod-tab');
    this.scroller.replaceChildren(svg);
    this.scaleText.textContent = `${Math.round(this.scale * 100)} %`;
  }

  private graph: GraphData | null = null;
  private view: GraphView = {};
  private scale = 1;
  private scroller: HTMLElement;
  private scaleText: HTMLElement = h('span', { class: 'kl-GraphScale', role: 'status' });
}
