/**
 * The step editor shown on each code cell: coloured, labelled chips (kind / step, parents,
 * settings, the analyzer's error for the cell with its full message), and an in-place editor
 * (cell kind, step name, "depends on" offering only earlier steps, the settings dialog).
 * Everything is stored as ordinary cell tags.
 */

import { Cell } from '@jupyterlab/cells';
import { PanelLayout, Widget } from '@lumino/widgets';

import { h } from './dom';
import { NotebookPipeline } from './notebook';
import { editStepSettings } from './settingsdialog';
import {
  CELL_KINDS,
  CELL_KIND_LABELS,
  CellInfo,
  CellKind,
  StepSettings,
  earlierSteps,
  isValidStepName,
  parseTag,
  readCell,
  stepColor,
  updateTags
} from './tags';

export class CellBar extends Widget {
  constructor(
    private readonly pipeline: NotebookPipeline,
    readonly cell: Cell,
    private readonly defaultImage: () => string
  ) {
    super();
    this.addClass('kl-CellBar');
    this.chips = h('div', { class: 'kl-Chips' });
    this.editor = h('div', { class: 'kl-CellEditor', hidden: true });
    this.node.append(this.chips, this.editor);
  }

  get index(): number {
    return this.pipeline.panel.content.widgets.indexOf(this.cell);
  }

  private get tags(): string[] {
    const tags = this.cell.model.getMetadata('tags');
    return Array.isArray(tags) ? tags.map(String) : [];
  }

  render(): void {
    const info = readCell(this.tags);
    const index = this.index;
    const analysis = this.pipeline.analysis;
    const problems = analysis.byCell.get(index) ?? [];
    const chips: (HTMLElement | null)[] = [];
    if (info.kind === 'step') {
      const color = stepColor(info.stepName);
      chips.push(
        h('button', { class: 'kl-Chip kl-mod-step', style: { background: color }, title: 'Edit this cell\'s pipeline role', onclick: () => this.toggle() }, `step: ${info.stepName}`)
      );
      if (info.prev.length) {
        chips.push(h('span', { class: 'kl-Chip kl-mod-after' }, `after: ${info.prev.join(', ')}`));
      }
      for (const summary of settingsSummary(info.settings)) {
        chips.push(h('span', { class: 'kl-Chip kl-mod-setting' }, summary));
      }
    } else if (info.kind !== 'none') {
      chips.push(h('button', { class: `kl-Chip kl-mod-${info.kind}`, onclick: () => this.toggle() }, CELL_KIND_LABELS[info.kind].toLowerCase()));
    } else {
      const owner = analysis.stepOfCell.get(index);
      chips.push(
        h(
          'button',
          { class: 'kl-Chip kl-mod-none', title: 'Tag this cell for the pipeline', onclick: () => this.toggle() },
          owner ? `↳ ${owner}` : '+ pipeline'
        )
      );
      if (owner) {
        chips[0]!.style.borderColor = stepColor(owner);
      }
    }
    // tags the editor has no field for (and ones that do not parse, in red) each get a remove button
    for (const raw of this.removableTags(info)) {
      const invalid = info.invalid.includes(raw);
      chips.push(
        h(
          'span',
          { class: `kl-Chip ${invalid ? 'kl-mod-invalid' : 'kl-mod-other'}`, 'data-tag': raw },
          raw,
          h('button', { class: 'kl-ChipRemove', type: 'button', title: `Remove the tag ${raw}`, 'aria-label': `remove tag ${raw}`, onclick: () => this.removeTag(raw) }, '×')
        )
      );
    }
    const errors = problems.map(problem =>
      h('div', { class: 'kl-CellError', role: 'alert' }, problem.rendered)
    );
    const failedHere = this.pipeline.runFailures.get(index);
    if (failedHere) {
      errors.push(h('div', { class: 'kl-CellRunError', role: 'status' }, `failed in the last run: ${failedHere}`));
    }
    this.chips.replaceChildren(...chips.filter(Boolean) as HTMLElement[], ...errors);
    this.toggleClass('kl-mod-error', problems.length > 0);
    if (!this.editor.hidden && !this.editor.contains(document.activeElement)) {
      this.renderEditor();
    }
  }

  toggle(open?: boolean): void {
    const show = open ?? this.editor.hidden;
    this.editor.hidden = !show;
    if (show) {
      this.draft = null;
      this.renderEditor();
    }
  }

  private renderEditor(): void {
    const info = this.draft ?? readCell(this.tags);
    const earlier = earlierSteps(this.pipeline.cellTags(), this.index);
    const kind = h(
      'select',
      { class: 'kl-KindSelect', 'aria-label': 'Cell kind' },
      CELL_KINDS.map(k => h('option', { value: k }, k === 'none' ? '— (continues the cell above)' : CELL_KIND_LABELS[k]))
    );
    kind.value = info.kind;
    kind.addEventListener('change', () => {
      const next: CellInfo = { ...info, kind: kind.value as CellKind };
      if (next.kind === 'step' && !next.stepName) {
        this.draft = next; // a step needs a name before its tags are written
        this.renderEditor();
        (this.editor.querySelector('.kl-StepName') as HTMLInputElement | null)?.focus();
        return;
      }
      this.write(next);
    });
    const rows: HTMLElement[] = [h('label', { class: 'kl-Field' }, h('span', {}, 'Cell'), kind)];
    const message = h('div', { class: 'kl-EditorMessage', role: 'status' });
    if (info.kind === 'step') {
      const name = h('input', {
        class: 'kl-StepName',
        type: 'text',
        value: info.stepName,
        placeholder: 'step name, e.g. train_model',
        'aria-label': 'Step name'
      });
      const commit = () => {
        const value = name.value.trim();
        if (value === info.stepName && !this.draft) {
          return;
        }
        if (!isValidStepName(value)) {
          message.textContent = value
            ? `'${value}' is not a valid step name: use lowercase letters, digits and '_', starting with a letter or '_'.`
            : 'Give the step a name.';
          name.classList.add('kl-mod-invalid');
          return;
        }
        const old = this.draft ? '' : info.stepName;
        const others = this.pipeline.stepNames().filter(name => name !== old);
        this.write({ ...info, stepName: value }, old);
        if (others.includes(value)) {
          this.note(`A step '${value}' already exists: this cell now continues it.`);
        }
      };
      name.addEventListener('change', commit);
      name.addEventListener('keydown', event => {
        if (event.key === 'Enter') {
          event.preventDefault();
          commit();
        }
        event.stopPropagation(); // keep notebook shortcuts out of the field
      });
      rows.push(h('label', { class: 'kl-Field' }, h('span', {}, 'Step name'), name));
      const parents = h(
        'div',
        { class: 'kl-DependsOn', role: 'group', 'aria-label': 'Depends on' },
        earlier.length
          ? earlier.map(step =>
              h(
                'label',
                { class: 'kl-Parent' },
                h('input', {
                  type: 'checkbox',
                  value: step,
                  checked: info.prev.includes(step),
                  'aria-label': `depends on ${step}`,
                  onchange: (event: Event) => {
                    const checked = (event.target as HTMLInputElement).checked;
                    const prev = checked ? [...info.prev, step] : info.prev.filter(p => p !== step);
                    this.write({ ...info, prev: [...new Set(prev)] });
                  }
                }),
                h('span', { class: 'kl-ParentSwatch', style: { background: stepColor(step) } }),
                step
              )
            )
          : h('em', {}, 'no earlier steps')
      );
      const stale = info.prev.filter(p => !earlier.includes(p));
      rows.push(h('div', { class: 'kl-Field' }, h('span', {}, 'Depends on'), parents));
      if (stale.length) {
        rows.push(
          h(
            'div',
            { class: 'kl-EditorMessage' },
            `prev: ${stale.join(', ')} names no earlier step; the analyzer will refuse it. `,
            ...stale.map(parent =>
              h('button', { class: 'kl-LinkButton kl-RemoveStale', type: 'button', onclick: () => this.write({ ...info, prev: info.prev.filter(p => p !== parent) }) }, `remove prev:${parent}`)
            )
          )
        );
      }
      rows.push(
        h(
          'div',
          { class: 'kl-EditorButtons' },
          h('button', { class: 'jp-mod-styled kl-SettingsButton', type: 'button', disabled: !info.stepName, onclick: () => void this.openSettings(info) }, 'Step settings…')
        )
      );
    }
    rows.push(message);
    rows.push(h('div', { class: 'kl-EditorButtons' }, h('button', { class: 'jp-mod-styled jp-mod-accept kl-Done', type: 'button', onclick: () => this.toggle(false) }, 'Done')));
    this.editor.replaceChildren(...rows);
  }

  private note(text: string): void {
    const message = this.editor.querySelector('.kl-EditorMessage');
    if (message) {
      message.textContent = text;
    }
  }

  private async openSettings(info: CellInfo): Promise<void> {
    const parameters = (this.pipeline.analysis.graph?.parameters ?? []).map(p => p.name);
    const settings: StepSettings | null = await editStepSettings(info.stepName, info.settings, this.defaultImage(), parameters);
    if (settings) {
      this.write({ ...readCell(this.tags), settings });
    }
  }

  /**
   * The tags shown as removable chips: on a step, those the editor has no field for; on any other
   * cell, every tag but its kind (settings, `prev:` and the like have no editor there).
   */
  private removableTags(info: CellInfo): string[] {
    if (info.kind === 'step') {
      return info.other;
    }
    let kindSeen = false;
    return this.tags.filter(raw => {
      if (!kindSeen && parseTag(raw)?.kind === info.kind) {
        kindSeen = true;
        return false;
      }
      return true;
    });
  }

  /** Drop one tag, exactly as written, keeping the others in their order. */
  private removeTag(raw: string): void {
    const current = this.tags;
    const at = current.indexOf(raw);
    if (at >= 0) {
      this.pipeline.setCellTags(this.cell.model, [...current.slice(0, at), ...current.slice(at + 1)]);
      this.render();
    }
  }

  /** Store the edit as tags (renaming the step everywhere first when its name changed). */
  private write(info: CellInfo, renamedFrom = ''): void {
    this.draft = null;
    if (renamedFrom && renamedFrom !== info.stepName) {
      this.pipeline.renameStep(renamedFrom, info.stepName);
    }
    const current = this.tags;
    const next = updateTags(current, info);
    if (next.join('\u0000') !== current.join('\u0000')) {
      this.pipeline.setCellTags(this.cell.model, next);
    }
    this.render();
    this.renderEditor();
  }

  private chips: HTMLElement;
  private editor: HTMLElement;
  private draft: CellInfo | null = null;
}

/** Short labels for a step's settings, shown as chips. */
export function settingsSummary(s: StepSettings): string[] {
  const out: string[] = [];
  if (s.image) {
    out.push(`image ${s.image}`);
  }
  const cpu = s.limits.cpu ?? s.requests.cpu;
  if (cpu) {
    out.push(`cpu ${cpu}`);
  }
  const memory = s.limits.memory ?? s.requests.memory;
  if (memory) {
    out.push(`mem ${memory}`);
  }
  for (const [resource, value] of Object.entries(s.limits)) {
    if (resource.endsWith('/gpu')) {
      out.push(`gpu ×${value}`);
    }
  }
  if (s.retries) {
    out.push(`retries ${s.retries}`);
  }
  if (s.cache) {
    out.push(`cache ${s.cache}`);
  }
  if (s.foreach) {
    out.push(`↻ ${s.foreach.item} in ${s.foreach.items}` + (s.parallelism ? ` ≤${s.parallelism}` : ''));
  }
  if (s.when) {
    out.push(`when ${s.when.name}${s.when.op ? ` ${s.when.op} ${s.when.value}` : ''}`);
  }
  if (s.secrets.length) {
    out.push(`${s.secrets.length} secret${s.secrets.length > 1 ? 's' : ''}`);
  }
  return out;
}

/** Keeps a CellBar on every code cell of a notebook while its pipeline is enabled. */
export class CellBars {
  constructor(private readonly pipeline: NotebookPipeline, private readonly defaultImage: () => string) {
    pipeline.changed.connect(this.schedule, this);
    pipeline.analysisChanged.connect(this.schedule, this);
    pipeline.runChanged.connect(this.schedule, this);
    pipeline.panel.content.model?.cells.changed.connect(this.schedule, this);
    this.schedule();
  }

  schedule(): void {
    if (this.frame === null) {
      this.frame = requestAnimationFrame(() => {
        this.frame = null;
        this.reconcile();
      });
    }
  }

  reconcile(): void {
    if (this.pipeline.isDisposed) {
      return;
    }
    const enabled = this.pipeline.enabled;
    const live = new Set<Cell>();
    for (const cell of this.pipeline.panel.content.widgets) {
      if (cell.model.type !== 'code' || !enabled) {
        continue;
      }
      live.add(cell);
      let bar = this.bars.get(cell);
      if (!bar || bar.isDisposed) {
        bar = new CellBar(this.pipeline, cell, this.defaultImage);
        (cell.layout as PanelLayout).insertWidget(1, bar);
        this.bars.set(cell, bar);
      }
      bar.render();
    }
    for (const [cell, bar] of this.bars) {
      if (!live.has(cell)) {
        bar.dispose();
        this.bars.delete(cell);
      }
    }
  }

  dispose(): void {
    for (const bar of this.bars.values()) {
      bar.dispose();
    }
    this.bars.clear();
  }

  private bars = new Map<Cell, CellBar>();
  private frame: number | null = null;
}
