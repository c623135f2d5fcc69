/**
 * jupyter-futures: a "Cluster" panel in JupyterLab's left sidebar.
 *
 *   INotebookTracker ── current notebook ──► ClusterConnection ── comm ──► kernel
 *                                                 │                 (jupyter_futures/labcomm.py)
 *                                                 ▼
 *                     ClusterPanel ◄── changed ── ClusterModel
 *
 * The panel follows the notebook that last had focus and talks to its kernel over a
 * Jupyter comm, so it needs no server extension and no extra port.
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { ClusterConnection } from './handler';
import { clusterIcon } from './icon';
import { ClusterModel } from './model';
import { ClusterPanel } from './panel';

const PLUGIN_ID = 'jupyter-futures:cluster';
const PANEL_ID = 'jupyter-futures-cluster';

namespace CommandIDs {
  export const show = 'jupyter-futures:show-cluster';
  export const refresh = 'jupyter-futures:refresh-cluster';
}

function activate(
  app: JupyterFrontEnd,
  notebooks: INotebookTracker,
  labShell: ILabShell | null,
  restorer: ILayoutRestorer | null,
  palette: ICommandPalette | null
): void {
  const model = new ClusterModel();
  const connection = new ClusterConnection(model);
  const panel = new ClusterPanel(model);
  panel.id = PANEL_ID;
  panel.title.icon = clusterIcon;
  panel.title.caption = 'jupyter_futures cluster';

  panel.visibilityChanged.connect((_, visible) => {
    connection.active = visible;
  });
  panel.refreshRequested.connect(() => connection.refresh());
  panel.logsRequested.connect(() => connection.requestLogs());

  // Follow the notebook that last had focus, and its title through renames.
  let followed: NotebookPanel | null = null;
  const onTitle = () => model.setNotebook(followed?.title.label ?? '');
  const follow = (notebook: NotebookPanel | null) => {
    followed?.title.changed.disconnect(onTitle);
    followed = notebook;
    followed?.title.changed.connect(onTitle);
    connection.follow(notebook?.sessionContext ?? null, notebook?.title.label ?? '');
  };
  notebooks.currentChanged.connect((_, notebook) => follow(notebook));
  follow(notebooks.currentWidget);

  app.shell.add(panel, 'left', { rank: 850 });
  restorer?.add(panel, PANEL_ID);

  app.commands.addCommand(CommandIDs.show, {
    label: 'Show Cluster Panel',
    caption: 'Show the jupyter_futures cluster of the current notebook',
    icon: clusterIcon,
    execute: () => {
      if (labShell) {
        labShell.activateById(PANEL_ID);
      } else {
        app.shell.activateById(PANEL_ID);
      }
    }
  });
  app.commands.addCommand(CommandIDs.refresh, {
    label: 'Refresh Cluster Panel',
    execute: () => connection.refresh()
  });
  palette?.addItem({ command: CommandIDs.show, category: 'jupyter_futures' });
  palette?.addItem({ command: CommandIDs.refresh, category: 'jupyter_futures' });
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Shows the live jupyter_futures cluster of the current notebook.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILabShell, ILayoutRestorer, ICommandPalette],
  activate
};

export default plugin;
