import { LabIcon } from '@jupyterlab/ui-components';

/** Three connected boxes: a pipeline. */
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <rect x="2" y="2" width="8" height="6" rx="1.5"/>
    <rect x="14" y="9" width="8" height="6" rx="1.5"/>
    <rect x="2" y="16" width="8" height="6" rx="1.5"/>
    <path d="M6 8v2.2h5.5V12H14v-1.2H12.6V10.2H7V8zM6 16v-2.2h5.5V12H14v1.2h-1.4v.6H7V16z"/>
  </g>
</svg>`;

export const pipelineIcon = new LabIcon({ name: 'kale-like:pipeline', svgstr: svg });
