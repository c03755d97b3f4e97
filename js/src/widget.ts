/**
 * The anywidget front end: LogViewer, TaskList and SettingsPanel (widget.py) share this module;
 * the `kind` trait says which view to mount. Every listener is tied to the view's AbortSignal.
 */
import type { AnyModel, RenderProps } from '@anywidget/types';
import { SettingsView } from './core/settings-view';
import { TaskListPanel } from './core/task-list';
import { LogViewer } from './core/viewer';
import { WidgetTransport, type WidgetModel } from './widget-transport';

interface Model {
  kind: string;
  task_id: string;
  level: string;
}

function render({ model, el }: RenderProps<Model>): () => void {
  const abort = new AbortController();
  const transport = new WidgetTransport(model as unknown as AnyModel<Model> & WidgetModel, abort.signal);
  const kind = model.get('kind');
  const cleanups: (() => void)[] = [];
  el.classList.add('nbtasklog-widget');
  try {
    if (kind === 'viewer') {
      const viewer = new LogViewer(el, transport, model.get('task_id'), { level: model.get('level') || 'INFO' });
      cleanups.push(() => viewer.destroy());
    } else if (kind === 'tasks') {
      let viewer: LogViewer | null = null;
      const below = document.createElement('div');
      const list = new TaskListPanel(el, transport, {
        onSelect: (task) => {
          viewer?.destroy();
          viewer = new LogViewer(below, transport, task.id);
        },
      });
      el.appendChild(below);
      cleanups.push(() => viewer?.destroy(), () => list.destroy());
    } else if (kind === 'settings') {
      const view = new SettingsView(el, transport);
      cleanups.push(() => view.destroy());
    } else {
      el.textContent = `[nbtasklog] unknown widget kind ${JSON.stringify(kind)}`;
    }
  } catch (error) {
    console.error('[nbtasklog] widget failed to render', error);
    el.textContent = `[nbtasklog] ${String((error as Error)?.message ?? error)}`;
  }
  return () => {
    cleanups.forEach((f) => f());
    abort.abort();
  };
}

export default { render };
