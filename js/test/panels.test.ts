// The task list (live updates, start form from params_schema, cancel/delete, whose tasks) and the settings view (read-only).
import { afterEach, describe, expect, it } from 'vitest';
import { SettingsView } from '../src/core/settings-view';
import { TaskListPanel } from '../src/core/task-list';
import { RestTransport } from '../src/lab/rest';
import { WidgetTransport } from '../src/widget-transport';
import type { PluginInfo, SettingsInfo, TaskQuery, TaskService } from '../src/core/transport';
import type { TaskInfo } from '../src/core/types';

class FakeService implements TaskService {
  tasks: TaskInfo[] = [{ id: 't1', plugin: 'backup', status: 'SUCCESS', created_at: '2024-05-01T12:00:00+00:00', started_at: '2024-05-01T12:00:00+00:00', finished_at: '2024-05-01T12:00:03+00:00', progress: 1 }];
  started: [string, Record<string, unknown>][] = [];
  calls: string[] = [];
  changed!: (t: TaskInfo) => void;
  settings: SettingsInfo = { log_level: 'INFO', task_log_level: 'INFO', belief_scope_enabled: true, writable: true };
  /** Who asks, as task rows record it, and whether the server lists other users' tasks to them. */
  user: string | null = 'alice';
  othersVisible = true;
  /** As the server answers: newest id first, by status, plugin and user, the page before `before`. */
  listTasks = async (query: TaskQuery = {}) => {
    const limit = query.limit ?? 100;
    const owner = query.user ?? (this.othersVisible ? undefined : this.user);
    const tasks = this.tasks
      .filter((t) => (!query.status || t.status === query.status) && (!query.plugin || t.plugin === query.plugin) && (!query.before || t.id < query.before))
      .filter((t) => owner === undefined || t.username === owner)
      .sort((a, b) => (a.id < b.id ? 1 : -1))
      .slice(0, limit);
    this.calls.push(`list ${JSON.stringify(query)}`);
    return { tasks, cursor: tasks.length === limit ? tasks[tasks.length - 1].id : null, user: this.user, others_visible: this.othersVisible };
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

describe('TaskListPanel: whose tasks', () => {
  /** 300 tasks: the even ones alice's, every fourth bob's, the rest from before usernames were recorded. */
  const shared = () =>
    Array.from({ length: 300 }, (_, i): TaskInfo => ({
      id: `t${String(i).padStart(3, '0')}`, plugin: 'backup', status: i % 3 ? 'SUCCESS' : 'FAILED', created_at: '2024-05-01T12:00:00+00:00',
      username: i % 2 === 0 ? 'alice' : i % 4 === 1 ? 'bob' : null,
    }));
  const ids = (host: HTMLElement) => [...host.querySelectorAll<HTMLElement>('tbody tr')].map((tr) => tr.dataset.id!);
  const whose = (host: HTMLElement) => {
    const group = host.querySelector<HTMLElement>('[role=radiogroup][aria-label="Whose tasks"]')!;
    const radios = [...group.querySelectorAll<HTMLInputElement>('input[type=radio]')];
    // A radio's accessible name is the text of the label around it.
    const named = (name: string) => radios.find((r) => r.closest('label')!.textContent === name)!;
    return { group, radios, mine: named('My tasks'), all: named('All tasks') };
  };

  it('offers "My tasks" / "All tasks", asks for the user\'s tasks, pages and takes live changes within them, shows who ran each', async () => {
    const service = new FakeService();
    service.tasks = shared();
    const host = document.body.appendChild(document.createElement('div'));
    const panel = new TaskListPanel(host, service, { startForm: false });
    const { group, radios, mine, all } = whose(host);
    expect(group.hidden).toBe(true); // who asks is not known before the first answer
    await tick();
    expect(group.hidden).toBe(false);
    expect(group.closest('[role=group]')!.getAttribute('aria-label')).toBe('Filter tasks'); // in the filter bar
    expect(radios.map((r) => [r.closest('label')!.textContent, r.checked])).toEqual([['My tasks', false], ['All tasks', true]]);
    expect(new Set(radios.map((r) => r.name)).size).toBe(1); // one group: the arrow keys move between them
    expect(radios.every((r) => !r.disabled && r.tabIndex >= 0)).toBe(true);
    expect(service.calls).toEqual(['list {"limit":100}']); // "All tasks" by default
    expect(ids(host)).toHaveLength(100);

    // Who ran it: after the plugin's name, in the row's name too; nothing for a task from before.
    const row = (id: string) => host.querySelector<HTMLTableRowElement>(`tr[data-id=${id}]`)!;
    expect(row('t297').cells[1].textContent).toBe('backup by bob');
    expect(row('t297').getAttribute('aria-label')).toBe('Task backup FAILED by bob');
    expect(row('t298').querySelector('.ntl-task-user')!.textContent).toBe('by alice');
    expect(row('t299').cells[1].textContent).toBe('backup');
    expect(row('t299').getAttribute('aria-label')).toBe('Task backup SUCCESS');

    mine.click();
    await tick();
    expect(mine.checked).toBe(true);
    expect(service.calls.at(-1)).toBe('list {"user":"alice","limit":100}');
    const alices = service.tasks.filter((t) => t.username === 'alice').map((t) => t.id).sort().reverse();
    expect(ids(host)).toEqual(alices.slice(0, 100));
    const older = [...host.querySelectorAll('button')].find((b) => b.textContent === 'Show older tasks')!;
    older.click();
    await tick();
    expect(service.calls.at(-1)).toBe(`list {"user":"alice","limit":100,"before":"${alices[99]}"}`); // the older page keeps the filter
    expect(ids(host)).toEqual(alices);
    expect(older.hidden).toBe(true);

    service.changed({ id: 't900', plugin: 'backup', status: 'RUNNING', username: 'bob' });
    service.changed({ id: 't901', plugin: 'backup', status: 'RUNNING', username: null });
    expect(ids(host)).not.toContain('t900'); // another user's task stays out
    expect(ids(host)).not.toContain('t901');
    service.changed({ id: 't902', plugin: 'backup', status: 'RUNNING', username: 'alice' });
    expect(ids(host)[0]).toBe('t902');
    service.changed({ id: 't902', status: 'SUCCESS' } as TaskInfo); // a change without the username keeps it
    expect(row('t902').cells[0].textContent).toBe('SUCCESS');

    const status = host.querySelector('[aria-label="Tasks with status"]') as HTMLSelectElement;
    status.value = 'FAILED';
    status.dispatchEvent(new Event('change'));
    await tick();
    expect(service.calls.at(-1)).toBe('list {"status":"FAILED","user":"alice","limit":100}');
    expect(ids(host)).toEqual(service.tasks.filter((t) => t.username === 'alice' && t.status === 'FAILED').map((t) => t.id).sort().reverse());
    status.value = '';
    status.dispatchEvent(new Event('change'));

    all.click();
    await tick();
    expect(all.checked && !mine.checked).toBe(true);
    expect(service.calls.at(-1)).toBe('list {"limit":100}');
    expect(ids(host)).toContain('t297'); // bob's
    service.changed({ id: 't903', plugin: 'backup', status: 'RUNNING', username: 'bob' });
    expect(ids(host)[0]).toBe('t903');
    panel.destroy();
  });

  it('is not offered to a user who sees only their own tasks, nor when the server does not name the user', async () => {
    const service = new FakeService();
    service.tasks = shared();
    service.othersVisible = false;
    const host = document.body.appendChild(document.createElement('div'));
    let panel = new TaskListPanel(host, service, { startForm: false });
    await tick();
    expect(whose(host).group.hidden).toBe(true);
    expect(service.calls).toEqual(['list {"limit":100}']);
    expect(ids(host).every((id) => service.tasks.find((t) => t.id === id)!.username === 'alice')).toBe(true);
    service.changed({ id: 't900', plugin: 'backup', status: 'RUNNING', username: 'bob' });
    expect(ids(host)).not.toContain('t900'); // only theirs are listed: a change of another's stays out too
    service.changed({ id: 't901', plugin: 'backup', status: 'RUNNING', username: 'alice' });
    expect(ids(host)[0]).toBe('t901');
    panel.destroy();

    service.othersVisible = true;
    service.user = null;
    panel = new TaskListPanel(host, service, { startForm: false });
    await tick();
    expect(whose(host).group.hidden).toBe(true);
    expect(ids(host)).toContain('t297');
    service.changed({ id: 't902', plugin: 'backup', status: 'RUNNING', username: 'bob' });
    expect(ids(host)[0]).toBe('t902');
    panel.destroy();
  });

  it('goes back to all tasks when a later answer no longer offers the choice', async () => {
    const service = new FakeService();
    service.tasks = shared();
    const host = document.body.appendChild(document.createElement('div'));
    const panel = new TaskListPanel(host, service, { startForm: false });
    await tick();
    const { group, mine, all } = whose(host);
    mine.click();
    await tick();
    service.user = null;
    const status = host.querySelector('[aria-label="Tasks with status"]') as HTMLSelectElement;
    status.value = 'FAILED';
    status.dispatchEvent(new Event('change'));
    await tick();
    expect(group.hidden).toBe(true);
    expect(all.checked).toBe(true);
    expect(service.calls.slice(-2)).toEqual(['list {"status":"FAILED","user":"alice","limit":100}', 'list {"status":"FAILED","limit":100}']); // asked again
    expect(ids(host)).toContain('t297'); // bob's
    panel.destroy();
  });
});

describe('both hosts ask for one user\'s tasks', () => {
  it('the lab: GET tasks with user=NAME, the older page too', async () => {
    const urls: string[] = [];
    const settings = {
      baseUrl: 'http://host/', wsUrl: 'ws://host/', token: '', appendToken: false, init: {}, Request, Headers,
      fetch: async (request: Request) => {
        urls.push(request.url);
        return new Response(JSON.stringify({ tasks: [], cursor: null, user: 'alice', others_visible: true }), { headers: { 'Content-Type': 'application/json' } });
      },
    };
    const transport = new RestTransport(settings as never);
    expect(await transport.listTasks({ user: 'alice', limit: 100 })).toEqual({ tasks: [], cursor: null, user: 'alice', others_visible: true });
    await transport.listTasks({ status: 'FAILED', user: 'a b&c', before: 't100', limit: 100 });
    await transport.listTasks({ limit: 100 });
    expect(urls.map((url) => Object.fromEntries(new URL(url).searchParams))).toEqual([
      { limit: '100', user: 'alice' },
      { limit: '100', status: 'FAILED', user: 'a b&c', before: 't100' },
      { limit: '100' },
    ]);
    expect(urls.every((url) => new URL(url).pathname === '/nbtasklog/api/tasks')).toBe(true);
  });

  it('the widget: the tasks request carries user (widget.py\'s _tasks takes it)', () => {
    const sent: any[] = [];
    const transport = new WidgetTransport({ send: (content: unknown) => sent.push(content), on: () => undefined, off: () => undefined });
    void transport.listTasks({ user: 'alice', before: 't100', limit: 100 });
    expect(sent).toEqual([{ type: 'request', id: 1, method: 'tasks', args: { user: 'alice', before: 't100', limit: 100 } }]);
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
