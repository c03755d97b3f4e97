/**
 * LogViewer: one task's log with its header, filters, search and follow mode. Framework-free; the
 * widget and the JupyterLab sidebar both mount it on an element with a transport, and destroy() undoes all.
 */
import { FilterError, LogFilter, foldCase, makeFilter, type FilterSpec } from './filter';
import { duration, el, errorText, option, seconds, showNote } from './format';
import { LEVELS } from './levels';
import { FilteredView, RecordStore } from './records';
import { findMatches, recordText, renderRow } from './render';
import { injectStyles } from './style';
import type { LogStream, ViewerTransport } from './transport';
import { ACTIVE_STATUSES, type LogRecord, type TaskInfo, type TaskStats } from './types';
import { VirtualRows } from './virtual';

export interface ViewerOptions {
  /** Initial level filter (FR-010: INFO and above). */
  level?: string;
  /** For tests: the list viewport before layout. */
  initialRect?: { width: number; height: number };
  /** How often stats are re-read while the task runs, in ms. */
  statsInterval?: number;
}

export class LogViewer {
  readonly root: HTMLElement;
  store = new RecordStore();
  view: FilteredView;
  list!: VirtualRows;
  following = true;
  newWhilePaused = 0;
  task: TaskInfo | null = null;
  stats: TaskStats | null = null;
  private stream: LogStream;
  private streamFilter: LogFilter;
  private pending: RecordStore | null = null;
  private expanded = new Set<number>();
  private selectedSources: Set<string> | null = null;
  private match = { position: -1, occurrence: -1 };
  private focusedPosition = -1;
  private abort = new AbortController();
  private timers: ReturnType<typeof setInterval>[] = [];
  private programmaticScroll = 0;
  private frameRequest = 0;
  private addedSinceDraw = 0;
  private ui: Record<string, HTMLElement> = {};
  private sourceBoxes = new Map<string, HTMLInputElement>();
  private readonly doc: Document;

  constructor(readonly host: HTMLElement, readonly transport: ViewerTransport, readonly taskId: string, private readonly options: ViewerOptions = {}) {
    this.doc = host.ownerDocument;
    injectStyles(this.doc);
    this.root = el(this.doc, 'div', 'ntl-viewer');
    this.root.setAttribute('role', 'region'); // a landmark: aria-label alone on a generic div is not announced
    this.root.setAttribute('aria-label', `Log of task ${taskId}`);
    host.appendChild(this.root);
    this.buildHeader();
    this.buildToolbar();
    this.buildList();
    this.streamFilter = makeFilter(this.spec());
    this.view = new FilteredView(this.store, this.streamFilter);
    this.list.setCount(0);
    this.stream = transport.openStream(taskId, this.spec(), {
      records: (records) => this.onRecords(records),
      historyEnd: () => this.onHistoryEnd(),
      status: (task) => this.setTask(task),
      reset: () => {
        this.pending = new RecordStore();
      },
      end: () => void this.refreshStats(),
      error: (message) => this.say(message, true),
    });
    transport.task(taskId).then((t) => this.setTask(t), (e) => this.say(errorText(e), true));
    void this.refreshStats();
    this.timers.push(setInterval(() => this.tick(), 1000));
    this.timers.push(setInterval(() => this.task && ACTIVE_STATUSES.has(this.task.status) && void this.refreshStats(), options.statsInterval ?? 2000));
  }

  // ---- building -------------------------------------------------------------------------------
  private buildHeader(): void {
    const d = this.doc;
    const header = el(d, 'div', 'ntl-header');
    const status = el(d, 'span', 'ntl-status', '…');
    status.setAttribute('role', 'status');
    status.setAttribute('aria-label', 'Task status');
    const plugin = el(d, 'span', 'ntl-plugin');
    const progress = el(d, 'div', 'ntl-progress');
    progress.setAttribute('role', 'progressbar');
    progress.setAttribute('aria-label', 'Progress');
    progress.setAttribute('aria-valuemin', '0');
    progress.setAttribute('aria-valuemax', '100');
    const bar = el(d, 'div', 'ntl-progress-bar');
    progress.appendChild(bar);
    const took = el(d, 'span', 'ntl-duration');
    took.setAttribute('aria-label', 'Duration');
    const counts = el(d, 'span', 'ntl-counts');
    counts.setAttribute('aria-label', 'Records by level');
    const message = el(d, 'span', 'ntl-progress-message');
    header.append(status, plugin, progress, took, message, counts);
    this.root.appendChild(header);
    Object.assign(this.ui, { status, plugin, progress, bar, took, counts, progressMessage: message });
  }

  private buildToolbar(): void {
    const d = this.doc;
    const signal = this.abort.signal;
    const bar = el(d, 'div', 'ntl-toolbar');
    bar.setAttribute('role', 'toolbar');
    bar.setAttribute('aria-label', 'Log filters');

    const level = el(d, 'select', 'ntl-level-select');
    level.setAttribute('aria-label', 'Level');
    for (const name of LEVELS) level.appendChild(option(d, name === 'DEBUG' ? 'DEBUG and above' : `${name}${name === 'ERROR' ? '' : ' and above'}`, name));
    level.value = this.options.level ?? 'INFO';
    level.addEventListener('change', () => this.applyFilters(), { signal });

    // A disclosure button (aria-expanded), not <details>/<summary>: a summary has no ARIA role, so tools
    // that work by role and name (Playwright, the e2e tests) could neither find nor name it.
    const sources = el(d, 'div', 'ntl-sources');
    const summary = el(d, 'button', 'ntl-button ntl-sources-summary', 'Source: all'); // its text is its name: "Source: …"
    summary.type = 'button';
    const sourceList = el(d, 'div', 'ntl-source-list');
    sourceList.id = `ntl-sources-${Math.random().toString(36).slice(2)}`;
    sourceList.setAttribute('role', 'group');
    sourceList.setAttribute('aria-label', 'Source');
    summary.setAttribute('aria-controls', sourceList.id);
    const showSources = (open: boolean) => {
      sourceList.hidden = !open;
      summary.setAttribute('aria-expanded', String(open));
    };
    showSources(false);
    summary.addEventListener('click', () => showSources(sourceList.hidden), { signal });
    sourceList.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape') return;
      showSources(false);
      summary.focus();
    }, { signal });
    // Like a menu, the open list closes when the user clicks anywhere else (it covers the first rows).
    d.addEventListener('pointerdown', (e) => {
      if (!sourceList.hidden && !sources.contains(e.target as Node)) showSources(false);
    }, { signal, capture: true });
    sources.append(summary, sourceList);

    const searchBox = el(d, 'span', 'ntl-search');
    const search = el(d, 'input', 'ntl-search-input');
    search.type = 'search';
    search.placeholder = 'Search';
    search.setAttribute('aria-label', 'Search');
    let searchTimer: ReturnType<typeof setTimeout> | undefined;
    search.addEventListener('input', () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => this.applyFilters(), 150);
    }, { signal });
    search.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        clearTimeout(searchTimer);
        if (this.view.filter.search !== (search.value || null)) this.applyFilters();
        this.nextMatch(e.shiftKey ? -1 : 1);
      }
    }, { signal });
    const prev = this.button('↑', 'Previous match', () => this.nextMatch(-1));
    const next = this.button('↓', 'Next match', () => this.nextMatch(1));
    const matchCount = el(d, 'span', 'ntl-match-count');
    matchCount.setAttribute('aria-live', 'polite');
    searchBox.append(search, prev, next, matchCount);

    const meta = el(d, 'input', 'ntl-meta-input');
    meta.placeholder = 'key=value, …';
    meta.setAttribute('aria-label', 'Metadata filter');
    const listId = `ntl-keys-${Math.random().toString(36).slice(2)}`;
    const keys = el(d, 'datalist');
    keys.id = listId;
    meta.setAttribute('list', listId);
    meta.addEventListener('change', () => this.applyFilters(), { signal });
    meta.addEventListener('keydown', (e) => e.key === 'Enter' && this.applyFilters(), { signal });

    const errorsLabel = el(d, 'label', 'ntl-errors-only');
    const errors = el(d, 'input');
    errors.type = 'checkbox';
    errors.setAttribute('aria-label', 'Errors only');
    errors.addEventListener('change', () => this.applyFilters(), { signal });
    errorsLabel.append(errors, d.createTextNode(' Errors only'));

    const firstError = this.button('Jump to first error', 'Jump to first error', () => this.jumpToFirstError());
    const follow = this.button('Follow', 'Follow newest records', () => (this.following ? this.pause() : this.jumpToLatest()));
    follow.setAttribute('aria-pressed', 'true');
    const jsonl = this.button('JSONL', 'Download JSONL', () => void this.transport.download(this.taskId, this.spec(), 'jsonl').catch((e) => this.say(errorText(e), true)));
    const csv = this.button('CSV', 'Download CSV', () => void this.transport.download(this.taskId, this.spec(), 'csv').catch((e) => this.say(errorText(e), true)));

    bar.append(level, sources, searchBox, meta, keys, errorsLabel, firstError, follow, jsonl, csv);
    this.root.appendChild(bar);
    Object.assign(this.ui, { level, sources, summary, sourceList, search, matchCount, meta, keys, errors, follow });
  }

  private buildList(): void {
    const d = this.doc;
    const signal = this.abort.signal;
    const frame = el(d, 'div', 'ntl-frame');
    const scroll = el(d, 'div', 'ntl-scroll');
    scroll.tabIndex = 0;
    scroll.setAttribute('role', 'list');
    scroll.setAttribute('aria-label', 'Log records');
    const latest = this.button('', 'Jump to latest', () => this.jumpToLatest());
    latest.className = 'ntl-latest';
    latest.hidden = true;
    const note = el(d, 'div', 'ntl-note');
    note.setAttribute('role', 'status');
    // The list keeps the keyboard focus while the arrows move the current record: this says which it is.
    const current = el(d, 'div', 'ntl-sr-only');
    current.setAttribute('role', 'status');
    current.setAttribute('aria-label', 'Current record');
    const empty = el(d, 'div', 'ntl-empty', 'Loading…');
    frame.append(scroll, empty, latest);
    this.root.append(frame, note, current);
    Object.assign(this.ui, { scroll, latest, note, empty, current });
    this.list = new VirtualRows({
      scrollElement: scroll,
      rowHeight: 22, // a first guess: the list learns the stylesheet's height from its first row
      overscan: 10,
      count: 0,
      initialRect: this.options.initialRect,
      getKey: (i) => this.view.at(i)?.seq ?? -1 - i,
      indexOf: (seq) => this.view.positionOf(seq as number),
      isTall: (i) => this.expanded.has(this.view.at(i)?.seq ?? -1),
      renderRow: (row, i) => this.renderRow(row, i),
      onScroll: () => this.onScroll(),
    });
    scroll.addEventListener('wheel', (e) => e.deltaY < 0 && this.pause(), { signal, passive: true });
    scroll.addEventListener('keydown', (e) => this.onKey(e), { signal });
    scroll.addEventListener('click', (e) => this.onRowClick(e), { signal });
  }

  private button(text: string, label: string, action: () => void): HTMLButtonElement {
    const b = el(this.doc, 'button', 'ntl-button', text);
    b.type = 'button';
    b.setAttribute('aria-label', label);
    b.title = label;
    b.addEventListener('click', action, { signal: this.abort.signal });
    return b;
  }

  private renderRow(row: HTMLElement, position: number): void {
    const record = this.view.at(position);
    renderRow(row, record, {
      expanded: this.expanded.has(record.seq),
      searchLower: this.view.filter.searchLower,
      currentMatch: this.match.position === position ? this.match.occurrence : -1,
      focused: this.focusedPosition === position,
    });
  }

  // ---- filters ----------------------------------------------------------------------------------
  /** The filter the controls describe, in make_filter's terms. */
  spec(): FilterSpec {
    const ui = this.ui as Record<string, HTMLInputElement>;
    const meta = (ui.meta?.value ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    return {
      level: ui.level?.value ?? this.options.level ?? 'INFO',
      source: this.selectedSources ? [...this.selectedSources] : null,
      search: ui.search?.value || null,
      meta: meta.length ? meta : null,
      errors_only: ui.errors?.checked ?? false,
    };
  }

  /** Apply the controls: at once on the records held when the new filter is narrower, else also on the server. */
  applyFilters(): void {
    let filter: LogFilter;
    try {
      filter = makeFilter(this.spec());
    } catch (error) {
      if (!(error instanceof FilterError)) throw error;
      this.ui.meta.setAttribute('aria-invalid', 'true');
      this.say(error.message, true);
      return;
    }
    this.ui.meta.removeAttribute('aria-invalid');
    this.say('');
    if (filter.equals(this.view.filter)) return;
    this.view.setFilter(filter);
    this.match = { position: -1, occurrence: -1 };
    this.focusedPosition = -1;
    this.ui.current.textContent = ''; // no current record in the new view until the keyboard picks one
    this.redraw(true);
    if (!filter.narrows(this.streamFilter)) {
      this.streamFilter = filter;
      this.stream.setFilter(this.spec());
    }
  }

  setSources(sources: Iterable<string> | null): void {
    this.selectedSources = sources === null ? null : new Set(sources);
    for (const [name, box] of this.sourceBoxes) box.checked = this.selectedSources === null || this.selectedSources.has(name);
    this.updateSourceSummary();
    this.applyFilters();
  }

  private updateSourceSummary(): void {
    const s = this.selectedSources;
    this.ui.summary.textContent = s === null ? 'Source: all' : s.size === 1 ? `Source: ${[...s][0]}` : `Source: ${s.size} selected`;
  }

  private renderSources(): void {
    const counts = new Map<string, number>(Object.entries(this.stats?.sources ?? {}));
    for (const r of this.store.records.slice(-2000)) if (!counts.has(r.source)) counts.set(r.source, 0);
    const list = this.ui.sourceList;
    for (const [name, count] of [...counts].sort((a, b) => a[0].localeCompare(b[0]))) {
      let box = this.sourceBoxes.get(name);
      if (!box) {
        const label = el(this.doc, 'label', 'ntl-source-option');
        box = el(this.doc, 'input');
        box.type = 'checkbox';
        box.value = name;
        box.checked = this.selectedSources === null || this.selectedSources.has(name);
        box.addEventListener('change', () => {
          const all = [...this.sourceBoxes.values()];
          const chosen = all.filter((b) => b.checked).map((b) => b.value);
          this.selectedSources = chosen.length === all.length ? null : new Set(chosen);
          this.updateSourceSummary();
          this.applyFilters();
        }, { signal: this.abort.signal });
        const text = el(this.doc, 'span', 'ntl-source-name', name);
        text.style.setProperty('--ntl-hue', '0');
        label.append(box, text, el(this.doc, 'span', 'ntl-source-count'));
        list.appendChild(label);
        this.sourceBoxes.set(name, box);
      }
      const label = box.parentElement!;
      (label.lastChild as HTMLElement).textContent = ` (${count.toLocaleString()})`;
      box.setAttribute('aria-label', `${name} (${count})`);
    }
  }

  // ---- data ---------------------------------------------------------------------------------------
  private onRecords(records: LogRecord[]): void {
    if (this.pending) {
      // The server answers a new filter: swap the held records when its first page arrives.
      this.store = this.pending;
      this.pending = null;
      this.view = new FilteredView(this.store, this.view.filter);
      this.store.add(records);
      this.view.update();
      this.redraw(true);
      this.list.refresh(); // other record objects now (a row's content is otherwise made once per seq)
      return;
    }
    if (!this.store.add(records)) return;
    const added = this.view.update();
    if (!added) return;
    // The list, follow mode and counters catch up once per frame however many batches came.
    this.addedSinceDraw += added;
    if (!this.frameRequest) this.frameRequest = requestAnimationFrame(() => this.flush());
  }

  /** Show what arrived since the last frame (called by the frame, or first by anything that needs the list current). */
  flush(): void {
    if (this.frameRequest) cancelAnimationFrame(this.frameRequest);
    this.frameRequest = 0;
    const added = this.addedSinceDraw;
    if (!added) return;
    this.addedSinceDraw = 0;
    if (this.following) this.programmaticScroll = Date.now();
    else this.showNew(added);
    this.list.setCount(this.view.length, false, this.following);
    this.updateEmpty();
    if (this.view.filter.searchLower) this.updateMatchCount();
  }

  private onHistoryEnd(): void {
    if (this.pending) {
      this.store = this.pending;
      this.pending = null;
      this.view = new FilteredView(this.store, this.view.filter);
      this.redraw(true);
      this.list.refresh();
    }
    this.store.historyDone = true;
    this.updateEmpty();
  }

  private drawnSearch: string | null = null;

  private redraw(reset: boolean): void {
    // The count is set here, so a frame still due has nothing left to do but count what a paused view missed.
    if (this.addedSinceDraw && !this.following) this.showNew(this.addedSinceDraw);
    this.addedSinceDraw = 0;
    // Rows are kept by seq and their content does not depend on the filter, except the search highlight.
    if (this.drawnSearch !== this.view.filter.searchLower) {
      this.drawnSearch = this.view.filter.searchLower;
      this.list.refresh();
    }
    if (this.following) this.programmaticScroll = Date.now();
    this.list.setCount(this.view.length, reset, this.following);
    this.updateEmpty();
    this.updateMatchCount();
  }

  private updateEmpty(): void {
    const empty = this.ui.empty;
    empty.hidden = this.view.length > 0;
    if (this.view.length === 0) empty.textContent = this.store.historyDone ? (this.store.records.length ? 'No record matches the filters.' : 'No records yet.') : 'Loading…';
  }

  setTask(task: TaskInfo): void {
    this.task = { ...(this.task ?? {}), ...task };
    const t = this.task;
    this.ui.status.textContent = t.status;
    this.ui.status.className = `ntl-status ntl-status-${t.status}`;
    this.ui.plugin.textContent = t.plugin ?? '';
    const fraction = t.progress ?? (t.status === 'SUCCESS' ? 1 : null);
    this.ui.progress.hidden = fraction === null;
    if (fraction !== null) {
      const pct = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
      this.ui.bar.style.width = `${pct}%`;
      this.ui.progress.setAttribute('aria-valuenow', String(pct));
      this.ui.progress.title = `${pct}%`;
    }
    this.ui.progressMessage.textContent = t.progress_message ?? (t.error ? `error: ${t.error}` : '');
    this.tick();
  }

  private tick(): void {
    const t = this.task;
    const s = t ? seconds(t.started_at, t.finished_at) : null;
    this.ui.took.textContent = s === null ? '' : duration(s);
  }

  async refreshStats(): Promise<void> {
    try {
      this.stats = await this.transport.stats(this.taskId);
    } catch {
      return;
    }
    const counts = this.ui.counts;
    counts.replaceChildren();
    for (const name of LEVELS) {
      const chip = el(this.doc, 'span', `ntl-count ntl-count-${name}`, `${name} ${(this.stats.levels[name] ?? 0).toLocaleString()}`);
      counts.appendChild(chip);
    }
    this.renderSources();
    this.ui.keys.replaceChildren(...this.stats.metadata_keys.map((k) => option(this.doc, `${k}=`, `${k}=`)));
  }

  // ---- follow mode --------------------------------------------------------------------------------
  private scrollToEnd(): void {
    this.programmaticScroll = Date.now();
    this.list.scrollToEnd();
  }

  private onScroll(): void {
    if (Date.now() - this.programmaticScroll < 150) return;
    if (this.list.isAtEnd(8)) {
      if (!this.following) this.setFollowing(true);
    } else if (this.following) this.pause();
  }

  pause(): void {
    if (!this.following) return;
    this.setFollowing(false);
  }

  jumpToLatest(): void {
    this.flush();
    this.setFollowing(true);
    this.scrollToEnd();
  }

  private setFollowing(on: boolean): void {
    this.following = on;
    this.ui.follow.setAttribute('aria-pressed', String(on));
    if (on) {
      this.newWhilePaused = 0;
      this.ui.latest.hidden = true;
    }
  }

  private showNew(added: number): void {
    this.newWhilePaused += added;
    const latest = this.ui.latest;
    latest.hidden = false;
    latest.textContent = `${this.newWhilePaused.toLocaleString()} new — jump to latest`;
  }

  // ---- search, errors, keyboard, rows -------------------------------------------------------------
  private occurrences(position: number): number {
    const needle = this.view.filter.searchLower;
    return needle ? findMatches(this.view.at(position).message, needle).length : 0;
  }

  private updateMatchCount(): void {
    const needle = this.view.filter.searchLower;
    if (!needle) {
      this.ui.matchCount.textContent = '';
      return;
    }
    let total = 0;
    let before = 0;
    for (let p = 0; p < this.view.length; p++) {
      const n = this.occurrences(p);
      if (p < this.match.position) before += n;
      total += n;
    }
    const current = this.match.position >= 0 ? `${before + this.match.occurrence + 1} of ` : '';
    this.ui.matchCount.textContent = total ? `${current}${total.toLocaleString()} matches` : 'no match';
  }

  /** Move to the next (+1) or previous (-1) occurrence, across records whether rendered or not. */
  nextMatch(direction: 1 | -1): void {
    const needle = this.view.filter.searchLower;
    if (!needle || !this.view.length) return;
    let { position, occurrence } = this.match;
    if (position >= 0 && position < this.view.length) {
      const n = this.occurrences(position);
      if (occurrence + direction >= 0 && occurrence + direction < n) {
        this.setMatch(position, occurrence + direction);
        return;
      }
    }
    const start = position < 0 ? (direction > 0 ? 0 : this.view.length - 1) : position + direction;
    const count = this.view.length;
    for (let step = 0; step < count; step++) {
      const p = (((start + direction * step) % count) + count) % count;
      const n = this.occurrences(p);
      if (n) {
        this.setMatch(p, direction > 0 ? 0 : n - 1);
        return;
      }
    }
  }

  private setMatch(position: number, occurrence: number): void {
    this.flush();
    const old = this.match.position;
    this.match = { position, occurrence };
    this.pause();
    this.list.scrollToIndex(position, 'center');
    if (old >= 0 && old < this.view.length) this.list.update(old);
    this.list.update(position);
    this.updateMatchCount();
  }

  /** Scroll to the first ERROR record the current filters show. */
  jumpToFirstError(): void {
    const position = this.view.find((r) => r.level === 'ERROR');
    if (position < 0) {
      this.say('No error among the records shown.');
      return;
    }
    this.pause();
    this.focusRow(position);
    this.announce(position);
    this.say(`First error: record ${this.view.at(position).seq}.`);
  }

  private focusRow(position: number): void {
    this.flush();
    const old = this.focusedPosition;
    this.focusedPosition = position;
    this.list.scrollToIndex(position, 'center');
    if (old >= 0 && old < this.view.length) this.list.update(old);
    this.list.update(position);
  }

  /** Tell assistive tools the record the arrows moved to (its row is text, the list keeps the focus). */
  private announce(position: number): void {
    const r = this.view.at(position);
    if (!r) return;
    const text = `Record ${r.seq}, ${position + 1} of ${this.view.length}: ${r.level}, ${r.source}: ${r.message.slice(0, 300)}`;
    // The same text again (an arrow at the first or last record) is not read out; a silent
    // no-break space makes it a change.
    this.ui.current.textContent = this.ui.current.textContent === text ? `${text}\u00a0` : text;
  }

  private onKey(e: KeyboardEvent): void {
    if (e.target !== this.ui.scroll) return;
    const rows = this.list.rowsPerPage(); // two-line rows in a narrow host: fewer per page
    const moves: Record<string, number> = { ArrowDown: 1, ArrowUp: -1, PageDown: rows, PageUp: -rows };
    if (e.key in moves) {
      e.preventDefault();
      const from = this.focusedPosition >= 0 ? this.focusedPosition : moves[e.key] > 0 ? -1 : this.view.length;
      const to = Math.max(0, Math.min(this.view.length - 1, from + moves[e.key]));
      if (moves[e.key] < 0) this.pause();
      this.focusRow(to);
      this.announce(to);
      if (to === this.view.length - 1 && moves[e.key] > 0) this.jumpToLatest();
    } else if (e.key === 'Home') {
      e.preventDefault();
      this.pause();
      this.focusRow(0);
      this.announce(0);
    } else if (e.key === 'End') {
      e.preventDefault();
      this.focusedPosition = -1;
      this.ui.current.textContent = '';
      this.jumpToLatest();
    } else if ((e.key === 'Enter' || e.key === ' ') && this.focusedPosition >= 0) {
      e.preventDefault();
      this.toggleDetails(this.focusedPosition);
    } else if (e.key === 'c' && (e.ctrlKey || e.metaKey) && this.focusedPosition >= 0) {
      e.preventDefault();
      void this.copy(this.view.at(this.focusedPosition));
    }
  }

  private onRowClick(e: MouseEvent): void {
    const button = (e.target as HTMLElement).closest('button[data-action]') as HTMLElement | null;
    const row = (e.target as HTMLElement).closest('.ntl-row') as HTMLElement | null;
    if (!button || !row) return;
    const position = Number(row.dataset.index);
    if (button.dataset.action === 'details') this.toggleDetails(position);
    else if (button.dataset.action === 'copy') void this.copy(this.view.at(position));
  }

  toggleDetails(position: number): void {
    const record = this.view.at(position);
    if (this.expanded.has(record.seq)) this.expanded.delete(record.seq);
    else this.expanded.add(record.seq);
    this.list.update(position);
    (this.ui.scroll.querySelector(`.ntl-row[data-index="${position}"] .ntl-details-toggle`) as HTMLElement | null)?.focus();
  }

  async copy(record: LogRecord): Promise<void> {
    const text = recordText(record);
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // Clipboard API refused (insecure context, no permission): the old way through a selection.
      const area = el(this.doc, 'textarea');
      area.value = text;
      this.root.appendChild(area);
      area.select();
      this.doc.execCommand?.('copy');
      area.remove();
    }
    this.say(`Record ${record.seq} copied.`);
  }

  private say(message: string, isError = false): void {
    showNote(this.ui.note, message, isError);
  }

  destroy(): void {
    if (this.frameRequest) cancelAnimationFrame(this.frameRequest);
    this.abort.abort();
    this.timers.forEach(clearInterval);
    this.stream.close();
    this.list.destroy();
    this.root.remove();
  }
}

export { foldCase };
