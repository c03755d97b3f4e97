/**
 * The history/live seam and what the viewer holds.
 *
 * A stream delivers history pages, then live batches, each record once and in seq order; across the
 * seam (history read while live records already queue), after a lagging catch-up or a reconnect the
 * same seq may come twice: RecordStore keeps only seq numbers past the last one it holds.
 * Beside the records it keeps each one's level value and source id in typed arrays, so that
 * FilteredView (the positions of the held records matching the view's filter, which may be narrower
 * than the stream's: see LogFilter.narrows) refilters 1,000,000 records without touching the objects.
 */
import type { LogFilter } from './filter';
import { LEVEL_VALUES } from './levels';
import type { LogRecord } from './types';

/** A typed array with room for at least `need` entries (doubling). */
function grown<T extends Uint8Array | Int32Array>(array: T, need: number): T {
  if (need <= array.length) return array;
  const next = new (array.constructor as new (n: number) => T)(Math.max(need, array.length * 2));
  next.set(array);
  return next;
}

export class RecordStore {
  records: LogRecord[] = [];
  /** Each record's level value (levels.LEVEL_VALUES; 0 for a name it does not know), by position. */
  levels = new Uint8Array(1024);
  /** Each record's source as an index into sourceNames, by position. */
  sources = new Int32Array(1024);
  readonly sourceNames: string[] = [];
  private sourceIds = new Map<string, number>();
  /** The highest seq held: the cursor to resume from. */
  cursor = 0;
  /** True once the stream said the history is complete (live records follow). */
  historyDone = false;

  /** Append the records past the cursor; returns how many were new. */
  add(batch: readonly LogRecord[]): number {
    const start = this.records.length;
    this.levels = grown(this.levels, start + batch.length);
    this.sources = grown(this.sources, start + batch.length);
    let n = start;
    for (const record of batch) {
      if (record.seq > this.cursor) {
        this.records.push(record);
        this.cursor = record.seq;
        this.levels[n] = LEVEL_VALUES[record.level] ?? 0;
        let id = this.sourceIds.get(record.source);
        if (id === undefined) {
          id = this.sourceNames.push(record.source) - 1;
          this.sourceIds.set(record.source, id);
        }
        this.sources[n++] = id;
      }
    }
    return n - start;
  }

  /** A new stream filter applies from here on: forget what was held. */
  reset(): void {
    this.records = [];
    this.cursor = 0;
    this.historyDone = false;
  }
}

export class FilteredView {
  /** Positions in store.records of the records that pass the filter, ascending; valid up to `length`. */
  indexes = new Int32Array(1024);
  length = 0;
  private scanned = 0;
  private sourceMask = new Uint8Array(0);
  private maskedSources = 0;

  constructor(private readonly store: RecordStore, public filter: LogFilter) {
    this.rebuild();
  }

  at(position: number): LogRecord {
    return this.store.records[this.indexes[position]];
  }

  /** Take in records appended to the store since the last call; returns how many passed. */
  update(): number {
    const { records, levels, sources } = this.store;
    const end = records.length;
    if (this.scanned > end) return this.rebuild(), this.length;
    const before = this.length;
    this.indexes = grown(this.indexes, before + end - this.scanned);
    const out = this.indexes;
    const f = this.filter;
    const min = f.minLevel;
    const mask = this.mask();
    // Level and source from the typed arrays; the rarer conditions (text, metadata, ranges) on the record.
    const rest = f.search !== null || f.meta.length > 0 || f.afterSeq !== null || f.beforeSeq !== null || f.sinceUs !== null || f.untilUs !== null;
    let n = before;
    if (rest) {
      for (let i = this.scanned; i < end; i++) {
        if (levels[i] < min || mask[sources[i]] === 0 || !f.matches(records[i])) continue;
        out[n++] = i;
      }
    } else {
      // Without a branch: whether a record passes is data, not control flow. Sources interleaved at
      // random made the branch a coin toss the CPU guessed wrong on a quarter of 1,000,000 records.
      for (let i = this.scanned; i < end; i++) {
        out[n] = i;
        n += mask[sources[i]] & (levels[i] >= min ? 1 : 0);
      }
    }
    this.length = n;
    this.scanned = end;
    return n - before;
  }

  /** One byte per known source: 1 when the filter keeps it, every one without a source filter
   * (extended as new sources appear). */
  private mask(): Uint8Array {
    const names = this.store.sourceNames;
    if (this.maskedSources !== names.length) {
      this.sourceMask = grown(this.sourceMask, names.length);
      const kept = this.filter.sources;
      for (let id = this.maskedSources; id < names.length; id++) this.sourceMask[id] = kept === null || kept.has(names[id]) ? 1 : 0;
      this.maskedSources = names.length;
    }
    return this.sourceMask;
  }

  setFilter(filter: LogFilter): void {
    this.filter = filter;
    this.rebuild();
  }

  rebuild(): void {
    this.length = 0;
    this.scanned = 0;
    this.maskedSources = 0;
    this.update();
  }

  /** The view position of the record with `seq`, or -1 (records are held in seq order). */
  positionOf(seq: number): number {
    let lo = 0;
    let hi = this.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const at = this.at(mid).seq;
      if (at === seq) return mid;
      if (at < seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** Position (in the view) of the first record with `predicate`, searching from `from` in `direction`. */
  find(predicate: (r: LogRecord) => boolean, from = 0, direction: 1 | -1 = 1): number {
    for (let p = from; p >= 0 && p < this.length; p += direction) if (predicate(this.at(p))) return p;
    return -1;
  }
}
