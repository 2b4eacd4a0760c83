/**
 * The graph layout (no DOM needed): layers follow dependencies; the exit handler sits below.
 * Run with `jlpm test`.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { GraphData } from '../src/api';
import { EXIT_BADGE, layout } from '../src/graph';

function graph(exit: string | null): GraphData {
  const step = (name: string) => ({
    name, cells: [], upstream: [], after: [], inputs: [], outputs: [], settings: {}, parameters: [], metrics: [], packages: []
  });
  return {
    source: 'n.ipynb',
    settings: { name: 'p', description: '', experiment: '', image: '' },
    parameters: [],
    metrics: [],
    steps: [step('load'), step('train'), step('score')],
    edges: [
      { source: 'load', target: 'train', names: ['data'] },
      { source: 'load', target: 'score', names: ['data'] }
    ],
    body: [{ kind: 'step', name: 'load' }, { kind: 'step', name: 'train' }, { kind: 'step', name: 'score' }],
    exit_step: exit ? { name: exit, cells: [4] } : null
  };
}

describe('layout', () => {
  it('puts a step below its parents and siblings side by side', () => {
    const { placed } = layout(graph(null));
    assert.equal(placed.size, 3);
    assert.ok(placed.get('train')!.y > placed.get('load')!.y);
    assert.equal(placed.get('train')!.y, placed.get('score')!.y);
  });

  it('draws the exit handler in a row of its own below every step, badged', () => {
    const without = layout(graph(null));
    const { placed, height } = layout(graph('exit_handler'));
    const exit = placed.get('exit_handler')!;
    assert.equal(exit.kind, 'exit');
    assert.deepEqual(exit.badges, [EXIT_BADGE]);
    for (const name of ['load', 'train', 'score']) {
      assert.ok(exit.y > placed.get(name)!.y + placed.get(name)!.h, `${name} is not above the exit handler`);
    }
    assert.ok(height > without.height);
  });
});
