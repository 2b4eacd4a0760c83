/**
 * The pipeline graph as the analyzer sees it, drawn as SVG: one node per step (loops and branches
 * as badges on their steps), one arrow per dependency labelled with the variables it carries.
 * Layered top to bottom (the sidebar is narrow), steps in notebook order within a layer.
 */

import { BodyNode, GraphData, Test } from './api';
import { stepColor } from './tags';

const SVG = 'http://www.w3.org/2000/svg';
const NODE_W = 136;
const NODE_H = 30;
const BADGE_H = 14;
const GAP_X = 24;
const GAP_Y = 46;
const MARGIN = 12;

interface Placed {
  name: string;
  x: number;
  y: number;
  h: number;
  badges: string[];
  kind: 'step' | 'pipelinecall' | 'exit';
}

/** The badge of the exit handler, drawn below the body: it runs after everything else. */
export const EXIT_BADGE = '⚑ runs last, always';

/** Where each step sits in the body tree: the loops and branches around it, as short labels. */
export function containers(body: BodyNode[]): Map<string, string[]> {
  const result = new Map<string, string[]>();
  const visit = (nodes: BodyNode[], around: string[]) => {
    for (const node of nodes) {
      if ((node.kind === 'step' || node.kind === 'pipelinecall') && node.name) {
        result.set(node.name, around);
      } else if (node.kind === 'loop') {
        const items = node.items ? refText(node.items) : '?';
        const limit = node.parallelism ? ` ≤${node.parallelism}` : '';
        visit(node.body ?? [], [...around, `↻ each of ${items}${limit}`]);
      } else if (node.kind === 'condition') {
        (node.branches ?? []).forEach((branch, index) => {
          const label = branch.test
            ? `${index === 0 ? 'if' : 'elif'} ${testText(branch.test)}`
            : 'else';
          visit(branch.body, [...around, label]); // words, not a glyph: ⑂ is missing from common Linux fonts
        });
      }
    }
  };
  visit(body, []);
  return result;
}

function refText(ref: { kind: string; source: string; output: string; value: unknown }): string {
  switch (ref.kind) {
    case 'parameter':
      return ref.source;
    case 'task':
    case 'collected':
      return ref.output && ref.output !== 'Output' ? `${ref.source}.${ref.output}` : ref.source;
    case 'item':
      return ref.output ? `${ref.source}.${ref.output}` : 'item';
    case 'constant':
      return JSON.stringify(ref.value);
    default:
      return ref.source || ref.kind;
  }
}

export function testText(test: Test): string {
  switch (test.op) {
    case 'truth':
      return refText(test.operands[0]);
    case 'not':
      return `not (${test.tests.map(testText).join(', ')})`;
    case 'and':
    case 'or':
      return test.tests.map(testText).join(` ${test.op} `);
    default:
      return `${refText(test.operands[0])} ${test.op} ${refText(test.operands[1])}`;
  }
}

/**
 * Layer = longest path from a step without parents; order within a layer = body order. The exit
 * handler, outside the body, gets a row of its own at the bottom.
 */
export function layout(graph: GraphData): { placed: Map<string, Placed>; width: number; height: number } {
  const names: string[] = [];
  const kinds = new Map<string, 'step' | 'pipelinecall'>();
  const collect = (nodes: BodyNode[]) => {
    for (const node of nodes) {
      if ((node.kind === 'step' || node.kind === 'pipelinecall') && node.name) {
        names.push(node.name);
        kinds.set(node.name, node.kind);
      }
      collect(node.body ?? []);
      for (const branch of node.branches ?? []) {
        collect(branch.body);
      }
    }
  };
  collect(graph.body);
  for (const step of graph.steps) {
    if (!kinds.has(step.name)) {
      names.push(step.name);
      kinds.set(step.name, 'step');
    }
  }
  const parents = new Map<string, string[]>(names.map(n => [n, []]));
  for (const edge of graph.edges) {
    if (parents.has(edge.target) && parents.has(edge.source)) {
      parents.get(edge.target)!.push(edge.source);
    }
  }
  const layer = new Map<string, number>();
  const depth = (name: string, seen: Set<string>): number => {
    if (layer.has(name)) {
      return layer.get(name)!;
    }
    if (seen.has(name)) {
      return 0; // a cycle cannot come from the analyzer; never loop forever
    }
    seen.add(name);
    const value = Math.max(-1, ...parents.get(name)!.map(p => depth(p, seen))) + 1;
    layer.set(name, value);
    return value;
  };
  names.forEach(name => depth(name, new Set()));
  const around = containers(graph.body);
  const rows: string[][] = [];
  for (const name of names) {
    const row = layer.get(name) ?? 0;
    (rows[row] = rows[row] ?? []).push(name);
  }
  const widest = Math.max(1, ...rows.map(r => (r ? r.length : 0)));
  const width = MARGIN * 2 + widest * NODE_W + (widest - 1) * GAP_X;
  const placed = new Map<string, Placed>();
  let y = MARGIN;
  for (const row of rows) {
    if (!row) {
      continue;
    }
    const rowWidth = row.length * NODE_W + (row.length - 1) * GAP_X;
    let x = (width - rowWidth) / 2;
    let rowHeight = NODE_H;
    for (const name of row) {
      const badges = around.get(name) ?? [];
      const h = NODE_H + badges.length * BADGE_H;
      rowHeight = Math.max(rowHeight, h);
      placed.set(name, { name, x, y, h, badges, kind: kinds.get(name) ?? 'step' });
      x += NODE_W + GAP_X;
    }
    y += rowHeight + GAP_Y;
  }
  const exit = graph.exit_step?.name;
  if (exit && !placed.has(exit)) {
    const h = NODE_H + BADGE_H;
    placed.set(exit, { name: exit, x: (width - NODE_W) / 2, y, h, badges: [EXIT_BADGE], kind: 'exit' });
    y += h + GAP_Y;
  }
  return { placed, width, height: Math.max(y - GAP_Y + MARGIN, NODE_H + 2 * MARGIN) };
}

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

/**
 * Where an edge's label goes on its curve: near the target, or near the source when the target has
 * several parents, so the labels of a fan-out or a fan-in do not sit on top of each other.
 */
function labelPoint(x1: number, y1: number, x2: number, y2: number, bend: number, sharedTarget: boolean): [number, number] {
  const t = sharedTarget ? 0.3 : 0.7;
  const u = 1 - t;
  const w = [u * u * u, 3 * u * u * t, 3 * u * t * t, t * t * t];
  const xs = [x1, x1, x2, x2];
  const ys = [y1, y1 + bend, y2 - bend, y2];
  return [w.reduce((s, wi, i) => s + wi * xs[i], 0), w.reduce((s, wi, i) => s + wi * ys[i], 0)];
}

/** The SVG of a graph; `failing` steps are outlined in red. */
export function renderGraph(graph: GraphData, failing: Set<string> = new Set()): SVGSVGElement {
  const { placed, width, height } = layout(graph);
  const svg = el('svg', {
    class: 'kl-Graph',
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': `pipeline graph: ${placed.size} steps, ${graph.edges.length} dependencies`
  });
  const defs = el('defs', {}, svg);
  const marker = el(
    'marker',
    { id: 'kl-arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' },
    defs
  );
  el('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'kl-GraphArrow' }, marker);
  const edgeLayer = el('g', { class: 'kl-GraphEdges' }, svg);
  const labelLayer = el('g', { class: 'kl-GraphEdgeLabels' }, svg);
  const incoming = new Map<string, number>();
  for (const edge of graph.edges) {
    incoming.set(edge.target, (incoming.get(edge.target) ?? 0) + 1);
  }
  for (const edge of graph.edges) {
    const from = placed.get(edge.source);
    const to = placed.get(edge.target);
    if (!from || !to) {
      continue;
    }
    const x1 = from.x + NODE_W / 2;
    const y1 = from.y + from.h;
    const x2 = to.x + NODE_W / 2;
    const y2 = to.y;
    const bend = Math.max(20, (y2 - y1) / 2);
    const group = el('g', { class: 'kl-GraphEdge', 'data-source': edge.source, 'data-target': edge.target }, edgeLayer);
    el('path', { d: `M ${x1} ${y1} C ${x1} ${y1 + bend}, ${x2} ${y2 - bend}, ${x2} ${y2}`, 'marker-end': 'url(#kl-arrow)' }, group);
    const title = el('title', {}, group);
    title.textContent = `${edge.source} → ${edge.target}` + (edge.names.length ? `: ${edge.names.join(', ')}` : ' (runs after)');
    const label = edge.names.length ? clip(edge.names.join(', '), 20) : 'after';
    const [mx, my] = labelPoint(x1, y1, x2, y2, bend, (incoming.get(edge.target) ?? 0) > 1);
    const text = el(
      'text',
      {
        x: mx,
        y: my + 3,
        class: 'kl-GraphEdgeLabel' + (edge.names.length ? '' : ' kl-mod-order'),
        'text-anchor': 'middle',
        'data-source': edge.source,
        'data-target': edge.target
      },
      labelLayer
    );
    text.textContent = label;
  }
  const nodeLayer = el('g', { class: 'kl-GraphNodes' }, svg);
  for (const node of placed.values()) {
    const color = stepColor(node.name);
    const group = el(
      'g',
      {
        class: 'kl-GraphNode' + (node.kind === 'exit' ? ' kl-mod-exit' : '') + (failing.has(node.name) ? ' kl-mod-error' : ''),
        'data-step': node.name,
        transform: `translate(${node.x}, ${node.y})`
      },
      nodeLayer
    );
    el('rect', { width: NODE_W, height: node.h, rx: 6, ry: 6, style: `stroke: ${color}` }, group);
    el('rect', { width: 6, height: node.h, rx: 3, ry: 3, class: 'kl-GraphNodeBar', style: `fill: ${color}` }, group);
    const name = el('text', { x: NODE_W / 2 + 3, y: 19, 'text-anchor': 'middle', class: 'kl-GraphNodeName' }, group);
    name.textContent = clip(node.kind === 'pipelinecall' ? `▣ ${node.name}` : node.name, 19);
    node.badges.forEach((badge, index) => {
      const text = el(
        'text',
        { x: NODE_W / 2 + 3, y: NODE_H + index * BADGE_H + 2, 'text-anchor': 'middle', class: 'kl-GraphNodeBadge' },
        group
      );
      text.textContent = clip(badge, 24);
    });
    const title = el('title', {}, group);
    title.textContent = [node.name, ...node.badges].join('\n');
  }
  return svg;
}
