/**
 * The task list (with the form that starts a plugin) and the settings view, framework-free like the
 * viewer: the JupyterLab sidebar and the TaskList / SettingsPanel widgets mount them on a TaskService.
 */
import { duration, el, errorText, option, seconds, showNote } from './format';
import { LEVELS } from './levels';
import { injectStyles } from './style';
import type { PluginInfo, SettingsInfo, TaskQuery, TaskService } from './transport';
import { ACTIVE_STATUSES, STATUSES, type TaskInfo } from './types';

function button(doc: Document, text: string, label: string, action: () => void, signal: AbortSignal): HTMLButtonElement {
  const b = el(doc, 'button', 'ntl-button', text);
  b.type = 'button';
  b.setAttribute('aria-label', label);
  b.addEventListener('click', action, { signal });
  return b;
}

function localStart(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export interface TaskListOptions {
  /** Called with the task the user opens (click, Enter); the host shows its log. */
  onSelect?: (task: TaskInfo) => void;
  /** Show the form that starts a plugin. */
  startForm?: boolean;
}

const PAGE = 100; // tasks per page of the list ("Show older tasks" loads the next)

export class TaskListPanel {
  readonly root: HTMLElement;
  tasks = new Map<string, TaskInfo>();
  selected: string | null = null;
  private body: HTMLTableSectionElement;
  private note: HTMLElement;
  private statusFilter: HTMLSelectElement;
  private pluginFilter: HTMLSelectElement;
  private older: HTMLButtonElement;
  /** The next page's cursor (null: every matching task is in the list). */
  private cursor: string | null = null;
  private loading = 0; // a newer reload makes an older one's answer stale
  private abort = new AbortController();
  private unwatch: () => void = () => undefined;
  private timer: ReturnType<typeof setInterval>;
  private doc: Document;

  constructor(host: HTMLElement, readonly service: TaskService, private readonly options: TaskListOptions = {}) {
    this.doc = host.ownerDocument;
    injectStyles(this.doc);
    const d = this.doc;
    this.root = el(d, 'div', 'ntl-panel ntl-tasks');
    host.appendChild(this.root);
    if (options.startForm !== false) this.root.appendChild(new StartForm(d, service, this.abort.signal, (t) => this.upsert(t), (m) => this.say(m, true)).root);
    this.root.appendChild(el(d, 'h3', undefined, 'Tasks'));
    // Which tasks the list shows: answered by the server (or kernel), so older tasks are found too.
    const filters = el(d, 'div', 'ntl-task-filters');
    filters.setAttribute('role', 'group');
    filters.setAttribute('aria-label', 'Filter tasks');
    this.statusFilter = el(d, 'select');
    this.statusFilter.setAttribute('aria-label', 'Tasks with status');
    this.statusFilter.append(option(d, 'All statuses', ''), ...STATUSES.map((name) => option(d, name, name)));
    this.pluginFilter = el(d, 'select');
    this.pluginFilter.setAttribute('aria-label', 'Tasks of plugin');
    this.pluginFilter.append(option(d, 'All plugins', ''));
    for (const select of [this.statusFilter, this.pluginFilter]) select.addEventListener('change', () => void this.load(), { signal: this.abort.signal });
    filters.append(this.statusFilter, this.pluginFilter);
    this.root.appendChild(filters);
    void service.plugins().then((plugins) => this.addPluginNames(plugins.map((p) => p.name)), () => undefined);
    const table = el(d, 'table', 'ntl-task-table');
    table.setAttribute('aria-label', 'Tasks');
    const head = el(d, 'thead');
    const hr = el(d, 'tr');
    for (const name of ['Status', 'Plugin', 'Started', 'Duration', 'Progress', 'Actions']) hr.appendChild(el(d, 'th', `ntl-col-${name.toLowerCase()}`, name));
    head.appendChild(hr);
    this.body = el(d, 'tbody');
    table.append(head, this.body);
    this.older = button(d, 'Show older tasks', 'Show older tasks', () => void (this.cursor !== null && this.load(this.cursor)), this.abort.signal);
    this.older.hidden = true;
    this.note = el(d, 'div', 'ntl-note');
    this.note.setAttribute('role', 'status');
    this.root.append(table, this.older, this.note);
    this.unwatch = service.watchTasks((t) => this.upsert(t), (id) => this.remove(id));
    void this.load();
    this.timer = setInterval(() => this.tickDurations(), 1000);
  }

  /** The filters chosen above the list. */
  query(): TaskQuery {
    return { status: this.statusFilter.value || undefined, plugin: this.pluginFilter.value || undefined, limit: PAGE };
  }

  /**
   * The first page of the tasks the filters choose, or with `before` (the cursor) the next, older page
   * added to those shown. A reload makes the answer of any earlier load stale.
   */
  async load(before?: string): Promise<void> {
    const call = before === undefined ? ++this.loading : this.loading;
    try {
      const page = await this.service.listTasks({ ...this.query(), before });
      if (call !== this.loading) return; // the filters changed meanwhile
      if (before === undefined) this.tasks = new Map();
      for (const t of page.tasks) if (!this.tasks.has(t.id)) this.tasks.set(t.id, t);
      this.cursor = page.cursor;
      this.addPluginNames(page.tasks.map((t) => t.plugin));
      this.render();
    } catch (error) {
      this.say(errorText(error), true);
    }
  }

  private matches(task: TaskInfo): boolean {
    const { status, plugin } = this.query();
    return (!status || task.status === status) && (!plugin || task.plugin === plugin);
  }

  /** Plugin names for the filter: the registered ones and any a task ran (a notebook's own, say). */
  private addPluginNames(names: (string | undefined)[]): void {
    const known = new Set([...this.pluginFilter.options].map((o) => o.value));
    for (const name of names) {
      if (!name || known.has(name)) continue;
      known.add(name);
      this.pluginFilter.appendChild(option(this.doc, name, name));
    }
  }

  upsert(task: TaskInfo): void {
    const merged = { ...(this.tasks.get(task.id) ?? {}), ...task };
    this.addPluginNames([merged.plugin]);
    // A change can take a task into the filters or out of them (RUNNING → SUCCESS under "RUNNING").
    if (this.matches(merged)) this.tasks.set(task.id, merged);
    else this.tasks.delete(task.id);
    this.render();
  }

  remove(id: string): void {
    this.tasks.delete(id);
    if (this.selected === id) this.selected = null;
    this.render();
  }

  select(id: string): void {
    this.selected = id;
    this.render();
    const task = this.tasks.get(id);
    if (task) this.options.onSelect?.(task);
  }

  private render(): void {
    const d = this.doc;
    const signal = this.abort.signal;
    const rows = [...this.tasks.values()].sort((a, b) => (a.id < b.id ? 1 : -1));
    this.body.replaceChildren(
      ...rows.map((t) => {
        const tr = el(d, 'tr');
        tr.dataset.id = t.id;
        tr.tabIndex = 0;
        tr.setAttribute('aria-selected', String(t.id === this.selected));
        tr.setAttribute('aria-label', `Task ${t.plugin} ${t.status}`);
        const status = el(d, 'td', `ntl-status ntl-status-${t.status}`, t.status);
        const started = el(d, 'td', 'ntl-col-started', localStart(t.started_at ?? t.created_at));
        const took = el(d, 'td', 'ntl-took');
        const s = seconds(t.started_at, t.finished_at);
        took.textContent = s === null ? '' : duration(s);
        const progress = el(d, 'td');
        if (t.progress !== null && t.progress !== undefined) {
          const bar = el(d, 'div', 'ntl-progress');
          bar.setAttribute('role', 'progressbar');
          bar.setAttribute('aria-label', 'Progress');
          bar.setAttribute('aria-valuenow', String(Math.round(t.progress * 100)));
          const fill = el(d, 'div', 'ntl-progress-bar');
          fill.style.width = `${Math.round(t.progress * 100)}%`;
          bar.appendChild(fill);
          progress.appendChild(bar);
        }
        const actions = el(d, 'td');
        if (ACTIVE_STATUSES.has(t.status)) {
          actions.appendChild(button(d, 'Cancel', `Cancel task ${t.id}`, () => void this.act(() => this.service.cancelTask(t.id)), signal));
        } else {
          actions.appendChild(button(d, 'Delete', `Delete task ${t.id}`, () => void this.act(async () => {
            await this.service.deleteTask(t.id);
            this.remove(t.id);
          }), signal));
        }
        tr.append(status, el(d, 'td', undefined, t.plugin), started, took, progress, actions);
        tr.addEventListener('click', (e) => !(e.target as HTMLElement).closest('button') && this.select(t.id), { signal });
        tr.addEventListener('keydown', (e) => {
          if (e.target !== tr) return;
          if (e.key === 'Enter') this.select(t.id);
          if (e.key === 'ArrowDown') (tr.nextElementSibling as HTMLElement | null)?.focus();
          if (e.key === 'ArrowUp') (tr.previousElementSibling as HTMLElement | null)?.focus();
        }, { signal });
        return tr;
      }),
    );
    this.older.hidden = this.cursor === null;
    const filtered = Boolean(this.statusFilter.value || this.pluginFilter.value);
    const empty = filtered ? 'No task matches the filters.' : 'No tasks yet.';
    if (!rows.length) this.say(empty);
    else if (this.note.textContent === 'No tasks yet.' || this.note.textContent === 'No task matches the filters.') this.say('');
  }

  private tickDurations(): void {
    for (const tr of this.body.children) {
      const t = this.tasks.get((tr as HTMLElement).dataset.id!);
      if (t && ACTIVE_STATUSES.has(t.status)) {
        const s = seconds(t.started_at, t.finished_at);
        (tr.querySelector('.ntl-took') as HTMLElement).textContent = s === null ? '' : duration(s);
      }
    }
  }

  private async act(action: () => Promise<void>): Promise<void> {
    try {
      await action();
    } catch (error) {
      this.say(errorText(error), true);
    }
  }

  private say(message: string, isError = false): void {
    showNote(this.note, message, isError);
  }

  destroy(): void {
    this.abort.abort();
    this.unwatch();
    clearInterval(this.timer);
    this.root.remove();
  }
}

/** Choose a plugin, fill its parameters (from params_schema), start it. */
class StartForm {
  readonly root: HTMLFormElement;
  private plugins: PluginInfo[] = [];
  private fields: HTMLElement;
  private select: HTMLSelectElement;

  constructor(private doc: Document, service: TaskService, signal: AbortSignal, started: (t: TaskInfo) => void, fail: (m: string) => void) {
    const d = doc;
    this.root = el(d, 'form', 'ntl-start');
    this.root.setAttribute('aria-label', 'Start a task');
    this.root.appendChild(el(d, 'h3', undefined, 'Start a task'));
    this.fields = el(d, 'div', 'ntl-form');
    this.select = el(d, 'select');
    this.select.setAttribute('aria-label', 'Plugin');
    this.select.addEventListener('change', () => this.renderFields(), { signal });
    const submit = el(d, 'button', 'ntl-button', 'Start');
    submit.type = 'submit';
    this.root.append(this.select, this.fields, submit);
    this.root.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        const task = await service.startTask(this.select.value, this.params());
        started(task);
      } catch (error) {
        fail(errorText(error));
      }
    }, { signal });
    service.plugins().then((plugins) => {
      this.plugins = plugins;
      this.select.replaceChildren(...plugins.map((p) => option(this.doc, p.name, p.name)));
      this.renderFields();
    }, (error) => fail(String(error?.message ?? error)));
  }

  private get plugin(): PluginInfo | undefined {
    return this.plugins.find((p) => p.name === this.select.value);
  }

  private renderFields(): void {
    const d = this.doc;
    const props = this.plugin?.params_schema?.properties ?? {};
    const children: HTMLElement[] = [];
    if (this.plugin?.description) {
      const p = el(d, 'div', 'ntl-note', this.plugin.description);
      p.style.gridColumn = '1 / -1';
      children.push(p);
    }
    for (const [name, schema] of Object.entries(props)) {
      const label = el(d, 'label', undefined, schema.title ?? name);
      let input: HTMLInputElement | HTMLSelectElement;
      if (schema.enum) {
        input = el(d, 'select');
        for (const v of schema.enum) input.appendChild(option(d, String(v), JSON.stringify(v)));
        if (schema.default !== undefined) input.value = JSON.stringify(schema.default);
      } else {
        input = el(d, 'input');
        if (schema.type === 'boolean') {
          input.type = 'checkbox';
          input.checked = Boolean(schema.default);
        } else {
          input.type = schema.type === 'integer' || schema.type === 'number' ? 'number' : 'text';
          if (schema.type === 'number') input.step = 'any';
          const d0 = schema.default;
          input.value = d0 === undefined || d0 === null ? '' : typeof d0 === 'object' ? JSON.stringify(d0) : String(d0);
          if (schema.type === 'array' || schema.type === 'object') input.placeholder = schema.type === 'array' ? '[1, 2, 3]' : '{"key": "value"}';
        }
      }
      input.name = name;
      input.dataset.type = schema.type ?? 'string';
      input.setAttribute('aria-label', schema.title ?? name);
      if (schema.description) input.title = schema.description;
      const id = `ntl-param-${name}-${Math.random().toString(36).slice(2)}`;
      input.id = id;
      label.htmlFor = id;
      children.push(label, input);
    }
    this.fields.replaceChildren(...children);
  }

  /** The parameters typed as the schema says; bad JSON is reported by startTask's caller. */
  params(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const input of this.fields.querySelectorAll<HTMLInputElement | HTMLSelectElement>('input, select')) {
      const type = input.dataset.type;
      if (input instanceof HTMLSelectElement) out[input.name] = JSON.parse(input.value);
      else if (type === 'boolean') out[input.name] = input.checked;
      else if (input.value === '') continue;
      else if (type === 'integer' || type === 'number') out[input.name] = Number(input.value);
      else if (type === 'array' || type === 'object') {
        try {
          out[input.name] = JSON.parse(input.value);
        } catch {
          throw new Error(`${input.name}: not valid JSON`);
        }
      } else out[input.name] = input.value;
    }
    return out;
  }
}

/** Log level, task log level, belief_scope (US4); read-only for users the server does not allow to write. */
export class SettingsView {
  readonly root: HTMLFormElement;
  private abort = new AbortController();
  private note: HTMLElement;
  private controls: { log_level: HTMLSelectElement; task_log_level: HTMLSelectElement; belief_scope_enabled: HTMLInputElement };

  constructor(host: HTMLElement, readonly service: TaskService) {
    const d = host.ownerDocument;
    injectStyles(d);
    this.root = el(d, 'form', 'ntl-panel ntl-settings');
    this.root.setAttribute('aria-label', 'Logging settings');
    this.root.appendChild(el(d, 'h3', undefined, 'Logging settings'));
    const grid = el(d, 'div', 'ntl-form');
    const levelSelect = (label: string) => {
      const s = el(d, 'select');
      s.setAttribute('aria-label', label);
      for (const l of LEVELS) s.appendChild(option(d, l, l));
      grid.append(el(d, 'span', undefined, label), s);
      return s;
    };
    const log_level = levelSelect('Log level');
    const task_log_level = levelSelect('Task log level');
    const belief = el(d, 'input');
    belief.type = 'checkbox';
    belief.setAttribute('aria-label', 'belief_scope logging');
    grid.append(el(d, 'span', undefined, 'belief_scope logging'), belief);
    const actions = el(d, 'div', 'ntl-form-actions');
    const save = el(d, 'button', 'ntl-button', 'Save');
    save.type = 'submit';
    actions.appendChild(save);
    grid.appendChild(actions);
    this.note = el(d, 'div', 'ntl-note');
    this.note.setAttribute('role', 'status');
    this.root.append(grid, this.note);
    host.appendChild(this.root);
    this.controls = { log_level, task_log_level, belief_scope_enabled: belief };
    this.root.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.save();
    }, { signal: this.abort.signal });
    void this.load();
  }

  async load(): Promise<void> {
    try {
      this.show(await this.service.getSettings());
    } catch (error) {
      this.say(errorText(error), true);
    }
  }

  private show(s: SettingsInfo): void {
    const c = this.controls;
    c.log_level.value = s.log_level;
    c.task_log_level.value = s.task_log_level;
    c.belief_scope_enabled.checked = s.belief_scope_enabled;
    for (const control of [...Object.values(c), this.root.querySelector('button')!]) (control as HTMLInputElement).disabled = !s.writable;
    this.say(s.writable ? '' : 'Read-only: you are not allowed to change the settings.');
  }

  async save(): Promise<void> {
    const c = this.controls;
    try {
      this.show(await this.service.putSettings({ log_level: c.log_level.value, task_log_level: c.task_log_level.value, belief_scope_enabled: c.belief_scope_enabled.checked }));
      this.say('Saved; running tasks use it now.');
    } catch (error) {
      this.say(errorText(error), true);
    }
  }

  private say(message: string, isError = false): void {
    showNote(this.note, message, isError);
  }

  destroy(): void {
    this.abort.abort();
    this.root.remove();
  }
}
