/**
 * The pipeline graph in a main-area tab: the same drawing as the panel's, at a size the user picks
 * (zoom in, zoom out, fit the tab), scrolled freely, for graphs too large for the sidebar.
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
        button('+', 'Zoom in', () => this.zoom(this.scale * STEP), 'kl-ZoomIn'),
        this.scaleText
      ),
      this.scroller
    );
  }

  /** Draw (again, after an edit or as a run goes) at the current scale. */
  setGraph(graph: GraphData, view: GraphView): void {
    this.graph = graph;
    this.view = view;
    this.draw();
  }

  zoom(scale: number): void {
    this.scale = Math.min(4, Math.max(0.1, scale));
    this.draw();
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
