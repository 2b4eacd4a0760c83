/**
 * Calls to the server extension (`<base_url>/kale-like/...`) through Jupyter's ServerConnection,
 * which adds the token and the XSRF header the server checks.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface ApiResult<T> {
  ok: boolean;
  status: number;
  data: T & { ok?: boolean; message?: string };
}

export interface Location {
  path: string;
  cell_index: number | null;
  step: string | null;
  line: number | null;
  column: number | null;
}

export interface Problem {
  message: string;
  hint: string;
  rendered: string;
  location: Location | null;
}

export interface Parameter {
  name: string;
  type: string;
  default: unknown;
  /** The default as Python writes it (a float keeps its `.0`); strings as they are. */
  default_text?: string;
  required?: boolean;
}

export interface StepData {
  name: string;
  cells: number[];
  upstream: string[];
  after: string[];
  inputs: { name: string; type: string; ref: { kind: string; source: string; output: string } }[];
  outputs: { name: string; type: string }[];
  settings: Record<string, unknown>;
  parameters: string[];
  metrics: string[];
  packages: string[];
}

export interface Edge {
  source: string;
  target: string;
  names: string[];
}

export interface BodyNode {
  kind: 'step' | 'loop' | 'condition' | 'pipelinecall' | 'expression';
  name?: string;
  id?: string;
  items?: { kind: string; source: string; output: string; value: unknown };
  parallelism?: number | null;
  body?: BodyNode[];
  branches?: { test: Test | null; body: BodyNode[] }[];
  pipeline?: string;
}

export interface Test {
  op: string;
  operands: { kind: string; source: string; output: string; value: unknown }[];
  tests: Test[];
}

export interface GraphData {
  source: string;
  settings: { name: string; description: string; experiment: string; image: string };
  parameters: Parameter[];
  metrics: string[];
  steps: StepData[];
  edges: Edge[];
  body: BodyNode[];
  /** The exit handler (an `exit-handler` cell or `@pipeline(on_exit=)`): runs last, outside the body. */
  exit_step?: { name: string; cells: number[] } | null;
  /** Where to draw it: computed by the server (kale_like/surfaces/graph_layout.py), as for the notebook widget. */
  layout?: GraphLayout;
}

export interface GraphLayout {
  width: number;
  height: number;
  /** `generated`: a step kale_like wrote (an expression's value, a loop's items), drawn small. */
  nodes: { name: string; kind: 'step' | 'pipelinecall' | 'exit'; x: number; y: number; w: number; h: number; badges: string[]; generated?: boolean }[];
  edges: { source: string; target: string; names: string[]; path: string; label_x: number; label_y: number }[];
  /** Loops and the branches of conditions, as boxes around their steps (`members`: every step inside). */
  groups?: { id: string; kind: 'loop' | 'branch'; label: string; x: number; y: number; w: number; h: number; members: string[]; depth: number }[];
}

export interface AnalyzeResult {
  path: string;
  /** false: the notebook has problems (`errors`); `graph` is then that of the notebook without the tags they are on, or null. */
  ok?: boolean;
  message?: string;
  graph?: GraphData | null;
  warnings?: string[];
  errors?: Problem[];
}

/** The tags a notebook without tags gets from its headings (`section-tags`), per cell: index among all cells and id. */
export interface SectionTags {
  path: string;
  one_step: boolean;
  steps: string[];
  cells: { index: number; id: string | null; tags: string[] }[];
}

export interface CompileResult {
  yaml_path: string;
  dsl_path: string;
  pipeline: string;
  /** The KFP server release the pipeline was checked against. */
  kfp_version: string;
  steps: number;
  bytes: number;
  preview: string;
  truncated: boolean;
  warnings: string[];
  errors?: Problem[];
}

export interface TaskStatus {
  path: string;
  label: string;
  status: string;
  seconds: number;
  error?: string;
  log_tail?: string;
}

/** One step of the user's graph in a run: its tasks gathered (a loop's iterations: done of total). */
export interface RunRow {
  step: string;
  status: string;
  cells: number[];
  done: number;
  total: number;
  loop: boolean;
  seconds: number;
  /** The task whose log a click shows (the failed iteration of a loop, if any). */
  log_task: string;
  /** For a failed step: the error line first, then the user's frames only. */
  error?: string;
  error_cell?: number | null;
  error_line?: number | null;
}

export interface RunStatus {
  id: string;
  source: string;
  /** `interrupted`: the Jupyter server stopped while the run went (a later server read it from the run store). */
  state: 'starting' | 'running' | 'succeeded' | 'failed' | 'stopped' | 'interrupted';
  message: string;
  pipeline: string;
  steps: string[];
  tasks: TaskStatus[];
  rows?: RunRow[];
  params?: Record<string, string>;
  /** What the steps logged as KFP metrics (a pipeline-metrics cell), once the run has finished. */
  metrics?: Record<string, number>;
  /** The run's folder (outputs and logs), relative to the Jupyter root; '' until it has one. */
  folder?: string;
  started?: number;
  warnings: string[];
  seconds: number;
}

/** A preview of one output of a task: a table (a DataFrame's head) or a text, under a summary. */
export interface OutputPreview {
  name: string;
  kind: string;
  summary: string;
  columns?: string[];
  rows?: string[][];
  text?: string;
  /** A plot or an image (a `data:` URL): a matplotlib figure, a PIL image, image bytes, an image file the step saved. */
  image?: string;
}

export interface RunFiles {
  folder: string;
  files: { name: string; bytes: number }[];
}

export interface KfpStatus {
  configured: boolean;
  reachable: boolean;
  host?: string;
  message: string;
  hint?: string;
}

export interface UploadResult {
  run_id: string;
  run_name: string;
  run_url: string;
  version_name: string;
  experiment: string;
  yaml_path: string;
  host: string;
}

export interface CronPreview {
  cron: string;
  kfp_cron: string;
  next: string[];
}

export interface ScheduleResult {
  recurring_run_id: string;
  name: string;
  kfp_cron: string;
  next: string[];
  host: string;
  version_name: string;
}

/** One request; never throws for HTTP errors (the caller shows `data.message`). */
export async function request<T>(
  route: string,
  init: RequestInit & { query?: Record<string, string> } = {}
): Promise<ApiResult<T>> {
  const settings = ServerConnection.makeSettings();
  let url = URLExt.join(settings.baseUrl, 'kale-like', route);
  if (init.query) {
    url += URLExt.objectToQueryString(init.query);
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    return {
      ok: false,
      status: 0,
      data: { ok: false, message: `cannot reach the Jupyter server: ${String(error)}` } as any
    };
  }
  let data: any;
  try {
    data = await response.json();
  } catch {
    data = { ok: false, message: `the server answered HTTP ${response.status} without JSON` };
  }
  if (!response.ok && !data.message) {
    data.message = data.reason || `HTTP ${response.status}`;
  }
  return { ok: response.ok, status: response.status, data };
}

export function post<T>(route: string, body: unknown): Promise<ApiResult<T>> {
  return request<T>(route, { method: 'POST', body: JSON.stringify(body) });
}

/** A link that downloads a file through Jupyter's own /files handler. */
export function downloadUrl(path: string): string {
  const settings = ServerConnection.makeSettings();
  return URLExt.join(settings.baseUrl, 'files', URLExt.encodeParts(path)) + '?download=1';
}

/** A link that downloads one file of a local run's folder (the folder itself is hidden from Jupyter). */
export function runFileUrl(runId: string, name: string): string {
  const settings = ServerConnection.makeSettings();
  return URLExt.join(settings.baseUrl, 'kale-like', 'runs', runId, 'files', URLExt.encodeParts(name));
}
