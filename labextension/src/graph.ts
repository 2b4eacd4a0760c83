/**
 * The pipeline graph as SVG: one node per step, loops and branches as labelled boxes around their
 * steps, one arrow per dependency labelled with the variables it carries; steps kale_like generated
 * are small and grey. Where everything goes comes from the server (kale_like/surfaces/graph_layout.py),
 * which lays out the notebook widget's graph the same way: long dependencies are routed beside the
 * steps they pass, never through them.
 */

import { GraphData } from './api';
import { stepColor } from './tags';

const SVG = 'http://www.w3.org/2000/svg';
const NODE_H = 30;
const BADGE_H = 14;
const LABEL_H = 16;
/** Below this share of its natural size the graph scrolls instead of shrinking further (text stays legible). */
const SMALLEST_SCALE = 0.75;

function el<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | number>,
  parent?: Element
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) {
    node.setAttribute(key, String(value));
  }
  parent?.appendChild(node);
  return node;
}

function clip(text: string, max: number): string {
  return text.length > max ? text.slice(0, max - 1) + '…' : text;
}

let measuring: CanvasRenderingContext2D | null | undefined;

/**
 * `text` cut (with …) to fit `width` px in the font of the node names (`weight` `size`px in JupyterLab's
 * UI font), measured as the browser draws it: a long step name made from a heading stays inside its
 * node. Without a canvas to measure with, at most `fallback` characters.
 */
function fit(text: string, width: number, size: number, weight: string, style: string, fallback: number): string {
  if (measuring === undefined) {
    measuring = typeof document !== 'undefined' ? document.createElement('canvas').getContext('2d') : null;
  }
  if (!measuring) {
    return clip(text, fallback);
  }
  const family = getComputedStyle(document.body).getPropertyValue('--jp-ui-font-family').trim() || 'sans-serif';
  measuring.font = `${style} ${weight} ${size}px ${family}`;
  if (measuring.measureText(text).width <= width) {
    return text;
  }
  let keep = text.length - 1;
  while (keep > 1 && measuring.measureText(text.slice(0, keep) + '…').width > width) {
    keep -= 1;
  }
  return text.slice(0, keep) + '…';
}

export interface GraphView {
  /** Steps the analyzer has a problem with: outlined in red. */
  failing?: Set<string>;
  /** Each step's status in the run shown (a loop's: `done 2/3`, and how many of its iterations are done), filling its node. */
  statuses?: Map<string, { status: string; text: string; done?: number; total?: number }>;
  /** A click on a step's node. */
  onStep?: (name: string) => void;
}

/** The SVG of a graph. */
export function renderGraph(graph: GraphData, view: GraphView = {}): SVGSVGElement {
  const failing = view.failing ?? new Set<string>();
  const layout = graph.layout ?? { width: 0, height: 0, nodes: [], edges: [] };
  const { width, height } = layout;
  const svg = el('svg', {
    class: 'kl-Graph',
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': `pipeline graph: ${layout.nodes.length} steps, ${layout.edges.length} dependencies`
  });
  svg.style.minWidth = `${Math.round(width * SMALLEST_SCALE)}px`;
  const defs = el('defs', {}, svg);
  const marker = el(
    'marker',
    { id: 'kl-arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' },
    defs
  );
  el('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'kl-GraphArrow' }, marker);
  const groupLayer = el('g', { class: 'kl-GraphGroups' }, svg);
  const edgeLayer = el('g', { class: 'kl-GraphEdges' }, svg);
  const labelLayer = el('g', { class: 'kl-GraphEdgeLabels' }, svg);
  const groupLabels: SVGElement[] = [];
  for (const group of layout.groups ?? []) {
    const progress = group.kind === 'loop' ? loopProgress(group.members, view) : null;
    const box = el(
      'g',
      { class: `kl-GraphGroup kl-mod-${group.kind}`, 'data-group': group.id, 'data-progress': progress ?? '' },
      groupLayer
    );
    el('rect', { x: group.x, y: group.y, width: group.w, height: group.h, rx: 8, ry: 8 }, box);
    const title = el('title', {}, box);
    title.textContent = group.label + (progress ? ` (${progress} iterations done)` : '');
    const label = el('text', { x: group.x + 6, y: group.y + LABEL_H - 4, class: 'kl-GraphGroupLabel', 'data-group': group.id });
    label.textContent = group.label;
    if (progress) {
      const count = el('tspan', { class: 'kl-GraphGroupProgress' }, label);
      count.textContent = `  ${progress} done`;
    }
    groupLabels.push(label);
  }
  for (const edge of layout.edges) {
    const group = el('g', { class: 'kl-GraphEdge', 'data-source': edge.source, 'data-target': edge.target }, edgeLayer);
    el('path', { d: edge.path, 'marker-end': 'url(#kl-arrow)' }, group);
    const title = el('title', {}, group);
    title.textContent = `${edge.source} → ${edge.target}` + (edge.names.length ? `: ${edge.names.join(', ')}` : ' (runs after)');
    const text = el(
      'text',
      {
        x: edge.label_x,
        y: edge.label_y + 3,
        class: 'kl-GraphEdgeLabel' + (edge.names.length ? '' : ' kl-mod-order'),
        'text-anchor': 'middle',
        'data-source': edge.source,
        'data-target': edge.target
      },
      labelLayer
    );
    text.textContent = edge.names.length ? clip(edge.names.join(', '), 20) : 'after';
  }
  labelLayer.append(...groupLabels); // over the edges that enter the boxes
  const nodeLayer = el('g', { class: 'kl-GraphNodes' }, svg);
  for (const node of layout.nodes) {
    const color = stepColor(node.name);
    const run = view.statuses?.get(node.name);
    const group = el(
      'g',
      {
        class: 'kl-GraphNode' + (node.kind === 'exit' ? ' kl-mod-exit' : '') + (node.generated ? ' kl-mod-generated' : '') +
          (failing.has(node.name) ? ' kl-mod-error' : '') +
          (run ? ` kl-mod-run-${run.status.replace(' ', '-')}` : ''),
        'data-step': node.name,
        'data-status': run?.status ?? '',
        transform: `translate(${node.x}, ${node.y})`
      },
      nodeLayer
    );
    if (view.onStep) {
      group.addEventListener('click', () => view.onStep!(node.name));
      group.style.cursor = 'pointer';
    }
    if (node.generated) { // kale_like's own step: small, grey, dashed
      el('rect', { width: node.w, height: node.h, rx: 6, ry: 6 }, group);
    } else {
      el('rect', { width: node.w, height: node.h, rx: 6, ry: 6, style: `stroke: ${color}` }, group);
      el('rect', { width: 6, height: node.h, rx: 3, ry: 3, class: 'kl-GraphNodeBar', style: `fill: ${color}` }, group);
    }
    const name = el(
      'text',
      { x: node.generated ? node.w / 2 : node.w / 2 + 3, y: node.generated ? node.h / 2 + 4 : 19, 'text-anchor': 'middle', class: 'kl-GraphNodeName' },
      group
    );
    const shown = node.kind === 'pipelinecall' ? `▣ ${node.name}` : node.name;
    name.textContent = node.generated
      ? fit(shown, node.w - 10, 10, 'normal', 'italic', 16)
      : fit(shown, node.w - 6 - 12, 12, '600', 'normal', 19); // right of the colour bar, 6 px clear of each side
    node.badges.forEach((badge, index) => {
      const text = el(
        'text',
        { x: node.w / 2 + 3, y: NODE_H + index * BADGE_H + 2, 'text-anchor': 'middle', class: 'kl-GraphNodeBadge' },
        group
      );
      text.textContent = clip(badge, 24);
    });
    const title = el('title', {}, group);
    title.textContent = [node.name, node.generated ? 'computed by a step kale_like generated' : '', ...node.badges,
      ...(run ? [`last run: ${run.text}`] : []), view.onStep ? '(click: its cell)' : '']
      .filter(Boolean)
      .join('\n');
  }
  return svg;
}

/**
 * How many iterations of a loop are done in the run shown (`2/3`): its steps' least count of done
 * iterations, of the most iterations any of them has; null when no run is shown or none started.
 */
function loopProgress(members: string[], view: GraphView): string | null {
  const counts = members.map(name => view.statuses?.get(name)).filter(s => s?.total !== undefined && s.total > 0);
  if (!counts.length) {
    return null;
  }
  const done = Math.min(...counts.map(s => s!.done ?? 0));
  const total = Math.max(...counts.map(s => s!.total ?? 0));
  return `${done}/${total}`;
}
