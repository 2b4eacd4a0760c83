/**
 * One open notebook as a pipeline: its tags and metadata (read and written through the notebook
 * model, so they save, undo and collaborate like any edit), and the analyzer's latest view of it.
 *
 * Analysis runs in the server extension on the notebook's current (unsaved) content, 150 ms after
 * the last edit; a newer edit supersedes a request still in flight.
 */

import { NotebookPanel } from '@jupyterlab/notebook';
import { ICellModel } from '@jupyterlab/cells';
import { Signal, ISignal } from '@lumino/signaling';

import { AnalyzeResult, GraphData, Problem, SectionTags, post } from './api';
import { parseTag, readCell, renameInTags } from './tags';

export const ANALYSIS_DELAY_MS = 150;

export interface PipelineMetadata {
  pipeline_name: string;
  experiment_name: string;
  pipeline_description: string;
}

export interface Analysis {
  state: 'idle' | 'running' | 'ok' | 'error' | 'failed';
  graph: GraphData | null;
  errors: Problem[];
  warnings: string[];
  message: string;
  /** Cell index -> the problems located in that cell. */
  byCell: Map<number, Problem[]>;
  /** Cell index -> the step it belongs to (from the analyzer). */
  stepOfCell: Map<number, string>;
  /** How long the server took to analyse (ms). */
  serverMs: number;
  /** With problems: the graph shown is the server's of the notebook without the tags they are on (no earlier good one). */
  partial: boolean;
}

function emptyAnalysis(): Analysis {
  return {
    state: 'idle',
    graph: null,
    errors: [],
    warnings: [],
    message: '',
    byCell: new Map(),
    stepOfCell: new Map(),
    serverMs: 0,
    partial: false
  };
}

export class NotebookPipeline {
  constructor(readonly panel: NotebookPanel, private enableByDefault: () => boolean) {
    const model = panel.model!;
    model.contentChanged.connect(this._onContent, this);
    model.metadataChanged.connect(this._onContent, this);
    model.cells.changed.connect(this._onCellsChanged, this);
    for (let i = 0; i < model.cells.length; i++) {
      model.cells.get(i).metadataChanged.connect(this._onContent, this);
    }
    panel.context.pathChanged.connect(this._onContent, this);
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get analysisChanged(): ISignal<this, Analysis> {
    return this._analysisChanged;
  }

  get analysis(): Analysis {
    return this._analysis;
  }

  get path(): string {
    return this.panel.context.path;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Cell index -> why the shown run's step failed there (its error line), marked on the cell. */
  get runFailures(): ReadonlyMap<number, string> {
    return this._runFailures;
  }

  setRunFailures(failures: Map<number, string>): void {
    const same = failures.size === this._runFailures.size &&
      [...failures].every(([cell, text]) => this._runFailures.get(cell) === text);
    if (!same) {
      this._runFailures = failures;
      this._runChanged.emit();
    }
  }

  /** The marks of the shown run changed (the cell bars redraw). */
  get runChanged(): ISignal<this, void> {
    return this._runChanged;
  }

  /** On when the notebook says so, or when it already carries pipeline tags or metadata. */
  get enabled(): boolean {
    const own = this.panel.model?.getMetadata('kale_like') as { enabled?: boolean } | undefined;
    if (own && typeof own.enabled === 'boolean') {
      return own.enabled;
    }
    if (this.panel.model?.getMetadata('kubeflow_notebook')) {
      return true;
    }
    if (this.cellTags().some(tags => tags.some(tag => parseTag(tag) !== null))) {
      return true;
    }
    return this.enableByDefault();
  }

  setEnabled(value: boolean): void {
    const own = (this.panel.model?.getMetadata('kale_like') as Record<string, unknown>) ?? {};
    this.panel.model?.setMetadata('kale_like', { ...own, enabled: value });
    if (value) {
      this.scheduleAnalysis(0);
    }
  }

  get metadata(): PipelineMetadata {
    const meta = (this.panel.model?.getMetadata('kubeflow_notebook') as Record<string, any>) ?? {};
    return {
      pipeline_name: String(meta.pipeline_name ?? ''),
      experiment_name: String(meta.experiment_name ?? meta.experiment?.name ?? ''),
      pipeline_description: String(meta.pipeline_description ?? '')
    };
  }

  setMetadata(key: keyof PipelineMetadata, value: string): void {
    const model = this.panel.model;
    if (!model) {
      return;
    }
    const meta = { ...((model.getMetadata('kubeflow_notebook') as Record<string, unknown>) ?? {}) };
    if (value.trim()) {
      meta[key] = value.trim();
    } else {
      delete meta[key];
    }
    model.setMetadata('kubeflow_notebook', meta);
  }

  /** Every cell's tags (markdown and raw cells too, so indexes are Jupyter's). */
  cellTags(): string[][] {
    const model = this.panel.model;
    const result: string[][] = [];
    if (!model) {
      return result;
    }
    for (let i = 0; i < model.cells.length; i++) {
      const cell = model.cells.get(i);
      const tags = cell.type === 'code' ? cell.getMetadata('tags') : undefined;
      result.push(Array.isArray(tags) ? tags.map(String) : []);
    }
    return result;
  }

  setCellTags(cell: ICellModel, tags: string[]): void {
    if (tags.length) {
      cell.setMetadata('tags', tags);
    } else {
      cell.deleteMetadata('tags');
    }
  }

  /** Rename a step everywhere: its own step tags and every `prev:` naming it. */
  renameStep(from: string, to: string): void {
    const model = this.panel.model;
    if (!model || !from || from === to) {
      return;
    }
    model.sharedModel.transact(() => {
      for (let i = 0; i < model.cells.length; i++) {
        const cell = model.cells.get(i);
        const tags = cell.getMetadata('tags');
        if (!Array.isArray(tags)) {
          continue;
        }
        const renamed = renameInTags(tags.map(String), from, to);
        if (renamed.some((tag, index) => tag !== tags[index])) {
          cell.setMetadata('tags', renamed);
        }
      }
    });
  }

  /**
   * Make the notebook a tagged one: the server's tags for its cells (from the headings, or one step
   * for the whole notebook), written in one undoable edit. Nothing is written when the notebook
   * changed meanwhile (a cell moved, or got tags of its own); the answer is then why ('' when written).
   */
  async writeSectionTags(oneStep: boolean): Promise<string> {
    const model = this.panel.model;
    if (!model) {
      return 'The notebook is not open.';
    }
    const result = await post<SectionTags>('section-tags', {
      path: this.path, notebook: withoutOutputs(model.toJSON()), one_step: oneStep
    });
    if (!result.ok) {
      return result.data.message ?? `HTTP ${result.status}`;
    }
    const targets: [ICellModel, string[]][] = [];
    for (const { index, id, tags } of result.data.cells) {
      const cell = index < model.cells.length ? model.cells.get(index) : undefined;
      const own = cell?.getMetadata('tags');
      if (!cell || cell.type !== 'code' || (id !== null && cell.id !== id) || (Array.isArray(own) && own.length)) {
        return 'The notebook changed meanwhile; try again.';
      }
      targets.push([cell, tags]);
    }
    model.sharedModel.transact(() => {
      for (const [cell, tags] of targets) {
        this.setCellTags(cell, tags);
      }
    });
    return '';
  }

  /** The step names the notebook's tags define, in order. */
  stepNames(): string[] {
    const names: string[] = [];
    for (const tags of this.cellTags()) {
      const info = readCell(tags);
      if (info.kind === 'step' && !names.includes(info.stepName)) {
        names.push(info.stepName);
      }
    }
    return names;
  }

  scheduleAnalysis(delay = ANALYSIS_DELAY_MS): void {
    if (this._timer !== null) {
      window.clearTimeout(this._timer);
    }
    this._timer = window.setTimeout(() => {
      this._timer = null;
      void this.analyze();
    }, delay);
  }

  async analyze(): Promise<Analysis> {
    const model = this.panel.model;
    if (!model || this._disposed || !this.enabled) {
      return this._analysis;
    }
    const ticket = ++this._ticket;
    if (this._analysis.state !== 'running') {
      this._analysis = { ...this._analysis, state: 'running' };
      this._analysisChanged.emit(this._analysis);
    }
    const result = await post<AnalyzeResult>('analyze', { path: this.path, notebook: withoutOutputs(model.toJSON()) });
    if (ticket !== this._ticket || this._disposed) {
      return this._analysis; // superseded by a newer edit
    }
    const analysis = emptyAnalysis();
    analysis.serverMs = (result.data as { analysis_ms?: number }).analysis_ms ?? 0;
    const stepsOf = (graph: GraphData) => {
      const found = new Map<number, string>();
      const exit = graph.exit_step;
      for (const step of exit ? [...graph.steps, exit] : graph.steps) {
        for (const cell of step.cells) {
          found.set(cell, step.name);
        }
      }
      return found;
    };
    if (result.ok && result.data.graph && !result.data.errors?.length) {
      analysis.state = 'ok';
      analysis.graph = result.data.graph;
      analysis.warnings = result.data.warnings ?? [];
      analysis.stepOfCell = stepsOf(analysis.graph);
    } else if ((result.ok || result.status === 400) && result.data.errors) {
      // problems are the analysis' normal answer (200); keep the last good graph on screen, marked
      // stale, or else the server's graph of the notebook without the tags the problems are on
      analysis.state = 'error';
      analysis.errors = result.data.errors;
      analysis.message = result.data.message ?? '';
      const kept = this._analysis.graph ? this._analysis : null;
      analysis.graph = kept?.graph ?? result.data.graph ?? null;
      analysis.partial = kept ? kept.partial : analysis.graph !== null;
      analysis.stepOfCell = kept ? kept.stepOfCell : analysis.graph ? stepsOf(analysis.graph) : new Map();
      for (const problem of analysis.errors) {
        const cell = problem.location?.cell_index;
        if (cell !== null && cell !== undefined) {
          analysis.byCell.set(cell, [...(analysis.byCell.get(cell) ?? []), problem]);
        }
      }
    } else {
      analysis.state = 'failed';
      analysis.message = result.data.message ?? `HTTP ${result.status}`;
      analysis.graph = this._analysis.graph;
    }
    this._analysis = analysis;
    this._analysisChanged.emit(analysis);
    return analysis;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    if (this._timer !== null) {
      window.clearTimeout(this._timer);
    }
    Signal.clearData(this);
  }

  private _onCellsChanged(_: unknown, change: { type: string; newValues: ICellModel[] }): void {
    if (change.type === 'add' || change.type === 'set') {
      for (const cell of change.newValues) {
        cell.metadataChanged.connect(this._onContent, this);
      }
    }
    this._onContent();
  }

  private _onContent(): void {
    if (this._disposed) {
      return;
    }
    this._changed.emit();
    if (this.enabled) {
      this.scheduleAnalysis();
    }
  }

  private _analysis: Analysis = emptyAnalysis();
  private _ticket = 0;
  private _timer: number | null = null;
  private _disposed = false;
  private _changed = new Signal<this, void>(this);
  private _analysisChanged = new Signal<this, Analysis>(this);
  private _runFailures = new Map<number, string>();
  private _runChanged = new Signal<this, void>(this);
}

/** The notebook without outputs and attachments: the analyzer reads only sources, tags and metadata. */
export function withoutOutputs(notebook: any): any {
  return {
    ...notebook,
    cells: (notebook.cells ?? []).map((cell: any) => {
      const { attachments, ...rest } = cell;
      void attachments;
      return cell.cell_type === 'code' ? { ...rest, outputs: [], execution_count: null } : rest;
    })
  };
}
