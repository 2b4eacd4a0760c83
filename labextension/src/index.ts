/**
 * kale_like's JupyterLab extension: the "Pipeline" sidebar panel and the step editor on each code
 * cell of a notebook. Activation only builds the (empty) panel and hooks the notebook tracker:
 * nothing is fetched and no dialog is shown until a notebook is opened, and analysis runs in the
 * server extension (no kernel is started).
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { request } from './api';
import { CellBars } from './cellbar';
import { NotebookPipeline } from './notebook';
import { DEFAULT_SETTINGS, PanelSettings, PipelinePanel } from './panel';

const PLUGIN_ID = 'kale-like:plugin';

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Tag notebook cells as Kubeflow pipeline steps, see the graph, compile, run, upload and schedule.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ISettingRegistry, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    registry: ISettingRegistry | null,
    restorer: ILayoutRestorer | null
  ) => {
    const panel = new PipelinePanel(app);
    app.shell.add(panel, 'left', { rank: 650 });
    restorer?.add(panel, panel.id);

    const open = new Map<NotebookPanel, { pipeline: NotebookPipeline; bars: CellBars }>();
    const enableByDefault = () => panel.settings.enableByDefault;
    const defaultImage = () => panel.settings.defaultImage;
    let asked = false;
    const askServer = () => {
      if (!asked) {
        asked = true;
        void request<{ environment_kfp_host: string }>('info').then(result => {
          if (result.ok && result.data.environment_kfp_host) {
            panel.environmentHost = result.data.environment_kfp_host;
            panel.applySettings(panel.settings);
          }
        });
      }
    };

    const track = (notebook: NotebookPanel) => {
      void notebook.context.ready.then(() => {
        if (notebook.isDisposed || open.has(notebook)) {
          return;
        }
        const pipeline = new NotebookPipeline(notebook, enableByDefault);
        const bars = new CellBars(pipeline, defaultImage);
        open.set(notebook, { pipeline, bars });
        notebook.disposed.connect(() => {
          bars.dispose();
          pipeline.dispose();
          open.delete(notebook);
          if (panel.pipeline === pipeline) {
            panel.setNotebook(null);
          }
        });
        askServer();
        if (pipeline.enabled) {
          pipeline.scheduleAnalysis(0); // problems show on their cells even with the panel closed
        }
        if (tracker.currentWidget === notebook) {
          panel.setNotebook(pipeline);
        }
      });
    };
    tracker.forEach(track);
    tracker.widgetAdded.connect((_, notebook) => track(notebook));
    tracker.currentChanged.connect((_, notebook) => {
      panel.setNotebook(notebook ? open.get(notebook)?.pipeline ?? null : null);
    });

    if (registry) {
      void registry.load(PLUGIN_ID).then(
        settings => {
          const read = (): PanelSettings => ({
            ...DEFAULT_SETTINGS,
            ...(settings.composite as unknown as Partial<PanelSettings>)
          });
          panel.applySettings(read());
          settings.changed.connect(() => {
            panel.applySettings(read());
            for (const { bars } of open.values()) {
              bars.schedule();
            }
          });
          panel.onSettingChanged = (key, value) => {
            if ((settings.composite as Record<string, unknown>)[key] !== value) {
              void settings.set(key, value);
            }
          };
        },
        reason => console.warn('kale_like: settings not loaded', reason)
      );
    }
  }
};

export default plugin;
