/**
 * kale_like's JupyterLab extension: the "Pipeline" sidebar panel and the step editor on each code
 * cell of a notebook. Activation only builds the (empty) panel and hooks the notebook tracker:
 * nothing is fetched and no dialog is shown until a notebook is opened, and analysis runs in the
 * server extension (no kernel is started).
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { request } from './api';
import { CellBars } from './cellbar';
import { NotebookPipeline } from './notebook';
import { DEFAULT_SETTINGS, PanelSettings, PipelinePanel } from './panel';

const PLUGIN_ID = 'kale-like:plugin';

/** Commands (palette category "Pipeline"; default shortcuts in schema/plugin.json). */
const COMMANDS = {
  openPanel: 'kale-like:open-panel',
  compile: 'kale-like:compile',
  run: 'kale-like:run-locally',
  stop: 'kale-like:stop-run'
};

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Tag notebook cells as Kubeflow pipeline steps, see the graph, compile, run, upload and schedule.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ISettingRegistry, ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    registry: ISettingRegistry | null,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ) => {
    const panel = new PipelinePanel(app);
    app.shell.add(panel, 'left', { rank: 650 });
    restorer?.add(panel, panel.id);
    addCommands(app, panel, palette);

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

/** The panel's actions as commands, so the palette and keyboard shortcuts reach them. */
function addCommands(app: JupyterFrontEnd, panel: PipelinePanel, palette: ICommandPalette | null): void {
  const show = () => app.shell.activateById(panel.id);
  app.commands.addCommand(COMMANDS.openPanel, {
    label: 'Open the Pipeline panel',
    caption: 'The pipeline graph, Compile and Run locally for the active notebook',
    execute: show
  });
  const action = (id: string, label: string, can: () => boolean, run: () => Promise<void>) =>
    app.commands.addCommand(id, {
      label,
      isEnabled: can,
      execute: () => {
        show(); // the result (or the reason it cannot start) shows in the panel
        return run();
      }
    });
  action(COMMANDS.compile, 'Compile the notebook to a Kubeflow pipeline', () => panel.canCompile, () => panel.compile());
  action(COMMANDS.run, 'Run the pipeline locally', () => panel.canRun, () => panel.runLocally());
  action(COMMANDS.stop, 'Stop the local pipeline run', () => panel.isRunning, () => panel.stopRun());
  panel.onActionsChanged = () => {
    for (const id of [COMMANDS.compile, COMMANDS.run, COMMANDS.stop]) {
      app.commands.notifyCommandChanged(id);
    }
  };
  for (const command of Object.values(COMMANDS)) {
    palette?.addItem({ command, category: 'Pipeline' });
  }
}

export default plugin;
