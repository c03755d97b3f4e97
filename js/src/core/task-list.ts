/**
 * The task list: a page of tasks by status, plugin and whose they are asked of the TaskService (older
 * pages by a keyset cursor), live changes kept within its filters, who ran each task, cancel and
 * delete, and the form that starts a plugin above it. The JupyterLab sidebar and the TaskList widget mount it.
 */
import { button, duration, el, errorText, option, seconds, showNote } from './format';
import { StartForm } from './start-form';
import { injectStyles } from './style';
import type { TaskQuery, TaskService } from './transport';
import { ACTIVE_STATUSES, STATUSES, type TaskInfo } from './types';

function localStart(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

let radioGroups = 0; // each list's radios get a group name of their own (a page can hold several lists)

/** A radio button of group `name`, named by the label around it. */
function radio(doc: Document, name: string, text: string, checked: boolean): [HTMLLabelElement, HTMLInputElement] {
  const input = el(doc, 'input');
  input.type = 'radio';
  input.name = name;
  input.checked = checked;
  const label = el(doc, 'label');
  label.append(input, doc.createTextNode(text));
  return [label, input];
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
  /** "My tasks" / "All tasks": offered when the server names the user and lists others' tasks too. */
  private whose: HTMLElement;
  private mine: HTMLInputElement;
  private everyone: HTMLInputElement;
  /** From the latest answer: the asking user's name as task rows record it (null: unknown)... */
  private user: string | null = null;
  /** ...and whether other users' tasks are listed to them (if not, the list holds only theirs). */
  private othersVisible = true;
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
    this.whose = el(d, 'div', 'ntl-whose');
    this.whose.setAttribute('role', 'radiogroup');
    this.whose.setAttribute('aria-label', 'Whose tasks');
    this.whose.hidden = true; // until an answer says who asks
    const group = `ntl-whose-${++radioGroups}`;
    const [mine, everyone] = [radio(d, group, 'My tasks', false), radio(d, group, 'All tasks', true)];
    [this.mine, this.everyone] = [mine[1], everyone[1]];
    this.whose.append(mine[0], everyone[0]);
    for (const control of [this.statusFilter, this.pluginFilter, this.mine, this.everyone]) control.addEventListener('change', () => void this.load(), { signal: this.abort.signal });
    filters.append(this.statusFilter, this.pluginFilter, this.whose);
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
    const user = this.mine.checked && this.user !== null ? this.user : undefined;
    return { status: this.statusFilter.value || undefined, plugin: this.pluginFilter.value || undefined, user, limit: PAGE };
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
      this.offerWhose(page.user ?? null, page.others_visible !== false);
      this.addPluginNames(page.tasks.map((t) => t.plugin));
      this.render();
    } catch (error) {
      this.say(errorText(error), true);
    }
  }

  /**
   * "My tasks" / "All tasks" only for a user the server names and shows others' tasks; without the
   * choice the list shows all the tasks it is given ("All tasks").
   */
  private offerWhose(user: string | null, othersVisible: boolean): void {
    this.user = user;
    this.othersVisible = othersVisible;
    const offered = user !== null && othersVisible;
    this.whose.hidden = !offered;
    if (offered || !this.mine.checked) return;
    this.everyone.checked = true;
    if (othersVisible) void this.load(); // the page held one user's tasks (with others hidden it still does)
  }

  private matches(task: TaskInfo): boolean {
    const { status, plugin, user } = this.query();
    // Without "My tasks", a user the server shows only their own tasks still gets only theirs.
    const owner = user ?? (this.othersVisible ? undefined : this.user ?? undefined);
    return (!status || task.status === status) && (!plugin || task.plugin === plugin) && (owner === undefined || task.username === owner);
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
        const by = t.username === null || t.username === undefined ? '' : `by ${t.username}`;
        tr.setAttribute('aria-label', `Task ${t.plugin} ${t.status}${by && ` ${by}`}`);
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
        // Who ran it, under the plugin's name: the narrow sidebar has no room for a column of its own.
        const plugin = el(d, 'td', undefined, t.plugin);
        if (by) plugin.append(d.createTextNode(' '), el(d, 'span', 'ntl-task-user', by));
        tr.append(status, plugin, started, took, progress, actions);
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
    const filtered = Boolean(this.statusFilter.value || this.pluginFilter.value || this.query().user);
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
