/**
 * The history/live seam and what the viewer holds.
 *
 * A stream delivers history pages, then live batches, each record once and in seq order; across the
 * seam (history read while live records already queue), after a lagging catch-up or a reconnect the
 * same seq may come twice: RecordStore keeps only seq numbers past the last one it holds.
 * Beside the records it keeps each one's level value and source id in typed arrays, so that
 * FilteredView (the positions of the held records matching the view's filter, which may be narrower
 * than the stream's: see LogFilter.narrows) refilters 1,000,000 records without touching the objects;
 * and, per block of records, how many of each source and level it holds, so that a refilter by level
 * and source knows its length and where each block's positions start at once (PositionFill).
 */
import type { LogFilter } from './filter';
import { LEVELS, LEVEL_VALUES } from './levels';
import type { LogRecord } from './types';

/** A typed array with room for at least `need` entries (doubling). */
function grown<T extends Uint8Array | Int32Array>(array: T, need: number): T {
  if (need <= array.length) return array;
  const next = new (array.constructor as new (n: number) => T)(Math.max(need, array.length * 2));
  next.set(array);
  return next;
}

/** Records per block of the store's tallies (8,192): a refilter sums blocks, and fills one at a time. */
const BLOCK_SHIFT = 13;
const BLOCK = 1 << BLOCK_SHIFT;
/** The level values a record can hold, ascending (0: a name the viewer does not know): a tally's slots. */
const SLOT_VALUES = [0, ...LEVELS.map((name) => LEVEL_VALUES[name])];
const SLOTS = SLOT_VALUES.length;
/** A level name's slot (a Map: any name, 'constructor' too, is just unknown). */
const SLOT_OF = new Map<string, number>(LEVELS.map((name, i) => [name, i + 1]));

export class RecordStore {
  records: LogRecord[] = [];
  /** Each record's level value (levels.LEVEL_VALUES; 0 for a name it does not know), by position. */
  levels = new Uint8Array(1024);
  /** Each record's source as an index into sourceNames, by position. */
  sources = new Int32Array(1024);
  readonly sourceNames: string[] = [];
  /** By source id: how many records of each level each block holds, at [block * SLOTS + slot]. */
  readonly tallies: Int32Array[] = [];
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
        const slot = SLOT_OF.get(record.level) ?? 0;
        this.levels[n] = SLOT_VALUES[slot];
        let id = this.sourceIds.get(record.source);
        if (id === undefined) {
          id = this.sourceNames.push(record.source) - 1;
          this.sourceIds.set(record.source, id);
          this.tallies.push(new Int32Array(0));
        }
        this.sources[n] = id;
        const block = n >> BLOCK_SHIFT;
        let tally = this.tallies[id];
        // Whole blocks of slots, so that a tally's length says which blocks it covers.
        if (tally.length <= block * SLOTS) tally = this.tallies[id] = grown(tally, (block + 1) * SLOTS);
        tally[block * SLOTS + slot]++;
        n++;
      }
    }
    return n - start;
  }

  /** A new stream filter applies from here on: forget what was held. */
  reset(): void {
    this.records = [];
    for (const tally of this.tallies) tally.fill(0);
    this.cursor = 0;
    this.historyDone = false;
  }
}

/** Whether a filter has conditions beyond level and source (text, metadata, ranges): those read the record objects. */
function readsRecords(f: LogFilter): boolean {
  return f.search !== null || f.meta.length > 0 || f.afterSeq !== null || f.beforeSeq !== null || f.sinceUs !== null || f.untilUs !== null;
}

export class FilteredView {
  /**
   * Positions in store.records of the records that pass the filter, ascending; valid up to `length`,
   * except in the blocks a PositionFill has not filled yet: read them through at().
   */
  indexes = new Int32Array(1024);
  length = 0;
  private scanned = 0;
  private sourceMask = new Uint8Array(0);
  private maskedSources = 0;
  /** After a refilter by level and source: the blocks whose positions are not filled yet. */
  private fill: PositionFill | null = null;

  constructor(private readonly store: RecordStore, public filter: LogFilter) {
    this.rebuild();
  }

  at(position: number): LogRecord {
    const fill = this.fill;
    if (fill !== null && (position < fill.from || position >= fill.to)) fill.reach(position);
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
    let n = before;
    // Level and source from the typed arrays; the rarer conditions (text, metadata, ranges) on the record.
    if (readsRecords(f)) {
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

  /**
   * Filter what is held afresh. By level and source, only the tallies are summed here: the positions
   * the first frame shows are filled as it reads them, the rest by PositionFill's idle tasks.
   */
  rebuild(): void {
    this.fill?.cancel();
    this.fill = null;
    this.length = 0;
    this.scanned = 0;
    this.maskedSources = 0;
    if (readsRecords(this.filter)) {
      this.update();
      return;
    }
    const end = this.store.records.length;
    this.fill = new PositionFill(this, this.store, end, this.filter.minLevel, this.mask());
    this.length = this.fill.count;
    this.scanned = end;
    this.indexes = grown(this.indexes, this.length + 1); // a block's fill writes one slot past its last position
  }

  /** The view is dropped: stop filling it in the background. */
  dispose(): void {
    this.fill?.cancel();
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

/** The longest an idle task fills positions, in ms: input that arrives meanwhile waits at most this long. */
const FILL_BUDGET_MS = 3;

/** Run `task` in a later task once the page is idle (after the frame being drawn), with the time it may run until; returns a cancel. */
function whenIdle(task: (until: number) => void): () => void {
  if (typeof requestIdleCallback === 'function') {
    // The timeout: a page never idle (a hidden tab, a busy one) still gets its view filled.
    const id = requestIdleCallback((idle) => task(performance.now() + (idle.didTimeout ? FILL_BUDGET_MS : Math.min(FILL_BUDGET_MS, idle.timeRemaining()))), { timeout: 200 });
    return () => cancelIdleCallback(id);
  }
  const id = setTimeout(() => task(performance.now() + FILL_BUDGET_MS), 0);
  return () => clearTimeout(id);
}

/**
 * The positions of a view refiltered by level and source, filled block by block. The store's tallies
 * give each block's count of matches at once, so the view's length and every block's first position
 * are exact from the start: a reader (the rows in view, the keyboard, positionOf) gets the
 * block it asks for filled there and then, and idle tasks fill the others, newest first, until none is left.
 */
class PositionFill {
  /** The view position of each block's first match; starts[blocks] counts them all. */
  private readonly starts: Int32Array;
  private readonly filled: Uint8Array;
  private left: number;
  /** The next block an idle task fills, counting down (the blocks above it are filled). */
  private next: number;
  /** The positions of the block reached last (reads there need no search); everything once all are filled. */
  from = 0;
  to = 0;
  private cancelTask: (() => void) | null = null;

  /** Over the store's first `end` records (later ones are the view's own update()). */
  constructor(private readonly view: FilteredView, private readonly store: RecordStore, private readonly end: number, private readonly min: number, private readonly mask: Uint8Array) {
    const blocks = (end + BLOCK - 1) >> BLOCK_SHIFT;
    const starts = (this.starts = new Int32Array(blocks + 1));
    let first = SLOT_VALUES.findIndex((value) => value >= min);
    if (first < 0) first = SLOTS;
    store.tallies.forEach((tally, source) => {
      if (mask[source] === 0) return;
      const covered = Math.min(blocks, tally.length / SLOTS);
      for (let block = 0; block < covered; block++) {
        for (let slot = first; slot < SLOTS; slot++) starts[block + 1] += tally[block * SLOTS + slot];
      }
    });
    for (let block = 0; block < blocks; block++) starts[block + 1] += starts[block];
    this.filled = new Uint8Array(blocks);
    this.left = blocks;
    this.next = blocks - 1;
    if (blocks === 0) this.done();
    else this.schedule();
  }

  /** How many of the records it covers pass. */
  get count(): number {
    return this.starts[this.starts.length - 1];
  }

  /** Fill the block that holds view position `position` (nothing for a position past the blocks: update() made those). */
  reach(position: number): void {
    const starts = this.starts;
    const blocks = starts.length - 1;
    if (position < 0 || position >= starts[blocks]) return;
    // The last block starting at or before it (an empty block starts where the next one does).
    let lo = 0;
    let hi = blocks - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= position) lo = mid;
      else hi = mid - 1;
    }
    this.from = starts[lo];
    this.to = starts[lo + 1];
    this.fillBlock(lo); // the last block filled makes every position a direct read (done())
  }

  cancel(): void {
    this.cancelTask?.();
    this.cancelTask = null;
  }

  private fillBlock(block: number): void {
    if (this.filled[block]) return;
    const { levels, sources } = this.store;
    const out = this.view.indexes;
    const mask = this.mask;
    const min = this.min;
    const end = Math.min((block + 1) << BLOCK_SHIFT, this.end);
    const after = this.starts[block + 1];
    // The branch-free loop (as in FilteredView.update) writes one slot past its last match: the next block's first.
    const next = out[after];
    let n = this.starts[block];
    for (let i = block << BLOCK_SHIFT; i < end; i++) {
      out[n] = i;
      n += mask[sources[i]] & (levels[i] >= min ? 1 : 0);
    }
    out[after] = next;
    this.filled[block] = 1;
    if (--this.left === 0) this.done();
  }

  private schedule(): void {
    this.cancelTask = whenIdle((until) => {
      this.cancelTask = null;
      do {
        while (this.filled[this.next]) this.next--;
        this.fillBlock(this.next);
      } while (this.left > 0 && performance.now() < until);
      if (this.left > 0) this.schedule();
    });
  }

  /** Every block filled: reads go straight to the positions. */
  private done(): void {
    this.from = -Infinity;
    this.to = Infinity;
    this.cancel();
  }
}
