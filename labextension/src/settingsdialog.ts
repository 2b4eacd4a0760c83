/**
 * The step settings dialog: one tabbed form for everything a step's tags can say beyond its name
 * and parents (resources, runtime, fan-out / condition, environment and secrets).
 */

import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { h, nodes } from './dom';
import { StepSettings, emptySettings, parseTag, settingsTags, whenValueProblem } from './tags';

const GPU_TYPES = ['nvidia.com/gpu', 'amd.com/gpu'];
const OPS = ['', '==', '!=', '<', '<=', '>', '>='];

function pairs(text: string, separator: string): [string, string][] {
  return text
    .split('\n')
    .map(line => line.trim())
    .filter(Boolean)
    .map(line => {
      const at = line.indexOf(separator);
      return (at < 0 ? [line, ''] : [line.slice(0, at).trim(), line.slice(at + 1).trim()]) as [string, string];
    });
}

class SettingsBody extends Widget implements Dialog.IBodyWidget<StepSettings> {
  constructor(private readonly initial: StepSettings, defaultImage: string, private readonly parameters: readonly string[]) {
    super();
    this.addClass('kl-SettingsDialog');
    const s = initial;
    const gpuType = GPU_TYPES.find(type => s.limits[type]) ?? '';
    const field = (label: string, input: HTMLElement, help = '') =>
      h('label', { class: 'kl-Field' }, h('span', {}, label), input, help ? h('small', {}, help) : null);
    const text = (name: string, value: string, placeholder = '') =>
      (this.inputs[name] = h('input', { type: 'text', name, value, placeholder, 'aria-label': name }));
    const select = (name: string, value: string, options: [string, string][]) => {
      const node = h(
        'select',
        { name, 'aria-label': name },
        options.map(([v, label]) => h('option', { value: v, selected: v === value ? 'selected' : false }, label))
      );
      node.value = value;
      this.inputs[name] = node;
      return node;
    };
    const area = (name: string, value: string, placeholder: string) =>
      (this.inputs[name] = h('textarea', { name, rows: 3, placeholder, 'aria-label': name }, value));

    const tabs: [string, HTMLElement][] = [
      [
        'Resources',
        h(
          'div',
          {},
          field('Image', text('image', s.image, defaultImage || 'pipeline default'), 'container image for this step'),
          field('CPU request', text('cpu_request', s.requests.cpu ?? '', 'e.g. 500m')),
          field('CPU limit', text('cpu_limit', s.limits.cpu ?? '', 'e.g. 2')),
          field('Memory request', text('memory_request', s.requests.memory ?? '', 'e.g. 1Gi')),
          field('Memory limit', text('memory_limit', s.limits.memory ?? '', 'e.g. 4Gi')),
          field(
            'GPU',
            select('gpu_type', gpuType, [['', 'none'], ...GPU_TYPES.map(t => [t, t] as [string, string])])
          ),
          field('GPU count', text('gpu_count', gpuType ? s.limits[gpuType] : '', '1'))
        )
      ],
      [
        'Runtime',
        h(
          'div',
          {},
          field('Caching', select('cache', s.cache, [['', 'pipeline default'], ['enabled', 'enabled'], ['disabled', 'disabled']])),
          field('Retries', text('retries', s.retries, '0'), 'retry a failed step up to N times'),
          field('Extra packages', text('packages', s.packages, 'e.g. xgboost,lightgbm'), 'pip packages the code needs indirectly')
        )
      ],
      [
        'Fan-out & condition',
        h(
          'div',
          {},
          field('For each', text('foreach_item', s.foreach?.item ?? '', 'item name, e.g. seed')),
          field('…of the list', text('foreach_items', s.foreach?.items ?? '', 'a list parameter or variable, e.g. seeds')),
          field('Parallelism', text('parallelism', s.parallelism, 'all at once'), 'at most N iterations at a time'),
          field('Run only when', text('when_name', s.when?.name ?? '', 'a parameter or variable, e.g. accuracy')),
          field('is', select('when_op', s.when?.op ?? '', OPS.map(op => [op, op || 'true (no comparison)'] as [string, string]))),
          field('than / to', text('when_value', s.when?.value ?? '', 'a Python literal or a parameter, e.g. 0.9')),
          this.whenProblem
        )
      ],
      [
        'Environment',
        h(
          'div',
          {},
          field('Environment variables', area('env', s.env.map(([k, v]) => `${k}=${v}`).join('\n'), 'NAME=value, one a line')),
          field(
            'Secrets',
            area('secrets', s.secrets.map(x => `${x.env}=${x.secret}/${x.key}`).join('\n'), 'ENV=secret-name/key, one a line'),
            'Kubernetes secret keys exposed as environment variables'
          ),
          field('Labels', area('labels', s.labels.map(([k, v]) => `${k}=${v}`).join('\n'), 'key=value, one a line')),
          field('Annotations', area('annotations', s.annotations.map(([k, v]) => `${k}=${v}`).join('\n'), 'key=value, one a line'))
        )
      ]
    ];
    const bar = h('div', { class: 'kl-Tabs', role: 'tablist' });
    const pages = h('div', { class: 'kl-TabPages' });
    tabs.forEach(([title, page], index) => {
      const button = h('button', { class: 'kl-Tab', role: 'tab', type: 'button' }, title);
      button.addEventListener('click', () => {
        bar.querySelectorAll('.kl-Tab').forEach(b => b.classList.remove('kl-mod-active'));
        pages.querySelectorAll(':scope > div').forEach(p => ((p as HTMLElement).hidden = true));
        button.classList.add('kl-mod-active');
        page.hidden = false;
      });
      page.hidden = index !== 0;
      if (index === 0) {
        button.classList.add('kl-mod-active');
      }
      bar.append(button);
      pages.append(page);
    });
    this.preview = h('div', { class: 'kl-TagPreview' });
    this.node.append(bar, pages, this.preview);
    this.node.addEventListener('input', () => this.showPreview());
    this.node.addEventListener('change', () => this.showPreview());
    this.showPreview();
  }

  getValue(): StepSettings {
    const v = (name: string) => (this.inputs[name]?.value ?? '').trim();
    const s: StepSettings = { ...emptySettings(), limits: { ...this.initial.limits }, requests: { ...this.initial.requests } };
    s.image = v('image');
    const setResource = (target: Record<string, string>, resource: string, value: string) => {
      if (value) {
        target[resource] = value;
      } else {
        delete target[resource];
      }
    };
    setResource(s.requests, 'cpu', v('cpu_request'));
    setResource(s.limits, 'cpu', v('cpu_limit'));
    setResource(s.requests, 'memory', v('memory_request'));
    setResource(s.limits, 'memory', v('memory_limit'));
    for (const type of GPU_TYPES) {
      delete s.limits[type];
    }
    if (v('gpu_type')) {
      setResource(s.limits, v('gpu_type'), v('gpu_count') || '1');
    }
    s.cache = v('cache') as StepSettings['cache'];
    s.retries = v('retries');
    s.packages = v('packages');
    s.foreach = v('foreach_item') || v('foreach_items') ? { item: v('foreach_item'), items: v('foreach_items') } : null;
    s.parallelism = v('parallelism');
    s.when = v('when_name') ? { name: v('when_name'), op: v('when_op'), value: v('when_value') } : null;
    s.env = pairs(v('env'), '=');
    s.labels = pairs(v('labels'), '=');
    s.annotations = pairs(v('annotations'), '=');
    s.secrets = pairs(v('secrets'), '=').map(([env, ref]) => {
      const slash = ref.lastIndexOf('/');
      return { env, secret: slash < 0 ? ref : ref.slice(0, slash), key: slash < 0 ? '' : ref.slice(slash + 1) };
    });
    return s;
  }

  private showPreview(): void {
    const value = this.getValue();
    const problem = value.when?.op ? whenValueProblem(value.when.value, this.parameters) : '';
    this.whenProblem.textContent = problem;
    this.whenProblem.hidden = !problem;
    this.inputs.when_value?.classList.toggle('kl-mod-invalid', problem !== '');
    // refused where it is typed: Apply stays off until the value compiles as meant
    const accept = this.node.closest('.jp-Dialog-content')?.querySelector<HTMLButtonElement>('.jp-mod-accept');
    if (accept) {
      accept.disabled = problem !== '';
      accept.title = problem;
    }
    const tags = settingsTags(value);
    const bad = tags.filter(tag => parseTag(tag) === null);
    this.preview.replaceChildren(...nodes(
      h('span', {}, 'Tags: '),
      ...tags.map(tag => h('code', { class: bad.includes(tag) ? 'kl-mod-invalid' : '' }, tag)),
      tags.length ? null : h('em', {}, 'none'),
      bad.length ? h('div', { class: 'kl-Invalid' }, `Not valid: ${bad.join(', ')} — the analyzer will say why.`) : null
    ));
  }

  protected onAfterAttach(): void {
    this.showPreview(); // the dialog's buttons exist now
  }

  private inputs: Record<string, HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement> = {};
  private preview: HTMLElement;
  private whenProblem: HTMLElement = h('div', { class: 'kl-Message kl-mod-error kl-WhenProblem', role: 'alert', hidden: true });
}

/** Ask for a step's settings; null when cancelled. */
export async function editStepSettings(
  step: string,
  settings: StepSettings,
  defaultImage: string,
  parameters: readonly string[]
): Promise<StepSettings | null> {
  const result = await showDialog<StepSettings>({
    title: `Step settings: ${step}`,
    body: new SettingsBody(settings, defaultImage, parameters),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Apply' })]
  });
  return result.button.accept ? result.value : null;
}
