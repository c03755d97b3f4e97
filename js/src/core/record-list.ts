/**
 * The records on show: those held (history, then live) and their filtered view in the virtual list,
 * a new server-side filter's answer swapped in when it arrives, and what arrives drawn once per frame.
 */
import type { LogFilter } from './filter';
import type { FollowMode } from './follow';
import { FilteredView, RecordStore } from './records';
import type { TextSearch } from './search';
import type { LogRecord } from './types';
import { VirtualRows, type VirtualRowsOptions } from './virtual';

/** How the viewer draws a row: its content, whether it may be tall, and what a scroll of the list means. */
export type RowOptions = Pick<VirtualRowsOptions, 'renderRow' | 'isTall' | 'onScroll' | 'initialRect'>;

export class RecordList {
  store = new RecordStore();
  view: FilteredView;
  readonly rows: VirtualRows;
  /** The records of a new server-side filter, shown once its first page (or its history's end) arrives. */
  private pending: RecordStore | null = null;
  private frameRequest = 0;
  private addedSinceDraw = 0;
  private drawnSearch: string | null = null;

  /** `scroll` is in the document already (the list reads its height); `empty` says why no row shows. */
  constructor(scroll: HTMLElement, private readonly empty: HTMLElement, filter: LogFilter, private readonly follow: FollowMode, private readonly search: TextSearch, row: RowOptions) {
    this.rows = new VirtualRows({
      scrollElement: scroll,
      rowHeight: 22, // a first guess: the list learns the stylesheet's height from its first row
      overscan: 10,
      count: 0,
      initialRect: row.initialRect,
      getKey: (i) => this.view.at(i)?.seq ?? -1 - i,
      indexOf: (seq) => this.view.positionOf(seq as number),
      isTall: row.isTall,
      renderRow: row.renderRow,
      onScroll: row.onScroll,
    });
    this.view = new FilteredView(this.store, filter);
    this.rows.setCount(0);
  }

  /** The server answers a new filter from here on: what it sends next replaces the records held. */
  expectNewRecords(): void {
    this.pending = new RecordStore();
  }

  add(records: LogRecord[]): void {
    if (this.pending) {
      // The server answers a new filter: swap the held records when its first page arrives.
      this.replaceStore(this.pending);
      this.store.add(records);
      this.view.update();
      this.redraw(true);
      this.rows.refresh(); // other record objects now (a row's content is otherwise made once per seq)
      return;
    }
    if (!this.store.add(records)) return;
    const added = this.view.update();
    if (!added) return;
    // The list, follow mode and counters catch up once per frame however many batches came.
    this.addedSinceDraw += added;
    if (!this.frameRequest) this.frameRequest = requestAnimationFrame(() => this.flush());
  }

  historyEnd(): void {
    if (this.pending) {
      this.replaceStore(this.pending);
      this.redraw(true);
      this.rows.refresh();
    }
    this.store.historyDone = true;
    this.updateEmpty();
  }

  /** The records of the new server-side filter replace those held, in a view of their own. */
  private replaceStore(store: RecordStore): void {
    this.view.dispose();
    this.store = store;
    this.pending = null;
    this.view = new FilteredView(this.store, this.view.filter);
  }

  /** Show what arrived since the last frame (called by the frame, or first by anything that needs the list current). */
  flush(): void {
    if (this.frameRequest) cancelAnimationFrame(this.frameRequest);
    this.frameRequest = 0;
    const added = this.addedSinceDraw;
    if (!added) return;
    this.addedSinceDraw = 0;
    if (this.follow.following) this.follow.expectScroll();
    else this.follow.showNew(added);
    this.rows.setCount(this.view.length, false, this.follow.following);
    this.updateEmpty();
    if (this.view.filter.searchLower) this.search.updateCount();
  }

  /** Draw the view afresh (`reset`: another set of records than the rows drawn, as after a filter). */
  redraw(reset: boolean): void {
    // The count is set here, so a frame still due has nothing left to do but count what a paused view missed.
    if (this.addedSinceDraw && !this.follow.following) this.follow.showNew(this.addedSinceDraw);
    this.addedSinceDraw = 0;
    // Rows are kept by seq and their content does not depend on the filter, except the search highlight.
    if (this.drawnSearch !== this.view.filter.searchLower) {
      this.drawnSearch = this.view.filter.searchLower;
      this.rows.refresh();
    }
    if (this.follow.following) this.follow.expectScroll();
    this.rows.setCount(this.view.length, reset, this.follow.following);
    this.updateEmpty();
    this.search.updateCount();
  }

  private updateEmpty(): void {
    const empty = this.empty;
    empty.hidden = this.view.length > 0;
    if (this.view.length === 0) empty.textContent = this.store.historyDone ? (this.store.records.length ? 'No record matches the filters.' : 'No records yet.') : 'Loading…';
  }

  destroy(): void {
    if (this.frameRequest) cancelAnimationFrame(this.frameRequest);
    this.view.dispose();
    this.rows.destroy();
  }
}
