/**
 * Cell tags <-> the step editor's model.
 *
 * The grammar itself comes from Python (grammar.generated.ts, generated from
 * kale_like/frontends/tags.py): this module only maps parsed tags to editable fields and back.
 * `updateTags` keeps every tag the user did not change where it was (and keeps tags it does not
 * understand), so editing one field never reorders or drops the rest.
 *
 * Pure functions, no JupyterLab imports: unit-tested under plain node.
 */

import { distance } from 'fastest-levenshtein';

import { GRAMMAR } from './grammar.generated';

export type CellKind =
  | 'none'
  | 'imports'
  | 'functions'
  | 'pipeline-parameters'
  | 'pipeline-metrics'
  | 'skip'
  | 'step'
  | 'exit-handler';

export const CELL_KINDS: CellKind[] = ['none', ...(GRAMMAR.cellKinds as CellKind[])];

export const CELL_KIND_LABELS: Record<CellKind, string> = {
  none: 'continues the cell above',
  imports: 'Imports',
  functions: 'Functions',
  'pipeline-parameters': 'Pipeline parameters',
  'pipeline-metrics': 'Pipeline metrics',
  skip: 'Skip',
  step: 'Pipeline step',
  'exit-handler': 'Exit handler (runs last, reads pipeline_status)'
};

export interface ParsedTag {
  raw: string;
  kind: string;
  fields: Record<string, string>;
}

export interface SecretRef {
  secret: string;
  key: string;
  env: string;
}

export interface Condition {
  name: string;
  op: string;
  value: string;
}

export interface StepSettings {
  image: string;
  limits: Record<string, string>;
  requests: Record<string, string>;
  cache: '' | 'enabled' | 'disabled';
  retries: string;
  secrets: SecretRef[];
  env: [string, string][];
  labels: [string, string][];
  annotations: [string, string][];
  packages: string;
  foreach: { item: string; items: string } | null;
  parallelism: string;
  when: Condition | null;
}

export interface CellInfo {
  kind: CellKind;
  stepName: string;
  prev: string[];
  settings: StepSettings;
  /** Tags kept verbatim: ones the editor has no field for, and ones that do not parse. */
  other: string[];
  /** The subset of `other` that matches no grammar row (the analyzer reports them). */
  invalid: string[];
}

const COMPILED: [string, RegExp][] = GRAMMAR.tags.map(row => [
  row.kind,
  new RegExp(`^${row.pattern}$`)
]);
const NAME = new RegExp(`^${GRAMMAR.name}$`);
const KIND_TAGS = new Set<string>(GRAMMAR.cellKinds);
const HAS_SETTINGS = new Set<CellKind>(['step', 'exit-handler']);
const SETTING_KINDS = new Set([
  'image',
  'limit',
  'request',
  'cache',
  'retries',
  'secret',
  'env',
  'label',
  'annotation',
  'packages',
  'foreach',
  'parallelism',
  'when'
]);

/** Parse one tag with the shared grammar (the first matching row wins, as in Python). */
export function parseTag(raw: string): ParsedTag | null {
  const text = raw.trim();
  for (const [kind, pattern] of COMPILED) {
    const match = pattern.exec(text);
    if (match) {
      const fields: Record<string, string> = {};
      for (const [key, value] of Object.entries(match.groups ?? {})) {
        if (value !== undefined) {
          fields[key] = value;
        }
      }
      return { raw: text, kind, fields };
    }
  }
  return null;
}

export function isValidStepName(name: string): boolean {
  return NAME.test(name);
}

/** An example of a tag kind, as the Python side shows it in messages. */
export function tagExample(kind: string): string {
  return GRAMMAR.tags.find(row => row.kind === kind)?.example ?? kind;
}

export function emptySettings(): StepSettings {
  return {
    image: '',
    limits: {},
    requests: {},
    cache: '',
    retries: '',
    secrets: [],
    env: [],
    labels: [],
    annotations: [],
    packages: '',
    foreach: null,
    parallelism: '',
    when: null
  };
}

/** What the step editor shows for a cell's tags. */
export function readCell(tags: readonly string[]): CellInfo {
  const info: CellInfo = {
    kind: 'none',
    stepName: '',
    prev: [],
    settings: emptySettings(),
    other: [],
    invalid: []
  };
  const s = info.settings;
  for (const raw of tags) {
    const tag = parseTag(raw);
    if (tag === null) {
      info.other.push(raw);
      info.invalid.push(raw);
      continue;
    }
    const f = tag.fields;
    if (KIND_TAGS.has(tag.kind)) {
      if (info.kind === 'none') {
        info.kind = tag.kind as CellKind;
        if (tag.kind === 'step') {
          info.stepName = f.name;
        }
      } else {
        info.other.push(raw); // a second kind tag: kept, the analyzer says what is wrong
      }
      continue;
    }
    switch (tag.kind) {
      case 'prev':
        if (!info.prev.includes(f.name)) {
          info.prev.push(f.name);
        }
        break;
      case 'image':
        s.image = f.image;
        break;
      case 'limit':
        s.limits[f.resource] = f.value;
        break;
      case 'request':
        s.requests[f.resource] = f.value;
        break;
      case 'cache':
        s.cache = f.state as 'enabled' | 'disabled';
        break;
      case 'retries':
        s.retries = f.count;
        break;
      case 'secret':
        s.secrets.push({ secret: f.secret, key: f.key, env: f.env });
        break;
      case 'env':
        s.env.push([f.key, f.value]);
        break;
      case 'label':
        s.labels.push([f.key, f.value]);
        break;
      case 'annotation':
        s.annotations.push([f.key, f.value]);
        break;
      case 'packages':
        s.packages = s.packages ? `${s.packages},${f.packages}` : f.packages;
        break;
      case 'foreach':
        s.foreach = { item: f.item, items: f.items };
        break;
      case 'parallelism':
        s.parallelism = f.count;
        break;
      case 'when':
        s.when = { name: f.name, op: f.op ?? '', value: f.value ?? '' };
        break;
      default:
        info.other.push(raw); // e.g. report:enabled: valid, no field in the editor
    }
  }
  return info;
}

/** The tags that express `info`, in a canonical order. */
export function writeCell(info: CellInfo): string[] {
  const tags: string[] = [];
  if (info.kind === 'step') {
    tags.push(`step:${info.stepName}`);
    for (const parent of info.prev) {
      tags.push(`prev:${parent}`);
    }
    tags.push(...settingsTags(info.settings));
  } else if (info.kind === 'exit-handler') {
    // its own container settings, but no loop or condition: it runs once, whatever happened
    tags.push(info.kind, ...settingsTags({ ...info.settings, foreach: null, parallelism: '', when: null }));
  } else if (info.kind !== 'none') {
    tags.push(info.kind);
  }
  for (const raw of info.other) {
    const tag = parseTag(raw);
    if (tag && !HAS_SETTINGS.has(info.kind) && SETTING_KINDS.has(tag.kind)) {
      continue;
    }
    tags.push(raw);
  }
  return dedupe(tags);
}

export function settingsTags(s: StepSettings): string[] {
  const tags: string[] = [];
  const text = (v: string) => v.trim();
  if (text(s.image)) {
    tags.push(`image:${text(s.image)}`);
  }
  for (const [resource, value] of Object.entries(s.limits)) {
    if (text(value)) {
      tags.push(`limit:${resource}:${text(value)}`);
    }
  }
  for (const [resource, value] of Object.entries(s.requests)) {
    if (text(value)) {
      tags.push(`request:${resource}:${text(value)}`);
    }
  }
  if (s.cache) {
    tags.push(`cache:${s.cache}`);
  }
  if (text(s.retries)) {
    tags.push(`retries:${text(s.retries)}`);
  }
  for (const secret of s.secrets) {
    tags.push(`secret:${secret.secret}:${secret.key}:${secret.env}`);
  }
  for (const [key, value] of s.env) {
    tags.push(`env:${key}:${value}`);
  }
  for (const [key, value] of s.labels) {
    tags.push(`label:${key}:${value}`);
  }
  for (const [key, value] of s.annotations) {
    tags.push(`annotation:${key}:${value}`);
  }
  if (text(s.packages)) {
    tags.push(`packages:${s.packages.replace(/\s+/g, '')}`);
  }
  if (s.foreach && s.foreach.item && s.foreach.items) {
    tags.push(`foreach:${s.foreach.item}:${s.foreach.items}`);
  }
  if (text(s.parallelism)) {
    tags.push(`parallelism:${text(s.parallelism)}`);
  }
  if (s.when && s.when.name) {
    tags.push(
      s.when.op && s.when.value !== ''
        ? `when:${s.when.name}:${s.when.op}:${s.when.value}`
        : `when:${s.when.name}`
    );
  }
  return tags;
}

/**
 * The cell's new tag list: tags that still mean the same keep their place (and spelling, e.g.
 * Kale's `block:NAME`), removed ones go, new ones are appended.
 */
export function updateTags(original: readonly string[], info: CellInfo): string[] {
  const wanted = writeCell(info);
  const wantedKeys = new Map(wanted.map(tag => [tagKey(tag), tag]));
  const result: string[] = [];
  const used = new Set<string>();
  for (const raw of original) {
    const key = tagKey(raw);
    if (wantedKeys.has(key) && !used.has(key)) {
      result.push(raw);
      used.add(key);
    }
  }
  for (const tag of wanted) {
    const key = tagKey(tag);
    if (!used.has(key)) {
      result.push(tag);
      used.add(key);
    }
  }
  return result;
}

/** Tags that mean the same thing share a key (`block:x` and `step:x`). */
export function tagKey(raw: string): string {
  const tag = parseTag(raw);
  if (tag === null) {
    return `?${raw}`;
  }
  if (tag.kind === 'step') {
    return `step:${tag.fields.name}`;
  }
  return tag.raw;
}

/** Rename a step in one cell's tags: its own step tag and `prev:` tags naming it. */
export function renameInTags(tags: readonly string[], from: string, to: string): string[] {
  return tags.map(raw => {
    const tag = parseTag(raw);
    if (tag?.kind === 'step' && tag.fields.name === from) {
      return raw.trim().startsWith('block:') ? `block:${to}` : `step:${to}`;
    }
    if (tag?.kind === 'prev' && tag.fields.name === from) {
      return `prev:${to}`;
    }
    return raw;
  });
}

/** Step names that cells before `index` start (the only valid `prev:` targets). */
export function earlierSteps(cellTags: readonly (readonly string[])[], index: number): string[] {
  const names: string[] = [];
  const own = readCell(cellTags[index] ?? []).stepName;
  for (let i = 0; i < index && i < cellTags.length; i++) {
    const info = readCell(cellTags[i]);
    if (info.kind === 'step' && info.stepName !== own && !names.includes(info.stepName)) {
      names.push(info.stepName);
    }
  }
  return names;
}

/** A stable colour per step name (the chip above its cells and its node in the graph). */
export function stepColor(name: string): string {
  let hash = 0;
  for (const char of name) {
    hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  }
  return `hsl(${hash % 360}, 60%, 42%)`;
}

function dedupe(tags: string[]): string[] {
  const seen = new Set<string>();
  return tags.filter(tag => {
    const key = tagKey(tag);
    if (seen.has(key)) {
      return false;
    }
    seen.add(key);
    return true;
  });
}

const PY_NUMBER = /^[+-]?(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?$/;
const PY_STRING = /^[rRbBuU]{0,2}(?:'[^']*'|"[^"]*")$/s;
const PY_COLLECTION = /^(?:\[.*\]|\(.*\)|\{.*\})$/s;

/** Whether `text` reads as a Python literal (a number, a quoted string, True/False/None, a collection). */
export function isPythonLiteral(text: string): boolean {
  const t = text.trim();
  return PY_NUMBER.test(t) || PY_STRING.test(t) || PY_COLLECTION.test(t) || ['True', 'False', 'None'].includes(t);
}

/**
 * Why the value of "Run only when NAME OP VALUE" cannot be compiled ('' when it can): it must be a
 * Python literal or the name of a pipeline parameter. A bare word is not read as a string, which
 * would compare with a constant nobody meant (the analyzer refuses it the same way).
 */
export function whenValueProblem(value: string, parameters: readonly string[]): string {
  const text = value.trim();
  if (!text || isPythonLiteral(text) || parameters.includes(text)) {
    return '';
  }
  const close = parameters.find(p => p.toLowerCase() === text.toLowerCase() || distance(p, text) <= 2);
  return (
    `'${text}' is neither a Python literal nor a pipeline parameter` +
    (parameters.length ? ` (parameters: ${parameters.join(', ')})` : ' (this notebook has no parameters)') +
    (close ? `. Did you mean ${close}?` : '.') +
    ` Quote a string ('${text}') or write a number.`
  );
}


const JSON_INT = /^\s*-?(?:0|[1-9]\d*)\s*$/;
const JSON_FLOAT = /^\s*(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|NaN|-?Infinity)\s*$/;
const BOOL_WORDS = ['true', 'false', '1', '0', 'yes', 'no'];

/**
 * Why `text` is no value for a run parameter of `type` ('' when it is): the server reads the text as
 * the declared type (`typed_arguments` in api.py: a bool's words, else JSON), so a value it would
 * refuse is refused in the field, with the type named, before the run starts.
 */
export function parameterProblem(type: string, text: string): string {
  const base = type.split(':')[0];
  const shown = text.length > 40 ? text.slice(0, 39) + '…' : text;
  if (base === 'int') {
    return JSON_INT.test(text) ? '' : `'${shown}' is not an int (a whole number, e.g. 3)`;
  }
  if (base === 'float') {
    return JSON_FLOAT.test(text) ? '' : `'${shown}' is not a float (a number, e.g. 0.5)`;
  }
  if (base === 'bool') {
    return BOOL_WORDS.includes(text.trim().toLowerCase()) ? '' : `'${shown}' is not a bool (true or false)`;
  }
  if (base === 'list' || base === 'dict') {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    const fits = base === 'list' ? Array.isArray(value) : typeof value === 'object' && value !== null && !Array.isArray(value);
    return fits ? '' : `'${shown}' is not a ${base} (JSON, e.g. ${base === 'list' ? '[1, 2]' : '{"a": 1}'})`;
  }
  return '';
}
