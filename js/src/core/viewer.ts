/**
 * LogViewer: one task's log, composed of its header, toolbar, search, list, follow mode, keyboard and
 * record actions over the task's stream. Framework-free; the widget and the JupyterLab sidebar both
 * mount it on an element with a transport, and destroy() undoes all.
 */
import { FilterError, LogFilter, makeFilter, type FilterSpec } from './filter';
import { FollowMode } from './follow';
import { el, errorText, showNote, toolButton } from './format';
import { TaskHeader } from './header';
import { RecordKeyboard } from './keyboard';
import { RecordActions } from './record-actions';
import { RecordList } from './record-list';
import type { FilteredView, RecordStore } from './records';
import { renderRow } from './render';
import { TextSearch } from './search';
import { injectStyles } from './style';
import { Toolbar } from './toolbar';
import type { LogStream, ViewerTransport } from './transport';
import { ACTIVE_STATUSES, type LogRecord, type TaskInfo, type TaskStats } from './types';
import type { VirtualRows } from './virtual';

export interface ViewerOptions {
  /** Initial level filter (default INFO and above). */
  level?: string;
  /** For tests: the list viewport before layout. */
  initialRect?: { width: number; height: number };
  /** How often stats are re-read while the task runs, in ms. */
  statsInterval?: number;
}

export class LogViewer {
  readonly root: HTMLElement;
  task: TaskInfo | null = null;
  stats: TaskStats | null = null;
  private readonly header: TaskHeader;
  private readonly toolbar: Toolbar;
  private readonly search: TextSearch;
  private readonly follow: FollowMode;
  private readonly keyboard: RecordKeyboard;
  private readonly actions: RecordActions;
  private readonly recordList: RecordList;
  private readonly note: HTMLElement;
  private stream: LogStream;
  private streamFilter: LogFilter;
  private abort = new AbortController();
  private timers: ReturnType<typeof setInterval>[] = [];

  constructor(readonly host: HTMLElement, readonly transport: ViewerTransport, readonly taskId: string, options: ViewerOptions = {}) {
    const d = host.ownerDocument;
    const signal = this.abort.signal;
    injectStyles(d);
    this.root = el(d, 'div', 'ntl-viewer');
    this.root.setAttribute('role', 'region'); // a landmark: aria-label alone on a generic div is not announced
    this.root.setAttribute('aria-label', `Log of task ${taskId}`);
    host.appendChild(this.root);

    this.header = new TaskHeader(d);
    this.search = new TextSearch(d, signal, this);
    this.follow = new FollowMode(d, signal, this);
    const download = (format: 'jsonl' | 'csv') => () => void transport.download(taskId, this.spec(), format).catch((e) => this.say(errorText(e), true));
    this.toolbar = new Toolbar(d, signal, options.level ?? 'INFO', {
      search: this.search.root,
      actions: [
        toolButton(d, 'Jump to first error', 'Jump to first error', () => this.jumpToFirstError(), signal),
        this.follow.button,
        toolButton(d, 'JSONL', 'Download JSONL', download('jsonl'), signal),
        toolButton(d, 'CSV', 'Download CSV', download('csv'), signal),
      ],
    }, () => this.applyFilters());
    this.root.append(this.header.root, this.toolbar.root);

    const frame = el(d, 'div', 'ntl-frame');
    const scroll = el(d, 'div', 'ntl-scroll');
    scroll.tabIndex = 0;
    scroll.setAttribute('role', 'list');
    scroll.setAttribute('aria-label', 'Log records');
    this.note = el(d, 'div', 'ntl-note');
    this.note.setAttribute('role', 'status');
    this.keyboard = new RecordKeyboard(d, this);
    const empty = el(d, 'div', 'ntl-empty', 'Loading…');
    frame.append(scroll, empty, this.follow.latest);
    this.root.append(frame, this.note, this.keyboard.status);
    this.actions = new RecordActions(this.root, scroll, this);
    this.streamFilter = makeFilter(this.spec());
    this.recordList = new RecordList(scroll, empty, this.streamFilter, this.follow, this.search, {
      initialRect: options.initialRect,
      isTall: (i) => this.actions.isOpen(this.view.at(i)?.seq ?? -1),
      renderRow: (row, i) => this.renderRow(row, i),
      onScroll: () => this.follow.onScroll(),
    });
    scroll.addEventListener('wheel', (e) => e.deltaY < 0 && this.pause(), { signal, passive: true });
    this.keyboard.listen(scroll, signal);
    scroll.addEventListener('click', (e) => this.actions.onRowClick(e), { signal });

    this.stream = transport.openStream(taskId, this.spec(), {
      records: (records) => this.recordList.add(records),
      historyEnd: () => this.recordList.historyEnd(),
      status: (task) => this.setTask(task),
      reset: () => this.recordList.expectNewRecords(),
      end: () => void this.refreshStats(),
      error: (message) => this.say(message, true),
    });
    transport.task(taskId).then((t) => this.setTask(t), (e) => this.say(errorText(e), true));
    void this.refreshStats();
    this.timers.push(setInterval(() => this.header.tick(this.task), 1000));
    this.timers.push(setInterval(() => this.task && ACTIVE_STATUSES.has(this.task.status) && void this.refreshStats(), options.statsInterval ?? 2000));
  }

  /** The records held (history, then live). */
  get store(): RecordStore {
    return this.recordList.store;
  }

  /** The held records the filters show. */
  get view(): FilteredView {
    return this.recordList.view;
  }

  get list(): VirtualRows {
    return this.recordList.rows;
  }

  get following(): boolean {
    return this.follow.following;
  }

  get newWhilePaused(): number {
    return this.follow.newWhilePaused;
  }

  private renderRow(row: HTMLElement, position: number): void {
    const record = this.view.at(position);
    renderRow(row, record, {
      expanded: this.actions.isOpen(record.seq),
      searchLower: this.view.filter.searchLower,
      currentMatch: this.search.currentAt(position),
      focused: this.keyboard.position === position,
    });
  }

  // ---- filters ----------------------------------------------------------------------------------
  /** The filter the controls describe, in make_filter's terms. */
  spec(): FilterSpec {
    return this.toolbar.spec(this.search.text());
  }

  /** Apply the controls: at once on the records held when the new filter is narrower, else also on the server. */
  applyFilters(): void {
    let filter: LogFilter;
    try {
      filter = makeFilter(this.spec());
    } catch (error) {
      if (!(error instanceof FilterError)) throw error;
      this.toolbar.setMetaInvalid(true);
      this.say(error.message, true);
      return;
    }
    this.toolbar.setMetaInvalid(false);
    this.say('');
    if (filter.equals(this.view.filter)) return;
    this.view.setFilter(filter);
    this.search.reset();
    this.keyboard.reset(); // no current record in the new view until the keyboard picks one
    this.recordList.redraw(true);
    if (!filter.narrows(this.streamFilter)) {
      this.streamFilter = filter;
      this.stream.setFilter(this.spec());
    }
  }

  setSources(sources: Iterable<string> | null): void {
    this.toolbar.setSources(sources);
  }

  /** Show what arrived since the last frame (called by the frame, or first by anything that needs the list current). */
  flush(): void {
    this.recordList.flush();
  }

  // ---- the task ---------------------------------------------------------------------------------------
  setTask(task: TaskInfo): void {
    this.task = { ...(this.task ?? {}), ...task };
    this.header.show(this.task);
  }

  async refreshStats(): Promise<void> {
    try {
      this.stats = await this.transport.stats(this.taskId);
    } catch {
      return;
    }
    this.header.showCounts(this.stats.levels);
    this.toolbar.showStats(this.stats, this.store.records);
  }

  // ---- the parts' actions, for the host and the other parts ---------------------------------------
  pause(): void {
    this.follow.pause();
  }

  jumpToLatest(): void {
    this.follow.jumpToLatest();
  }

  /** Move to the next (+1) or previous (-1) search match, across records whether rendered or not. */
  nextMatch(direction: 1 | -1): void {
    this.search.next(direction);
  }

  /** Scroll to the first ERROR record the current filters show. */
  jumpToFirstError(): void {
    this.keyboard.jumpToFirstError();
  }

  toggleDetails(position: number): void {
    this.actions.toggleDetails(position);
  }

  copy(record: LogRecord): Promise<void> {
    return this.actions.copy(record);
  }

  say(message: string, isError = false): void {
    showNote(this.note, message, isError);
  }

  destroy(): void {
    this.abort.abort();
    this.timers.forEach(clearInterval);
    this.stream.close();
    this.recordList.destroy();
    this.root.remove();
  }
}
