/**
 * The history/live seam and what the viewer holds.
 *
 * A stream delivers history pages, then live batches, each record once and in seq order; across the
 * seam (history read while live records already queue), after a lagging catch-up or a reconnect the
 * same seq may come twice: RecordStore keeps only seq numbers past the last one it holds.
 * FilteredView is the index of held records matching the view's filter (which may be narrower than
 * the stream's: see LogFilter.narrows), kept up to date as records arrive.
 */
import type { LogFilter } from './filter';
import type { LogRecord } from './types';

export class RecordStore {
  records: LogRecord[] = [];
  /** The highest seq held: the cursor to resume from. */
  cursor = 0;
  /** True once the stream said the history is complete (live records follow). */
  historyDone = false;

  /** Append the records past the cursor; returns how many were new. */
  add(batch: readonly LogRecord[]): number {
    let added = 0;
    for (const record of batch) {
      if (record.seq > this.cursor) {
        this.records.push(record);
        this.cursor = record.seq;
        added++;
      }
    }
    return added;
  }

  /** A new stream filter applies from here on: forget what was held. */
  reset(): void {
    this.records = [];
    this.cursor = 0;
    this.historyDone = false;
  }
}

export class FilteredView {
  /** Indexes into store.records of the records that pass the filter, ascending. */
  indexes: number[] = [];
  private scanned = 0;

  constructor(private readonly store: RecordStore, public filter: LogFilter) {
    this.rebuild();
  }

  get length(): number {
    return this.indexes.length;
  }

  at(position: number): LogRecord {
    return this.store.records[this.indexes[position]];
  }

  /** Take in records appended to the store since the last call; returns how many passed. */
  update(): number {
    const { records } = this.store;
    if (this.scanned > records.length) return this.rebuild(), this.indexes.length;
    const before = this.indexes.length;
    for (let i = this.scanned; i < records.length; i++) if (this.filter.matches(records[i])) this.indexes.push(i);
    this.scanned = records.length;
    return this.indexes.length - before;
  }

  setFilter(filter: LogFilter): void {
    this.filter = filter;
    this.rebuild();
  }

  rebuild(): void {
    this.indexes = [];
    this.scanned = 0;
    this.update();
  }

  /** Position (in the view) of the first record with `predicate`, searching from `from` in `direction`. */
  find(predicate: (r: LogRecord) => boolean, from = 0, direction: 1 | -1 = 1): number {
    for (let p = from; p >= 0 && p < this.indexes.length; p += direction) if (predicate(this.at(p))) return p;
    return -1;
  }
}
