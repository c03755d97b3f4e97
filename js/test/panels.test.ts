// The task list (live updates, start form from params_schema, cancel/delete) and the settings view (read-only).
import { afterEach, describe, expect, it } from 'vitest';
import { SettingsView } from '../src/core/settings-view';
import { TaskListPanel } from '../src/core/task-list';
import type { PluginInfo, SettingsInfo, TaskQuery, TaskService } from '../src/core/transport';
import type { TaskInfo } from '../src/core/types';

class FakeService implements TaskService {
  tasks: TaskInfo[] = [{ id: 't1', plugin: 'backup', status: 'SUCCESS', created_at: '2024-05-01T12:00:00+00:00', started_at: '2024-05-01T12:00:00+00:00', finished_at: '2024-05-01T12:00:03+00:00', progress: 1 }];
  started: [string, Record<string, unknown>][] = [];
  calls: string[] = [];
  changed!: (t: TaskInfo) => void;
  settings: SettingsInfo = { log_level: 'INFO', task_log_level: 'INFO', belief_scope_enabled: true, writable: true };
  /** As the server answers: newest id first, by status and plugin, the page before `before`. */
  listTasks = async (query: TaskQuery = {}) => {
    const limit = query.limit ?? 100;
    const tasks = this.tasks
      .filter((t) => (!query.status || t.status === query.status) && (!query.plugin || t.plugin === query.plugin) && (!query.before || t.id < query.before))
      .sort((a, b) => (a.id < b.id ? 1 : -1))
      .slice(0, limit);
    this.calls.push(`list ${JSON.stringify(query)}`);
    return { tasks, cursor: tasks.length === limit ? tasks[tasks.length - 1].id : null };
  };
  watchTasks(changed: (t: TaskInfo) => void) {
    this.changed = changed;
    return () => undefined;
  }
  plugins = async (): Promise<PluginInfo[]> => [{ name: 'backup', description: 'Back up', params_schema: { properties: { dashboards: { type: 'integer', default: 5 }, dry: { type: 'boolean' }, ids: { type: 'array' } } } }];
  startTask = async (plugin: string, params: Record<string, unknown>) => {
    this.started.push([plugin, params]);
    return { id: 't2', plugin, status: 'PENDING' };
  };
  cancelTask = async (id: string) => void this.calls.push(`cancel ${id}`);
  deleteTask = async (id: string) => void this.calls.push(`delete ${id}`);
  getSettings = async () => this.settings;
  putSettings = async (changes: Partial<SettingsInfo>) => (this.settings = { ...this.settings, ...changes });
}

const tick = () => new Promise((r) => setTimeout(r, 0));
afterEach(() => document.body.replaceChildren());

describe('TaskListPanel', () => {
  it('lists tasks, updates them live, starts a plugin with typed params, cancels and deletes', async () => {
    const service = new FakeService();
    const host = document.body.appendChild(document.createElement('div'));
    const opened: string[] = [];
    const panel = new TaskListPanel(host, service, { onSelect: (t) => opened.push(t.id) });
    await tick();
    expect(host.querySelector('tbody tr td')!.textContent).toBe('SUCCESS');
    service.changed({ id: 't3', plugin: 'backup', status: 'RUNNING', progress: 0.25, started_at: new Date().toISOString() });
    const first = host.querySelector('tbody tr') as HTMLElement;
    expect(first.dataset.id).toBe('t3');
    expect(first.querySelector('[role=progressbar]')!.getAttribute('aria-valuenow')).toBe('25');
    (first.querySelector('button') as HTMLButtonElement).click();
    await tick();
    expect(service.calls.filter((c) => !c.startsWith('list'))).toEqual(['cancel t3']);
    (host.querySelector('tr[data-id=t1] button') as HTMLButtonElement).click();
    await tick();
    expect(service.calls.filter((c) => !c.startsWith('list'))).toEqual(['cancel t3', 'delete t1']);
    expect(host.querySelector('tr[data-id=t1]')).toBeNull();
    (host.querySelector('tr[data-id=t3]') as HTMLElement).click();
    expect(opened).toEqual(['t3']);

    const form = host.querySelector('form.ntl-start') as HTMLFormElement;
    expect((form.querySelector('[aria-label=dashboards]') as HTMLInputElement).value).toBe('5');
    (form.querySelector('[aria-label=dry]') as HTMLInputElement).checked = true;
    (form.querySelector('[aria-label=ids]') as HTMLInputElement).value = '[10, 11]';
    form.dispatchEvent(new Event('submit', { cancelable: true }));
    await tick();
    expect(service.started).toEqual([['backup', { dashboards: 5, dry: true, ids: [10, 11] }]]);
    expect(host.querySelector('tr[data-id=t2]')).not.toBeNull();
    panel.destroy();
  });
});

describe('TaskListPanel filters and pages', () => {
  it('asks for the tasks the filters choose, a page at a time, and keeps live changes within the filters', async () => {
    const service = new FakeService();
    const statuses = ['SUCCESS', 'FAILED', 'RUNNING'];
    service.tasks = Array.from({ length: 250 }, (_, i) => ({
      id: `t${String(i).padStart(3, '0')}`, plugin: i % 2 ? 'backup' : 'notebook_fn', status: statuses[i % 3], created_at: '2024-05-01T12:00:00+00:00',
    }));
    const host = document.body.appendChild(document.createElement('div'));
    const panel = new TaskListPanel(host, service, { startForm: false });
    await tick();
    const ids = () => [...host.querySelectorAll<HTMLElement>('tbody tr')].map((tr) => tr.dataset.id);
    const older = [...host.querySelectorAll('button')].find((b) => b.textContent === 'Show older tasks')!;
    expect(ids()).toHaveLength(100);
    expect(ids()[0]).toBe('t249');
    expect(older.hidden).toBe(false);
    older.click();
    await tick();
    older.click();
    await tick();
    expect(ids()).toHaveLength(250);
    expect(ids()[249]).toBe('t000');
    expect(older.hidden).toBe(true);

    const status = host.querySelector('[aria-label="Tasks with status"]') as HTMLSelectElement;
    const plugin = host.querySelector('[aria-label="Tasks of plugin"]') as HTMLSelectElement;
    expect([...plugin.options].map((o) => o.value)).toEqual(['', 'backup', 'notebook_fn']); // registered, then seen in tasks
    status.value = 'FAILED';
    status.dispatchEvent(new Event('change'));
    plugin.value = 'backup';
    plugin.dispatchEvent(new Event('change'));
    await tick();
    const failedBackups = service.tasks.filter((t) => t.status === 'FAILED' && t.plugin === 'backup').map((t) => t.id).sort().reverse();
    expect(ids()).toEqual(failedBackups);
    expect(service.calls.at(-1)).toBe('list {"status":"FAILED","plugin":"backup","limit":100}');
    service.changed({ id: 't300', plugin: 'backup', status: 'RUNNING' });
    expect(ids()).not.toContain('t300'); // not FAILED
    service.changed({ id: 't300', plugin: 'backup', status: 'FAILED' });
    expect(ids()[0]).toBe('t300'); // now it is
    service.changed({ id: failedBackups[0], status: 'INTERRUPTED' } as TaskInfo);
    expect(ids()).not.toContain(failedBackups[0]); // and this one no longer is
    status.value = 'CANCELLED';
    status.dispatchEvent(new Event('change'));
    await tick();
    expect(ids()).toEqual([]);
    expect(host.querySelector('.ntl-note')!.textContent).toBe('No task matches the filters.');
    panel.destroy();
  });
});

describe('SettingsView', () => {
  it('saves changes when allowed', async () => {
    const service = new FakeService();
    const view = new SettingsView(document.body, service);
    await tick();
    const level = document.querySelector('[aria-label="Task log level"]') as HTMLSelectElement;
    level.value = 'WARNING';
    view.root.dispatchEvent(new Event('submit', { cancelable: true }));
    await tick();
    expect(service.settings.task_log_level).toBe('WARNING');
    expect(document.querySelector('.ntl-settings .ntl-note')!.textContent).toContain('Saved');
  });

  it('is read-only for users the server does not allow to write', async () => {
    const service = new FakeService();
    service.settings.writable = false;
    new SettingsView(document.body, service);
    await tick();
    for (const label of ['Log level', 'Task log level', 'belief_scope logging']) {
      expect((document.querySelector(`[aria-label="${label}"]`) as HTMLInputElement).disabled, label).toBe(true);
    }
    expect(document.querySelector('.ntl-settings button')!.hasAttribute('disabled')).toBe(true);
    expect(document.querySelector('.ntl-settings .ntl-note')!.textContent).toContain('Read-only');
  });
});
