/**
 * The left sidebar "Pipeline" panel for the active notebook: enable switch, pipeline identity,
 * parameters, the live graph, the analyzer's problems, and Compile / Run locally / Upload & run /
 * Schedule. Every failure leaves its message on screen; buttons that cannot succeed are disabled
 * with the reason next to them.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import {
  CompileResult,
  CronPreview,
  GraphData,
  KfpStatus,
  OutputPreview,
  Parameter,
  RunFiles,
  RunRow,
  RunStatus,
  ScheduleResult,
  UploadResult,
  downloadUrl,
  post,
  request,
  runFileUrl
} from './api';
import { clear, debounce, h, nodes } from './dom';
import { GraphView, renderGraph } from './graph';
import { GraphTab } from './graphtab';
import { Analysis, NotebookPipeline } from './notebook';
import { pipelineIcon } from './icon';
import { parameterProblem, parseTag } from './tags';

export interface PanelSettings {
  defaultImage: string;
  kfpHost: string;
  kfpNamespace: string;
  /** The KFP server release deployed to ('' = the notebook's own, else 2.14); sent as `kfp_version`. */
  kfpVersion: string;
  enableByDefault: boolean;
  outputFolder: string;
}

export const DEFAULT_SETTINGS: PanelSettings = {
  defaultImage: '',
  kfpHost: '',
  kfpNamespace: '',
  kfpVersion: '',
  enableByDefault: false,
  outputFolder: ''
};

const PIPELINE_NAME = /^[a-z0-9]([a-z0-9-]{0,126}[a-z0-9])?$/;
const STATUS_ICON: Record<string, string> = {
  pending: '○',
  running: '◔',
  retrying: '↻',
  done: '✔',
  cached: '✔',
  skipped: '↷',
  failed: '✖',
  stopped: '■',
  interrupted: '■',
  'not run': '–'
};

/** A parameter's default as text: the server's rendering, which keeps a float's type (1.0, not 1). */
function parameterText(parameter: Parameter): string {
  const value = parameter.default;
  return parameter.default_text ?? (typeof value === 'string' ? value : JSON.stringify(value));
}

/** The analyzer's one problem with a notebook nobody has tagged yet: not an error to show in red. */
function onlyNoSteps(analysis: Analysis): boolean {
  return analysis.state === 'error' && analysis.errors.length === 1 && analysis.errors[0].message.startsWith('no step cells');
}

/**
 * What to do first with a notebook whose cells carry no step tag. The analyzer makes steps of its
 * headings then (or one step of the whole notebook): `made` says the graph shows those.
 */
const GUIDE = (made: boolean, write: (oneStep: boolean) => void, message: string) =>
  h(
    'div',
    { class: 'kl-Guide', role: 'note' },
    h('strong', {}, 'Make a pipeline of this notebook'),
    made
      ? h('p', {}, 'No cell is tagged as a step yet, so the graph shows the steps made from the notebook\'s ',
          'headings (one step for the whole notebook when it has none). Write those tags into the cells, to edit ',
          'them like any others (Edit → Undo Cell Operation, or Z, takes them back):')
      : null,
    made
      ? h('div', { class: 'kl-Buttons' },
          h('button', { class: 'jp-mod-styled jp-mod-accept kl-MakeSteps', type: 'button', onclick: () => write(false) },
            'Make steps from the headings'),
          h('button', { class: 'jp-mod-styled kl-OneStep', type: 'button', onclick: () => write(true) },
            'One step for the whole notebook'))
      : null,
    message ? h('pre', { class: 'kl-Message kl-mod-error', role: 'alert' }, message) : null,
    made ? h('p', {}, 'Or choose the steps yourself:') : null,
    h(
      'ol',
      {},
      h('li', {}, 'Above a code cell, click ', h('code', {}, '+ pipeline'), ' and choose ', h('em', {}, 'Pipeline step'), '; name it, e.g. load_data. The untagged cells below it continue the step.'),
      h('li', {}, 'Cells of imports, helper functions or ', h('code', {}, 'NAME = value'), ' parameters: choose ', h('em', {}, 'Imports'), ', ', h('em', {}, 'Functions'), ' or ', h('em', {}, 'Pipeline parameters'), '.'),
      h('li', {}, 'A step receives the variables earlier steps assign; the graph here shows each dependency.'),
      h('li', {}, 'Compile (Alt+Shift+C) or Run locally (Alt+Shift+R); both are in the command palette too.')
    )
  );

export class PipelinePanel extends Widget {
  constructor(private readonly app: JupyterFrontEnd) {
    super();
    this.id = 'kale-like-panel';
    this.addClass('kl-Panel');
    this.title.icon = pipelineIcon;
    this.title.caption = 'Pipeline (kale_like)';
    this.build();
    this.render();
  }

  settings: PanelSettings = { ...DEFAULT_SETTINGS };
  /** Called when the panel changes a setting (the KFP host typed in the panel is remembered). */
  onSettingChanged: (key: keyof PanelSettings, value: string) => void = () => undefined;
  environmentHost = '';

  get pipeline(): NotebookPipeline | null {
    return this._pipeline;
  }

  setNotebook(pipeline: NotebookPipeline | null): void {
    if (pipeline === this._pipeline) {
      return;
    }
    this._pipeline?.changed.disconnect(this.onNotebookChanged, this);
    this._pipeline?.analysisChanged.disconnect(this.onAnalysis, this);
    this._pipeline = pipeline;
    this.sectionMessage = '';
    this.compileBox?.replaceChildren();
    this.deployBox?.replaceChildren();
    this.run = null;
    this.runs = [];
    this.runBox?.replaceChildren();
    this.runList?.replaceChildren();
    if (pipeline) {
      void this.loadRuns(pipeline.path);
    }
    if (pipeline) {
      pipeline.changed.connect(this.onNotebookChanged, this);
      pipeline.analysisChanged.connect(this.onAnalysis, this);
      if (pipeline.enabled && pipeline.analysis.state === 'idle') {
        pipeline.scheduleAnalysis(0);
      }
    }
    this.render();
  }

  applySettings(settings: PanelSettings): void {
    const hostChanged = settings.kfpHost !== this.settings.kfpHost || settings.kfpNamespace !== this.settings.kfpNamespace;
    this.settings = settings;
    if (this.hostInput && document.activeElement !== this.hostInput) {
      this.hostInput.value = this.kfpHost();
    }
    if (this.namespaceInput && document.activeElement !== this.namespaceInput) {
      this.namespaceInput.value = settings.kfpNamespace;
    }
    if (hostChanged) {
      void this.checkKfp();
    }
    this.render();
  }

  protected onAfterShow(): void {
    if (!this.kfpChecked) {
      void this.checkKfp();
    }
  }

  // ----------------------------------------------------------------------------------- layout

  private build(): void {
    this.header = h('div', { class: 'kl-Header' });
    this.enable = h('input', { type: 'checkbox', role: 'switch', class: 'kl-Enable', 'aria-label': 'Use this notebook as a pipeline' });
    this.enable.addEventListener('change', () => this._pipeline?.setEnabled(this.enable.checked));
    const metaField = (key: 'pipeline_name' | 'experiment_name' | 'pipeline_description', label: string, placeholder: string) => {
      const input = key === 'pipeline_description'
        ? h('textarea', { rows: 2, placeholder, 'aria-label': label, class: `kl-Meta-${key}` })
        : h('input', { type: 'text', placeholder, 'aria-label': label, class: `kl-Meta-${key}` });
      input.addEventListener('change', () => {
        const value = input.value.trim();
        if (key === 'pipeline_name' && value && !PIPELINE_NAME.test(value)) {
          this.metaMessage.textContent = `'${value}' is not a valid KFP pipeline name: lowercase letters, digits and '-'.`;
          return;
        }
        this.metaMessage.textContent = '';
        this._pipeline?.setMetadata(key, value);
      });
      input.addEventListener('keydown', event => event.stopPropagation());
      this.metaInputs[key] = input;
      return h('label', { class: 'kl-Field' }, h('span', {}, label), input);
    };
    this.metaMessage = h('div', { class: 'kl-Message kl-mod-error', role: 'alert' });
    this.status = h('div', { class: 'kl-Status', role: 'status', 'aria-live': 'polite' });
    this.problems = h('div', { class: 'kl-Problems' });
    this.warnings = h('details', { class: 'kl-Warnings' });
    this.parameters = h('div', { class: 'kl-Parameters' });
    this.graphBox = h('div', { class: 'kl-GraphBox' });
    this.compileButton = h('button', { class: 'jp-mod-styled jp-mod-accept kl-Compile', type: 'button', onclick: () => void this.compile() }, 'Compile');
    this.runButton = h('button', { class: 'jp-mod-styled jp-mod-accept kl-RunLocal', type: 'button', onclick: () => void this.runLocally() }, 'Run locally');
    this.actionHint = h('div', { class: 'kl-Hint' });
    this.compileBox = h('div', { class: 'kl-CompileResult' });
    this.runBox = h('div', { class: 'kl-RunBox' });
    this.runList = h('div', { class: 'kl-RunList' });
    this.kfpBadge = h('div', { class: 'kl-KfpBadge', role: 'status' });
    this.hostInput = h('input', { type: 'text', class: 'kl-KfpHost', placeholder: 'http://localhost:8080', 'aria-label': 'KFP host' });
    this.namespaceInput = h('input', { type: 'text', class: 'kl-KfpNamespace', placeholder: 'kubeflow (optional)', 'aria-label': 'KFP namespace' });
    const onKfpInput = debounce(() => {
      this.onSettingChanged('kfpHost', this.hostInput.value.trim());
      this.onSettingChanged('kfpNamespace', this.namespaceInput.value.trim());
      void this.checkKfp();
    }, 600);
    for (const input of [this.hostInput, this.namespaceInput]) {
      input.addEventListener('input', onKfpInput);
      input.addEventListener('keydown', event => event.stopPropagation());
    }
    this.runName = h('input', { type: 'text', class: 'kl-RunName', placeholder: 'run name (default: pipeline and time)', 'aria-label': 'Run name' });
    this.uploadButton = h('button', { class: 'jp-mod-styled kl-Upload', type: 'button', onclick: () => void this.upload() }, 'Upload & run on KFP');
    this.cronInput = h('input', { type: 'text', class: 'kl-Cron', placeholder: 'cron, e.g. 0 2 * * 0 (Sundays 02:00 UTC)', 'aria-label': 'Schedule (cron)' });
    this.cronInput.addEventListener('keydown', event => event.stopPropagation());
    this.cronInput.addEventListener('input', debounce(() => void this.previewCron(), 300));
    this.cronPreview = h('div', { class: 'kl-CronPreview', role: 'status' });
    this.scheduleButton = h('button', { class: 'jp-mod-styled kl-Schedule', type: 'button', onclick: () => void this.schedule() }, 'Confirm schedule');
    this.deployBox = h('div', { class: 'kl-DeployResult' });

    this.body = h(
      'div',
      { class: 'kl-Body' },
      h('label', { class: 'kl-Switch' }, this.enable, h('span', {}, 'Use this notebook as a pipeline')),
      h(
        'div',
        { class: 'kl-Enabled' },
        h(
          'section',
          { class: 'kl-Section' },
          metaField('pipeline_name', 'Pipeline name', 'default: from the file name'),
          metaField('experiment_name', 'Experiment', 'Default'),
          metaField('pipeline_description', 'Description', 'optional'),
          this.metaMessage
        ),
        h(
          'section',
          { class: 'kl-Section' },
          h('div', { class: 'kl-SectionHead' }, h('h3', {}, 'Graph'),
            h('button', { class: 'kl-LinkButton kl-GraphOpen', type: 'button', title: 'The graph in a tab of its own, to zoom and scroll', onclick: () => this.openGraphTab() }, 'open in a tab')),
          this.status,
          this.problems,
          this.graphBox,
          this.warnings
        ),
        h(
          'section',
          { class: 'kl-Section' },
          h('h3', {}, 'Build and run'),
          h('div', { class: 'kl-Buttons' }, this.compileButton, this.runButton),
          this.actionHint,
          this.runBox,
          this.compileBox,
          this.runList
        ),
        h('section', { class: 'kl-Section' }, h('h3', {}, 'Parameters'), this.parameters),
        h(
          'section',
          { class: 'kl-Section' },
          h('h3', {}, 'Kubeflow Pipelines'),
          this.kfpBadge,
          h('label', { class: 'kl-Field' }, h('span', {}, 'Host'), this.hostInput),
          h('label', { class: 'kl-Field' }, h('span', {}, 'Namespace'), this.namespaceInput),
          h('label', { class: 'kl-Field' }, h('span', {}, 'Run name'), this.runName),
          h('div', { class: 'kl-Buttons' }, this.uploadButton),
          h('label', { class: 'kl-Field' }, h('span', {}, 'Schedule'), this.cronInput),
          this.cronPreview,
          h('div', { class: 'kl-Buttons' }, this.scheduleButton),
          this.deployBox
        )
      )
    );
    this.empty = h('div', { class: 'kl-Empty' }, 'Open a notebook to build a pipeline from it.');
    this.node.append(this.header, this.empty, this.body);
  }

  // ----------------------------------------------------------------------------------- render

  private onNotebookChanged(): void {
    if (this.frame === null) {
      this.frame = requestAnimationFrame(() => {
        this.frame = null;
        this.render();
      });
    }
  }

  private onAnalysis(_: unknown, analysis: Analysis): void {
    this.renderAnalysis(analysis);
    this.renderActions();
  }

  render(): void {
    const pipeline = this._pipeline;
    clear(this.header);
    this.header.append(...nodes(h('h2', {}, 'Pipeline'), pipeline ? h('div', { class: 'kl-Path', title: pipeline.path }, pipeline.path) : null));
    this.empty.hidden = pipeline !== null;
    this.body.hidden = pipeline === null;
    if (!pipeline) {
      return;
    }
    const enabled = pipeline.enabled;
    this.enable.checked = enabled;
    (this.body.querySelector('.kl-Enabled') as HTMLElement).hidden = !enabled;
    const meta = pipeline.metadata;
    for (const [key, input] of Object.entries(this.metaInputs)) {
      if (document.activeElement !== input) {
        input.value = meta[key as keyof typeof meta];
      }
    }
    this.renderAnalysis(pipeline.analysis);
    this.renderActions();
    this.renderKfp();
  }

  private renderAnalysis(analysis: Analysis): void {
    const pipeline = this._pipeline;
    if (!pipeline) {
      return;
    }
    const graph = analysis.graph;
    const stale = analysis.state !== 'ok' && graph !== null;
    this.status.className = `kl-Status kl-mod-${analysis.state}`;
    this.status.dataset.analysisMs = String(analysis.serverMs);
    if (analysis.state === 'running' || analysis.state === 'idle') {
      this.status.textContent = graph ? 'Analyzing…' : 'Analyzing the notebook…';
    } else if (analysis.state === 'ok' && graph) {
      const n = graph.steps.length;
      this.status.textContent = n
        ? `${n} step${n === 1 ? '' : 's'}, ${graph.edges.length} dependenc${graph.edges.length === 1 ? 'y' : 'ies'}`
        : 'No steps yet: tag a code cell as a pipeline step (the chip above each cell).';
    } else if (onlyNoSteps(analysis)) { // an analyzer that makes no steps of an untagged notebook
      this.status.className = 'kl-Status kl-mod-ok';
      this.status.textContent = 'No steps yet.';
    } else if (analysis.state === 'error') {
      const n = analysis.errors.length;
      this.status.textContent = `${n} problem${n === 1 ? '' : 's'} to fix` + (!stale ? ''
        : analysis.partial ? ' (the graph below leaves out the tags they are on)' : ' (the graph below is from the last good version)');
    } else {
      this.status.textContent = `The analysis did not finish: ${analysis.message}`;
    }
    clear(this.problems);
    const write = (oneStep: boolean) => void this.writeSectionTags(oneStep);
    if (onlyNoSteps(analysis)) {
      this.problems.append(GUIDE(false, write, ''));
    } else if (analysis.state === 'ok' && graph?.steps.length && !this.hasStepTags()) {
      this.problems.append(GUIDE(true, write, this.sectionMessage));
    }
    for (const problem of onlyNoSteps(analysis) ? [] : analysis.errors) {
      const cell = problem.location?.cell_index;
      this.problems.append(
        h(
          'div',
          { class: 'kl-Problem', role: 'alert' },
          h('pre', {}, problem.rendered),
          cell !== null && cell !== undefined
            ? h('button', { class: 'kl-LinkButton', type: 'button', onclick: () => this.showCell(cell) }, `go to cell ${cell + 1}`)
            : null
        )
      );
    }
    this.drawGraph(analysis);
    clear(this.warnings);
    this.warnings.hidden = analysis.warnings.length === 0;
    this.warnings.append(
      h('summary', {}, `${analysis.warnings.length} warning${analysis.warnings.length === 1 ? '' : 's'}`),
      ...analysis.warnings.map(w => h('div', { class: 'kl-Warning' }, w))
    );
    this.renderParameters(analysis);
  }

  /** The graph, its nodes filled with the shown run's step statuses; a click on a node opens its cell. */
  private drawGraph(analysis: Analysis): void {
    const graph = analysis.graph;
    clear(this.graphBox);
    if (!graph || !graph.steps.length) {
      return;
    }
    const view = this.graphView(analysis, graph);
    const svg = renderGraph(graph, view);
    svg.classList.toggle('kl-mod-stale', analysis.state !== 'ok');
    this.graphBox.append(svg);
    if (this.graphTab && !this.graphTab.isDisposed) {
      this.graphTab.content.setGraph(graph, view);
    }
  }

  /** Opens (or shows again) the graph of the notebook in a main-area tab, fitted to it. */
  private openGraphTab(): void {
    const analysis = this._pipeline?.analysis;
    if (!analysis?.graph) {
      return;
    }
    let tab = this.graphTab;
    if (!tab || tab.isDisposed) {
      tab = new MainAreaWidget<GraphTab>({ content: new GraphTab() });
      tab.id = 'kale-like-graph';
      tab.title.icon = pipelineIcon;
      tab.title.closable = true;
      this.app.shell.add(tab, 'main', { mode: 'split-right' });
      this.graphTab = tab;
    }
    tab.title.label = `Graph: ${this._pipeline?.path.split('/').pop() ?? ''}`;
    tab.content.setGraph(analysis.graph, this.graphView(analysis, analysis.graph));
    this.app.shell.activateById(tab.id);
    const shown = tab;
    requestAnimationFrame(() => shown.content.fit());
  }

  private graphView(analysis: Analysis, graph: GraphData): GraphView {
    const cells = new Map<string, number[]>(graph.steps.map(step => [step.name, step.cells]));
    if (graph.exit_step) {
      cells.set(graph.exit_step.name, graph.exit_step.cells);
    }
    const statuses = new Map(
      (this.run?.rows ?? []).map(row => [
        row.step,
        { status: row.status, text: row.loop ? `${row.status} ${row.done}/${row.total}` : row.status, done: row.done, total: row.total }
      ])
    );
    return {
      failing: new Set(analysis.errors.map(e => e.location?.step).filter(Boolean) as string[]),
      statuses,
      onStep: name => {
        const first = cells.get(name)?.[0];
        if (first !== undefined) {
          this.showCell(first);
        }
      }
    };
  }

  /** Re-run with other values: a run's parameters go back into the table, to change and run again. */
  private useParameters(params: Record<string, string>): void {
    this.paramValues = { ...params };
    if (this._pipeline) {
      this.renderParameters(this._pipeline.analysis);
    }
    this.parameters.scrollIntoView({ block: 'nearest' });
  }

  private renderParameters(analysis: Analysis): void {
    const graph = analysis.graph;
    if (!graph) {
      return;
    }
    const known = new Set(graph.parameters.map(p => p.name));
    for (const name of Object.keys(this.paramValues)) {
      if (!known.has(name)) {
        delete this.paramValues[name];
      }
    }
    clear(this.parameters);
    if (!graph.parameters.length) {
      this.parameters.append(h('div', { class: 'kl-Hint' }, 'None: a cell tagged "pipeline parameters" with NAME = value lines defines them.'));
      return;
    }
    const table = h('table', { class: 'kl-ParamTable' }, h('tr', {}, h('th', {}, 'name'), h('th', {}, 'type'), h('th', {}, 'value for runs')));
    for (const parameter of graph.parameters) {
      const input = h('input', {
        type: 'text',
        value: this.paramValues[parameter.name] ?? parameterText(parameter),
        'aria-label': `parameter ${parameter.name}`,
        'data-default': parameterText(parameter)
      });
      const message = h('div', { class: 'kl-ParamProblem kl-mod-error', role: 'alert' });
      const check = () => {
        const problem = parameterProblem(parameter.type, input.value);
        message.textContent = problem;
        message.hidden = !problem;
        input.classList.toggle('kl-mod-invalid', problem !== '');
        input.setAttribute('aria-invalid', String(problem !== ''));
      };
      input.addEventListener('input', () => {
        this.paramValues[parameter.name] = input.value;
        check();
        this.renderActions();
      });
      input.addEventListener('keydown', event => event.stopPropagation());
      check();
      table.append(h('tr', {}, h('td', {}, parameter.name), h('td', { class: 'kl-Type' }, parameter.type), h('td', {}, input, message)));
    }
    this.parameters.append(table);
  }

  /** The first run parameter whose value the server would refuse, in words ('' when none). */
  private parameterBlocker(): string {
    for (const parameter of this._pipeline?.analysis.graph?.parameters ?? []) {
      const value = this.paramValues[parameter.name];
      const problem = value === undefined ? '' : parameterProblem(parameter.type, value);
      if (problem) {
        return `Parameter ${parameter.name}: ${problem}.`;
      }
    }
    return '';
  }

  /** Parameter values the user changed (text; the server reads them as the declared types). */
  private changedParams(): Record<string, string> {
    const graph = this._pipeline?.analysis.graph;
    const result: Record<string, string> = {};
    for (const parameter of graph?.parameters ?? []) {
      const value = this.paramValues[parameter.name];
      if (value !== undefined && value !== parameterText(parameter)) {
        result[parameter.name] = value;
      }
    }
    return result;
  }

  /** Why the local actions cannot run now ('' when they can). */
  private localBlocker(): string {
    const pipeline = this._pipeline;
    if (!pipeline) {
      return 'Open a notebook.';
    }
    const analysis = pipeline.analysis;
    if (analysis.state === 'error') {
      return onlyNoSteps(analysis) ? 'Tag at least one cell as a pipeline step.' : 'Fix the problems above first.';
    }
    if (analysis.state === 'failed') {
      return 'The analysis did not finish; see above.';
    }
    if (!analysis.graph) {
      return 'Analyzing…';
    }
    if (!analysis.graph.steps.length) {
      return 'Tag at least one cell as a pipeline step.';
    }
    return '';
  }

  /** "Make steps from the headings" / "One step for the whole notebook": the server's tags, into the cells. */
  private async writeSectionTags(oneStep: boolean): Promise<void> {
    const pipeline = this._pipeline;
    if (!pipeline) {
      return;
    }
    this.sectionMessage = await pipeline.writeSectionTags(oneStep);
    if (pipeline === this._pipeline) {
      this.renderAnalysis(pipeline.analysis);
    }
  }

  /** Whether any cell of the notebook is tagged as a step (else the analyzer made the steps). */
  private hasStepTags(): boolean {
    return (this._pipeline?.cellTags() ?? []).some(tags => tags.some(tag => parseTag(tag)?.kind === 'step'));
  }

  /** Whether Compile can start now (the command palette and shortcuts ask too). */
  get canCompile(): boolean {
    return this.localBlocker() === '' && !this.busy;
  }

  get canRun(): boolean {
    return this.canCompile && !this.isRunning && this.parameterBlocker() === '';
  }

  get isRunning(): boolean {
    return this.run !== null && (this.run.state === 'running' || this.run.state === 'starting');
  }

  /** Called when what the panel's commands can do changes (their palette entries follow). */
  onActionsChanged: () => void = () => undefined;

  private renderActions(): void {
    const blocker = this.localBlocker();
    this.compileButton.disabled = !this.canCompile;
    this.runButton.disabled = !this.canRun;
    this.actionHint.textContent = blocker || this.parameterBlocker();
    this.renderKfp();
    this.onActionsChanged();
  }

  private kfpHost(): string {
    return this.settings.kfpHost || this.environmentHost;
  }

  private renderKfp(): void {
    const status = this.kfp;
    let text: string;
    let mode: string;
    if (status === null) {
      text = 'Kubeflow Pipelines: checking…';
      mode = 'checking';
    } else if (!status.configured) {
      text = status.message;
      mode = 'off';
    } else if (status.reachable) {
      text = `Connected: ${status.host}`;
      mode = 'ok';
    } else {
      text = `Not reachable: ${status.message}` + (status.hint ? ` (${status.hint})` : '');
      mode = 'unreachable';
    }
    this.kfpBadge.textContent = text;
    this.kfpBadge.className = `kl-KfpBadge kl-mod-${mode}`;
    const blocker = this.localBlocker();
    const reachable = status?.reachable === true;
    this.uploadButton.disabled = !reachable || blocker !== '' || this.busy || this.parameterBlocker() !== '';
    this.scheduleButton.disabled = !reachable || blocker !== '' || this.busy || this.cron === null;
    this.uploadButton.title = !reachable ? 'Needs a reachable Kubeflow Pipelines host' : blocker;
    this.scheduleButton.title = !reachable ? 'Needs a reachable Kubeflow Pipelines host' : this.cron === null ? 'Enter a valid cron expression' : blocker;
  }

  private showCell(index: number): void {
    const panel = this._pipeline?.panel;
    if (!panel) {
      return;
    }
    this.app.shell.activateById(panel.id);
    panel.content.activeCellIndex = index;
    const cell = panel.content.widgets[index];
    if (cell) {
      void panel.content.scrollToItem(index);
    }
  }

  // ---------------------------------------------------------------------------------- actions

  /** Save the notebook first (Compile, Run and Upload read the file); false, with the reason shown, if that fails. */
  private async saved(): Promise<boolean> {
    const panel = this._pipeline?.panel;
    if (!panel) {
      return false;
    }
    if (panel.context.model.dirty) {
      try {
        await panel.context.save();
      } catch (error) {
        this.actionHint.replaceChildren(this.failure('The notebook could not be saved', String((error as Error)?.message ?? error)));
        return false;
      }
    }
    return true;
  }

  async compile(): Promise<void> {
    const pipeline = this._pipeline;
    if (!pipeline || !(await this.saved())) {
      return;
    }
    this.busy = true;
    this.renderActions();
    this.compileBox.replaceChildren(h('div', { class: 'kl-Hint' }, 'Compiling…'));
    const result = await post<CompileResult>('compile', {
      path: pipeline.path,
      output_folder: this.settings.outputFolder,
      image: this.settings.defaultImage,
      kfp_version: this.settings.kfpVersion
    });
    this.busy = false;
    this.renderActions();
    if (!result.ok) {
      this.compileBox.replaceChildren(this.failure('Compile failed', result.data.message ?? ''));
      return;
    }
    const data = result.data;
    this.compileBox.replaceChildren(
      h(
        'div',
        { class: 'kl-Success' },
        `Compiled ${data.steps} step${data.steps === 1 ? '' : 's'} to `,
        h('button', { class: 'kl-LinkButton kl-YamlPath', type: 'button', onclick: () => void this.app.commands.execute('docmanager:open', { path: data.yaml_path }) }, data.yaml_path),
        ` (${(data.bytes / 1024).toFixed(1)} KiB) and `,
        h('button', { class: 'kl-LinkButton', type: 'button', onclick: () => void this.app.commands.execute('docmanager:open', { path: data.dsl_path }) }, data.dsl_path),
        h('span', { class: 'kl-KfpVersion' }, `, checked for KFP ${data.kfp_version}`)
      ),
      ...(data.warnings ?? []).map(w => h('pre', { class: 'kl-Message kl-mod-warning kl-CompileWarning' }, `warning: ${w}`)),
      h('a', { class: 'kl-Download', href: downloadUrl(data.yaml_path), download: data.yaml_path.split('/').pop() }, 'Download the YAML'),
      h('details', { class: 'kl-PreviewBox' }, h('summary', {}, 'Preview'), h('pre', { class: 'kl-Preview' }, data.preview + (data.truncated ? '\n…' : '')))
    );
  }

  async runLocally(): Promise<void> {
    const pipeline = this._pipeline;
    if (!pipeline || !(await this.saved())) {
      return;
    }
    this.selectedTask = '';
    const result = await post<RunStatus>('runs', {
      path: pipeline.path,
      params: this.changedParams(),
      image: this.settings.defaultImage,
      kfp_version: this.settings.kfpVersion
    });
    if (!result.ok) {
      this.runBox.replaceChildren(this.failure('The run did not start', result.data.message ?? ''));
      return;
    }
    this.selectRun(result.data);
    this.renderActions();
    this.runBox.scrollIntoView({ block: 'nearest' }); // the run's status where the user looks, not below the fold
  }

  /** The server's runs of the notebook at `path`; the newest is shown (and followed while it runs). */
  private async loadRuns(path: string): Promise<void> {
    const result = await request<{ runs: RunStatus[] }>('runs', { query: { source: path } });
    if (!result.ok || this._pipeline?.path !== path) {
      return;
    }
    this.runs = result.data.runs;
    if (this.run === null && this.runs.length) {
      this.selectRun(this.runs[0]);
    } else {
      this.renderRunList();
    }
  }

  private selectRun(run: RunStatus): void {
    this.run = run;
    this.selectedTask = '';
    this.outputs = null;
    this.runFiles = null;
    this.remember(run);
    this.renderRun();
    this.renderActions();
    if (run.state === 'running' || run.state === 'starting') {
      this.pollRun();
    }
  }

  private remember(run: RunStatus): void {
    const at = this.runs.findIndex(r => r.id === run.id);
    if (at >= 0) {
      this.runs[at] = run;
    } else {
      this.runs.unshift(run);
    }
    this.renderRunList();
  }

  private renderRunList(): void {
    this.runList.replaceChildren();
    if (!this.runs.length) {
      return;
    }
    const when = (run: RunStatus) =>
      run.started ? new Date(run.started * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
    const params = (run: RunStatus) => {
      const entries = Object.entries(run.params ?? {});
      return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(', ') : 'defaults';
    };
    // the metrics the runs logged, one column each: the runs compared side by side
    const metrics = [...new Set(this.runs.flatMap(run => Object.keys(run.metrics ?? {})))];
    const metric = (run: RunStatus, name: string) => {
      const value = run.metrics?.[name];
      return value === undefined ? '' : Number.isInteger(value) ? String(value) : value.toPrecision(4).replace(/\.?0+$/, '');
    };
    this.runList.append(
      h('h4', {}, 'Runs of this notebook'),
      h(
        'table',
        { class: 'kl-Runs' },
        // narrow enough for the sidebar's default width: the state is the icon (and its tooltip), the
        // parameters wrap, so the metrics' columns stay in view
        h('tr', {}, h('th', {}, ''), h('th', {}, 'started'), h('th', {}, 'time'), h('th', {}, 'parameters'),
          ...metrics.map(name => h('th', { class: 'kl-Metric', title: name }, name))),
        this.runs.map(run =>
          h(
            'tr',
            {
              class: `kl-RunItem kl-mod-${run.state}` + (run.id === this.run?.id ? ' kl-mod-selected' : ''),
              'data-run': run.id,
              'data-state': run.state,
              title: `${run.state}: show this run`,
              onclick: () => this.selectRun(run)
            },
            h('td', { class: 'kl-TaskIcon', 'aria-label': run.state }, STATUS_ICON[run.state === 'succeeded' ? 'done' : run.state] ?? '◔'),
            h('td', { class: 'kl-RunStarted' }, when(run)),
            h('td', { class: 'kl-Seconds' }, `${run.seconds.toFixed(1)} s`),
            h('td', { class: 'kl-RunParams' }, params(run)),
            ...metrics.map(name => h('td', { class: 'kl-Metric', 'data-metric': name }, metric(run, name)))
          )
        )
      )
    );
  }

  private pollRun(): void {
    if (this.pollTimer !== null) {
      window.clearTimeout(this.pollTimer);
    }
    this.pollTimer = window.setTimeout(async () => {
      this.pollTimer = null;
      const run = this.run;
      if (!run) {
        return;
      }
      const result = await request<RunStatus>(`runs/${run.id}`);
      if (this.run?.id !== run.id) {
        return; // another run was selected meanwhile
      }
      if (result.ok) {
        this.run = result.data;
      } else {
        this.run = { ...run, state: 'failed', message: result.data.message ?? 'the server lost the run' };
      }
      this.remember(this.run);
      await this.refreshLog();
      this.renderRun();
      this.renderActions();
      if (this.run.state === 'running' || this.run.state === 'starting') {
        this.pollRun();
      }
    }, 500);
  }

  private async refreshLog(): Promise<void> {
    if (!this.run || !this.selectedTask) {
      return;
    }
    const result = await request<{ text: string }>(`runs/${this.run.id}/logs`, { query: { task: this.selectedTask } });
    const going = this.run.state === 'running' || this.run.state === 'starting';
    this.logText = result.ok ? result.data.text || (going ? '(no output yet)' : '(the step printed nothing)') : result.data.message ?? '';
  }

  private renderRun(): void {
    const run = this.run;
    if (!run) {
      return;
    }
    const running = run.state === 'running' || run.state === 'starting';
    const rows: RunRow[] = run.rows ?? run.steps.map(step => ({
      step, status: 'pending', cells: [], done: 0, total: 0, loop: false, seconds: 0, log_task: ''
    }));
    const done = rows.filter(r => ['done', 'cached', 'skipped'].includes(r.status)).length;
    const statusText = (row: RunRow) =>
      row.loop || row.total > 1 ? `${row.status} (${row.done}/${row.total})` : row.status;
    const table = h(
      'table',
      { class: 'kl-RunTable' },
      rows.map(row =>
        h(
          'tr',
          {
            class: `kl-Task kl-mod-${row.status.replace(' ', '-')}` + (row.log_task && row.log_task === this.selectedTask ? ' kl-mod-selected' : ''),
            'data-task': row.step,
            'data-status': row.status,
            title: row.log_task ? 'Show its log' : 'Not started',
            onclick: async () => {
              if (!row.log_task) {
                return;
              }
              this.selectedTask = row.log_task;
              this.logText = 'loading…';
              this.outputs = null;
              this.renderRun();
              await Promise.all([this.refreshLog(), this.loadOutputs()]);
              this.renderRun();
            }
          },
          h('td', { class: 'kl-TaskIcon' }, STATUS_ICON[row.status] ?? '?'),
          h('td', {}, row.step),
          h('td', { class: 'kl-TaskStatus' }, statusText(row)),
          h('td', { class: 'kl-Seconds' }, row.seconds ? `${row.seconds.toFixed(1)} s` : '')
        )
      )
    );
    const stop = h('button', { class: 'jp-mod-styled jp-mod-warn kl-Stop', type: 'button', disabled: !running, onclick: () => void this.stopRun() }, 'Stop');
    const state = h('div', { class: `kl-RunState kl-mod-${run.state}`, role: 'status' },
      `Local run ${run.state}` + (run.pipeline ? ` — ${run.pipeline}` : '') + ` (${done}/${rows.length} steps, ${run.seconds.toFixed(0)} s)`);
    const failures = rows.filter(r => r.status === 'failed' && r.error).map(row => {
      const cell = row.error_cell ?? row.cells[0];
      return h(
        'div',
        { class: 'kl-StepFailure', 'data-step': row.step },
        h('pre', { class: 'kl-Message kl-mod-error' }, `${row.step} failed: ${row.error}`),
        cell !== undefined && cell !== null
          ? h('button', { class: 'kl-LinkButton kl-FailureCell', type: 'button', onclick: () => this.showCell(cell) },
              `go to cell ${cell + 1}` + (row.error_cell !== null && row.error_cell !== undefined && row.error_line ? `, line ${row.error_line}` : ''))
          : null
      );
    });
    const showMessage = run.message && run.state !== 'succeeded' && !(run.state === 'failed' && failures.length);
    // a marker on each cell where a step of this run failed (its error line), until another run is shown
    this._pipeline?.setRunFailures(new Map(rows.filter(r => r.status === 'failed' && r.error && (r.error_cell ?? r.cells[0]) !== undefined)
      .map(r => [(r.error_cell ?? r.cells[0]) as number, `${r.step}: ${(r.error ?? '').split('\n')[0]}` + (r.error_line ? ` (line ${r.error_line})` : '')])));
    if (this._pipeline) {
      this.drawGraph(this._pipeline.analysis); // live: the nodes take the steps' statuses
    }
    this.runBox.replaceChildren(...nodes(
      h('div', { class: 'kl-RunHeader' }, state, stop),
      Object.keys(run.params ?? {}).length
        ? h('div', { class: 'kl-RunParamsLine' }, `with ${Object.entries(run.params ?? {}).map(([k, v]) => `${k}=${v}`).join(', ')} `,
            h('button', { class: 'kl-LinkButton kl-UseParams', type: 'button', title: 'Put these values in the parameters below, for the next run',
              onclick: () => this.useParameters(run.params ?? {}) }, 'use these parameters'))
        : null,
      showMessage
        ? h('pre', { class: `kl-Message ${run.state === 'interrupted' ? 'kl-mod-warning' : 'kl-mod-error'}`, role: 'alert' }, run.message)
        : null,
      ...failures,
      table,
      this.selectedTask ? h('div', { class: 'kl-LogTitle' }, `Log of ${this.selectedTask}`) : null,
      this.selectedTask ? h('pre', { class: 'kl-Log' }, this.logText) : null,
      this.selectedTask && this.outputs ? this.renderOutputs(this.outputs) : null,
      run.folder ? this.renderFolder(run) : null
    ));
  }

  /** The selected task's outputs, once the run has ended (a DataFrame's head, an array's shape, a plot or an image, a value). */
  private async loadOutputs(): Promise<void> {
    const run = this.run;
    if (!run || !this.selectedTask || run.state === 'running' || run.state === 'starting') {
      return;
    }
    const result = await request<{ outputs: OutputPreview[] }>(`runs/${run.id}/outputs`, { query: { task: this.selectedTask } });
    this.outputs = result.ok ? result.data.outputs : [];
  }

  private renderOutputs(outputs: OutputPreview[]): HTMLElement {
    return h(
      'div',
      { class: 'kl-Outputs' },
      h('div', { class: 'kl-LogTitle' }, outputs.length ? `Outputs of ${this.selectedTask}` : `${this.selectedTask} hands no value to a later step`),
      outputs.map(output =>
        h(
          'div',
          { class: 'kl-Output', 'data-output': output.name },
          h('div', {}, h('code', {}, output.name), ` — ${output.summary}`),
          output.image
            ? h('img', { class: 'kl-OutputImage', src: output.image, alt: `${output.name}: ${output.summary}` })
            : output.columns && output.rows
            ? h('table', { class: 'kl-OutputTable' },
                h('tr', {}, output.columns.map(c => h('th', {}, c))),
                output.rows.map(r => h('tr', {}, r.map(v => h('td', {}, v)))))
            : output.text !== undefined
              ? h('pre', { class: 'kl-OutputText' }, output.text)
              : null
        )
      )
    );
  }

  /** The run folder (hidden from Jupyter's file browser): its path and, on request, its files as downloads. */
  private renderFolder(run: RunStatus): HTMLElement {
    const files = this.runFiles;
    return h(
      'div',
      { class: 'kl-RunFolder' },
      'Outputs and logs: ',
      h('button', {
        class: 'kl-LinkButton kl-OpenFolder', type: 'button', title: 'List the files of this run',
        onclick: async () => {
          const result = await request<RunFiles>(`runs/${run.id}/files`);
          this.runFiles = result.ok ? result.data : { folder: run.folder ?? '', files: [] };
          this.renderRun();
        }
      }, `${run.folder}/`),
      files
        ? h('ul', { class: 'kl-RunFiles' }, files.files.length
          ? files.files.map(f => h('li', {}, h('a', { href: runFileUrl(run.id, f.name), download: f.name.split('/').pop() }, f.name), ` (${(f.bytes / 1024).toFixed(1)} KiB)`))
          : h('li', {}, 'no files yet'))
        : null
    );
  }

  async stopRun(): Promise<void> {
    if (!this.run) {
      return;
    }
    const result = await post<RunStatus>(`runs/${this.run.id}/stop`, {});
    if (result.ok) {
      this.run = result.data;
    } else {
      this.run = { ...this.run, message: result.data.message ?? 'could not stop the run' };
    }
    this.remember(this.run);
    this.renderRun();
    this.renderActions();
  }

  private async checkKfp(): Promise<void> {
    this.kfpChecked = true;
    const ticket = ++this.kfpTicket;
    this.kfp = null;
    this.renderKfp();
    const result = await request<KfpStatus>('kfp/status', {
      query: { host: this.hostInput.value.trim() || this.kfpHost(), namespace: this.namespaceInput.value.trim() || this.settings.kfpNamespace }
    });
    if (ticket !== this.kfpTicket) {
      return;
    }
    this.kfp = result.ok
      ? result.data
      : { configured: true, reachable: false, message: result.data.message ?? `HTTP ${result.status}` };
    this.renderKfp();
  }

  private async previewCron(): Promise<void> {
    const text = this.cronInput.value.trim();
    this.cron = null;
    if (!text) {
      this.cronPreview.replaceChildren();
      this.renderKfp();
      return;
    }
    const result = await post<CronPreview>('schedule/preview', { cron: text });
    if (text !== this.cronInput.value.trim()) {
      return;
    }
    if (result.ok) {
      this.cron = result.data;
      this.cronPreview.replaceChildren(
        h('div', {}, `KFP cron: ${result.data.kfp_cron}. Next runs:`),
        h('ul', { class: 'kl-FireTimes' }, result.data.next.map(t => h('li', {}, t)))
      );
    } else {
      this.cronPreview.replaceChildren(h('pre', { class: 'kl-Message kl-mod-error' }, result.data.message ?? ''));
    }
    this.renderKfp();
  }

  private kfpBody(): Record<string, unknown> {
    return {
      path: this._pipeline?.path,
      host: this.hostInput.value.trim() || this.kfpHost(),
      namespace: this.namespaceInput.value.trim() || this.settings.kfpNamespace,
      params: this.changedParams(),
      output_folder: this.settings.outputFolder,
      image: this.settings.defaultImage,
      kfp_version: this.settings.kfpVersion
    };
  }

  private async upload(): Promise<void> {
    if (!(await this.saved())) {
      return;
    }
    this.busy = true;
    this.renderActions();
    this.deployBox.replaceChildren(h('div', { class: 'kl-Hint' }, 'Compiling and uploading…'));
    const result = await post<UploadResult>('upload', { ...this.kfpBody(), run_name: this.runName.value.trim() });
    this.busy = false;
    this.renderActions();
    if (!result.ok) {
      this.deployBox.replaceChildren(this.failure('Upload failed', result.data.message ?? ''));
      return;
    }
    const data = result.data;
    this.deployBox.replaceChildren(
      h('div', { class: 'kl-Success' }, `Uploaded version ${data.version_name}; run '${data.run_name}' started in experiment ${data.experiment}: `,
        h('a', { href: data.run_url, target: '_blank', rel: 'noopener' }, 'open the run'))
    );
  }

  private async schedule(): Promise<void> {
    if (!this.cron || !(await this.saved())) {
      return;
    }
    this.busy = true;
    this.renderActions();
    this.deployBox.replaceChildren(h('div', { class: 'kl-Hint' }, 'Compiling, uploading and scheduling…'));
    const result = await post<ScheduleResult>('schedule', { ...this.kfpBody(), cron: this.cronInput.value.trim() });
    this.busy = false;
    this.renderActions();
    if (!result.ok) {
      this.deployBox.replaceChildren(this.failure('Scheduling failed', result.data.message ?? ''));
      return;
    }
    const data = result.data;
    this.deployBox.replaceChildren(
      h('div', { class: 'kl-Success' }, `Recurring run '${data.name}' created (${data.kfp_cron}) for version ${data.version_name}. Next runs: ${data.next.join('; ')}`)
    );
  }

  private failure(title: string, message: string): HTMLElement {
    return h('div', { class: 'kl-Failure', role: 'alert' }, h('strong', {}, title), h('pre', {}, message));
  }

  private _pipeline: NotebookPipeline | null = null;
  /** Why the tags from the headings were not written (shown in the guide). */
  private sectionMessage = '';
  private frame: number | null = null;
  private busy = false;
  private run: RunStatus | null = null;
  /** The server's local runs of this notebook, newest first (they outlive a page reload). */
  private runs: RunStatus[] = [];
  private runFiles: RunFiles | null = null;
  private outputs: OutputPreview[] | null = null;
  private graphTab: MainAreaWidget<GraphTab> | null = null;
  private pollTimer: number | null = null;
  private selectedTask = '';
  private logText = '';
  private paramValues: Record<string, string> = {};
  private kfp: KfpStatus | null = null;
  private kfpChecked = false;
  private kfpTicket = 0;
  private cron: CronPreview | null = null;
  private metaInputs: Record<string, HTMLInputElement | HTMLTextAreaElement> = {};

  private header!: HTMLElement;
  private empty!: HTMLElement;
  private body!: HTMLElement;
  private enable!: HTMLInputElement;
  private metaMessage!: HTMLElement;
  private status!: HTMLElement;
  private problems!: HTMLElement;
  private warnings!: HTMLDetailsElement;
  private parameters!: HTMLElement;
  private graphBox!: HTMLElement;
  private compileButton!: HTMLButtonElement;
  private runButton!: HTMLButtonElement;
  private actionHint!: HTMLElement;
  private compileBox!: HTMLElement;
  private runBox!: HTMLElement;
  private runList!: HTMLElement;
  private kfpBadge!: HTMLElement;
  private hostInput!: HTMLInputElement;
  private namespaceInput!: HTMLInputElement;
  private runName!: HTMLInputElement;
  private uploadButton!: HTMLButtonElement;
  private cronInput!: HTMLInputElement;
  private cronPreview!: HTMLElement;
  private scheduleButton!: HTMLButtonElement;
  private deployBox!: HTMLElement;
}
