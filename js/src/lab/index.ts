/**
 * The JupyterLab sidebar: task list (live through tasks/stream), the form that starts a plugin,
 * cancel and delete, the selected task's log, and the logging settings; and a task's log as a tab
 * of the main area (command nbtasklog:open-log), where it has room. Talks to the server only.
 */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { listIcon } from '@jupyterlab/ui-components';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import { SettingsView } from '../core/settings-view';
import { TaskListPanel } from '../core/task-list';
import { LogViewer } from '../core/viewer';
import { RestTransport } from './rest';

/** One task's log in the main area, as a closable tab. */
export class TaskLogTab extends Widget {
  private viewer: LogViewer;

  constructor(transport: RestTransport, readonly taskId: string) {
    super();
    this.id = `nbtasklog-log-${taskId}`;
    this.addClass('ntl-tab');
    this.title.label = `Log ${taskId.slice(-6)}`;
    this.title.caption = `Log of task ${taskId}`;
    this.title.icon = listIcon;
    this.title.closable = true;
    const host = this.node.ownerDocument.createElement('div');
    host.className = 'ntl-fill';
    this.node.appendChild(host);
    this.viewer = new LogViewer(host, transport, taskId);
    // The task's plugin, once known, names the tab.
    void transport.task(taskId).then((task) => (this.title.label = `${task.plugin ?? 'task'} ${taskId.slice(-6)}`), () => undefined);
  }

  /** Closing the tab ends it: the viewer's socket and timers go too (the shell only detaches it). */
  protected onCloseRequest(msg: Message): void {
    super.onCloseRequest(msg);
    this.dispose();
  }

  dispose(): void {
    if (this.isDisposed) return;
    this.viewer.destroy();
    super.dispose();
  }
}

export class TaskLogSidebar extends Widget {
  private list: TaskListPanel | null = null;
  private viewer: LogViewer | null = null;
  private settingsView: SettingsView | null = null;
  private tasksArea: HTMLElement;
  private viewerArea: HTMLElement;
  private settingsArea: HTMLElement;
  private tabs: HTMLButtonElement[] = [];
  private tabButton: HTMLButtonElement;
  private viewerHost: HTMLElement;

  /** `openInTab(id)` shows a task's log in the main area. */
  constructor(private readonly transport: RestTransport, private readonly openInTab: (taskId: string) => void) {
    super();
    this.id = 'nbtasklog-sidebar';
    this.addClass('ntl-sidebar');
    this.title.caption = 'Task logs';
    this.title.icon = listIcon;
    this.node.setAttribute('role', 'region'); // found by role and name, like JupyterLab's own side panels
    this.node.setAttribute('aria-label', 'Task logs');
    const d = this.node.ownerDocument;
    const nav = d.createElement('div');
    nav.setAttribute('role', 'tablist');
    nav.setAttribute('aria-label', 'nbtasklog views');
    nav.className = 'ntl-sidebar-nav';
    for (const [name, label] of [['tasks', 'Tasks'], ['settings', 'Settings']]) {
      const tab = d.createElement('button');
      tab.type = 'button';
      tab.className = 'ntl-button';
      tab.setAttribute('role', 'tab');
      tab.textContent = label;
      tab.dataset.view = name;
      tab.id = `nbtasklog-tab-${name}`;
      tab.setAttribute('aria-controls', `nbtasklog-view-${name}`);
      tab.addEventListener('click', () => this.showView(name));
      this.tabs.push(tab);
      nav.appendChild(tab);
    }
    this.tasksArea = d.createElement('div');
    this.tasksArea.className = 'ntl-sidebar-tasks';
    this.viewerArea = d.createElement('div');
    this.viewerArea.className = 'ntl-sidebar-viewer';
    this.tabButton = d.createElement('button');
    this.tabButton.type = 'button';
    this.tabButton.className = 'ntl-button ntl-open-tab';
    this.tabButton.textContent = 'Open in a tab';
    this.tabButton.addEventListener('click', () => this.viewer && this.openInTab(this.viewer.taskId));
    this.viewerHost = d.createElement('div');
    this.viewerHost.className = 'ntl-fill';
    this.viewerArea.append(this.tabButton, this.viewerHost);
    this.settingsArea = d.createElement('div');
    this.settingsArea.className = 'ntl-sidebar-settings';
    for (const [area, name] of [[this.tasksArea, 'tasks'], [this.settingsArea, 'settings']] as const) {
      area.id = `nbtasklog-view-${name}`;
      area.setAttribute('role', 'tabpanel');
      area.setAttribute('aria-labelledby', `nbtasklog-tab-${name}`);
    }
    this.node.append(nav, this.tasksArea, this.viewerArea, this.settingsArea);
    this.showView('tasks');
  }

  showView(view: string): void {
    for (const tab of this.tabs) tab.setAttribute('aria-selected', String(tab.dataset.view === view));
    const tasks = view === 'tasks';
    this.tasksArea.hidden = !tasks;
    this.viewerArea.hidden = !tasks || this.viewer === null;
    this.settingsArea.hidden = tasks;
    if (tasks && !this.list) this.list = new TaskListPanel(this.tasksArea, this.transport, { onSelect: (t) => this.open(t.id) });
    if (!tasks) {
      this.settingsView?.destroy();
      this.settingsView = new SettingsView(this.settingsArea, this.transport);
    }
  }

  open(taskId: string): void {
    this.viewer?.destroy();
    this.viewer = new LogViewer(this.viewerHost, this.transport, taskId);
    this.tabButton.setAttribute('aria-label', `Open in a tab: the log of task ${taskId}`); // the visible text first (label in name)
    this.viewerArea.hidden = false;
  }

  dispose(): void {
    this.viewer?.destroy();
    this.list?.destroy();
    this.settingsView?.destroy();
    super.dispose();
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbtasklog:sidebar',
  description: 'Per-task logs: task list, log viewer and logging settings in the left sidebar.',
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    const transport = new RestTransport();
    const open = new Map<string, TaskLogTab>();
    app.commands.addCommand('nbtasklog:open-log', {
      label: 'Open a task log in a tab',
      describedBy: { args: { type: 'object', properties: { taskId: { type: 'string' } }, required: ['taskId'] } },
      execute: (args) => {
        if (typeof args.taskId !== 'string' || !args.taskId) throw new Error('nbtasklog:open-log needs {"taskId": "…"}');
        const taskId = args.taskId;
        let tab = open.get(taskId);
        if (!tab || tab.isDisposed) {
          tab = new TaskLogTab(transport, taskId);
          open.set(taskId, tab);
          tab.disposed.connect(() => open.delete(taskId));
          app.shell.add(tab, 'main');
        }
        app.shell.activateById(tab.id);
      },
    });
    const sidebar = new TaskLogSidebar(transport, (taskId) => void app.commands.execute('nbtasklog:open-log', { taskId }));
    app.shell.add(sidebar, 'left', { rank: 600 });
  },
};

export default plugin;
