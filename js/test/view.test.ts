// FilteredView's typed-array filtering keeps exactly the records LogFilter.matches keeps (the filter twin),
// also while a refilter's positions are still being filled block by block.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { makeFilter, type FilterSpec, type LogFilter } from '../src/core/filter';
import { filterToParams } from '../src/core/protocol';
import { FilteredView, RecordStore } from '../src/core/records';
import type { LogRecord } from '../src/core/types';
import { random } from './random';


const LEVELS = ['DEBUG', 'INFO', 'WARNING', 'ERROR', 'TRACE']; // TRACE: a name the viewer does not know
const SOURCES = ['plugin', 'superset_api', 'system', 'Plugin', 'late_source'];
const WORDS = ['GET', 'dashboard', 'İstanbul', 'ΟΔΟΣ', 'grüße', '100%', 'a_c', 'slow'];
const T0 = 1_714_564_800_000_000;
/** Records per block of the store's tallies: a refilter fills its positions one block at a time. */
const BLOCK = 8192;

function makeRecords(rand: () => number, from: number, count: number, sources: string[]): LogRecord[] {
  const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
  return Array.from({ length: count }, (_, i) => {
    const seq = from + i;
    const meta = rand() < 0.5 ? null : JSON.stringify({ dashboard_id: Math.floor(rand() * 3), api: { ok: rand() < 0.5 } });
    return { seq, ts: T0 + seq * 10, level: pick(LEVELS), source: pick(sources), message: `${pick(WORDS)} ${pick(WORDS)} ${seq}`, meta };
  });
}

function makeSpec(rand: () => number): FilterSpec {
  const spec: FilterSpec = {};
  if (rand() < 0.7) spec.level = LEVELS[Math.floor(rand() * 4)];
  if (rand() < 0.6) spec.source = SOURCES.filter(() => rand() < 0.4).concat(['system']);
  if (rand() < 0.3) spec.search = ['ist', 'σ', 'GRÜSSE', 'grüße', '100%', 'a_c', 'dash'][Math.floor(rand() * 7)];
  if (rand() < 0.2) spec.meta = [['dashboard_id=1'], ['api.ok=true'], ['api']][Math.floor(rand() * 3)];
  if (rand() < 0.2) spec.after = Math.floor(rand() * 300);
  if (rand() < 0.2) spec.before = 1 + Math.floor(rand() * 600);
  if (rand() < 0.1) spec.since = T0 + Math.floor(rand() * 5000);
  if (rand() < 0.1) spec.errors_only = true;
  return spec;
}

/** The store positions the view shows, read through at(). */
const positions = (view: FilteredView, store: RecordStore) => {
  const at = new Map(store.records.map((r, i) => [r, i]));
  return Array.from({ length: view.length }, (_, p) => at.get(view.at(p)));
};
const kept = (store: RecordStore, filter: LogFilter) => store.records.flatMap((r, i) => (filter.matches(r) ? [i] : []));

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('FilteredView', () => {
  it('keeps what LogFilter.matches keeps, for 300 random filters over appended batches', () => {
    const rand = random(42);
    for (let round = 0; round < 300; round++) {
      const store = new RecordStore();
      const filter = makeFilter(makeSpec(rand));
      const view = new FilteredView(store, filter);
      let next = 1;
      for (let batch = 0; batch < 4; batch++) {
        // a source unseen when the filter was made arrives in the last batches
        const n = 1 + Math.floor(rand() * 200);
        store.add(makeRecords(rand, next, n, batch < 2 ? SOURCES.slice(0, 4) : SOURCES));
        next += n;
        view.update();
      }
      expect(positions(view, store), JSON.stringify(filterToParams(filter))).toEqual(kept(store, filter));
      // a refilter over what is held gives the same as building the view afresh
      const other = makeFilter(makeSpec(rand));
      view.setFilter(other);
      expect(positions(view, store)).toEqual(kept(store, other));
    }
  });

  it('keeps matching through a reset of the store and finds a record by seq', () => {
    const rand = random(7);
    const store = new RecordStore();
    const view = new FilteredView(store, makeFilter({ level: 'INFO', source: ['plugin'] }));
    store.add(makeRecords(rand, 1, 500, SOURCES));
    view.update();
    store.reset();
    store.add(makeRecords(rand, 1, 50, SOURCES));
    view.update();
    expect(positions(view, store)).toEqual(kept(store, view.filter));
    view.setFilter(makeFilter({ level: 'INFO', source: ['system'] })); // a refilter counts from the tallies, reset too
    expect(positions(view, store)).toEqual(kept(store, view.filter));
    for (let p = 0; p < view.length; p++) expect(view.positionOf(view.at(p).seq)).toBe(p);
    const missing = store.records.find((r) => !view.filter.matches(r))!;
    expect(view.positionOf(missing.seq)).toBe(-1);
  });

  it('holds a million records and refilters them by source and level', () => {
    const store = new RecordStore();
    const batch: LogRecord[] = [];
    for (let seq = 1; seq <= 1_000_000; seq++) {
      batch.push({ seq, ts: T0 + seq, level: LEVELS[seq % 4], source: SOURCES[seq % 3], message: 'm', meta: null });
      if (batch.length === 10_000) store.add(batch.splice(0));
    }
    const view = new FilteredView(store, makeFilter({ source: 'superset_api', level: 'WARNING' }));
    const expected = store.records.filter((r) => r.source === 'superset_api' && (r.level === 'WARNING' || r.level === 'ERROR'));
    // the length is known at once, and the newest positions (what a following list shows) before any idle task ran
    expect(view.length).toBe(expected.length);
    expect(view.at(view.length - 1)).toBe(expected.at(-1));
    expect(view.positionOf(expected[123_456].seq)).toBe(123_456);
    view.setFilter(makeFilter());
    expect(view.length).toBe(1_000_000);
    expect(view.at(999_999).seq).toBe(1_000_000);
  });
});

describe('FilteredView while a refilter is filled', () => {
  /** Fake timers (the idle tasks are timeouts here), and a clock that moves 1 ms per reading: an idle task fills 3 blocks. */
  function slowClock(): void {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let now = 0;
    vi.spyOn(performance, 'now').mockImplementation(() => ++now);
  }

  /** Many records, cheaply: levels and sources at random is what a refilter by level and source sees. */
  function bulkRecords(rand: () => number, from: number, count: number, sources: string[]): LogRecord[] {
    return Array.from({ length: count }, (_, i) => ({ seq: from + i, ts: T0 + (from + i) * 10, level: LEVELS[Math.floor(rand() * 5)], source: sources[Math.floor(rand() * sources.length)], message: 'm', meta: null }));
  }

  /** `count` records; a source of its own logs only in the first block (a tally shorter than the others). */
  function heldStore(rand: () => number, count: number): RecordStore {
    const store = new RecordStore();
    store.add(bulkRecords(rand, 1, 1000, [...SOURCES.slice(0, 4), 'early']));
    store.add(bulkRecords(rand, 1001, count - 1000, SOURCES.slice(0, 4)));
    return store;
  }

  it('random reads, appends, refilters and idle tasks, checked against LogFilter.matches at every step', () => {
    slowClock();
    const rand = random(2024);
    const int = (n: number) => Math.floor(rand() * n);
    for (let round = 0; round < 10; round++) {
      const store = heldStore(rand, BLOCK * (1 + int(5)) + int(BLOCK));
      let next = store.records.length + 1;
      // Level and source: the refilters filled block by block; now and then a seq range, which reads
      // the records (text and metadata do too, tested above on fewer records: they are slow to check).
      const spec = () => {
        const s = makeSpec(rand);
        s.search = s.meta = s.since = undefined;
        if (rand() < 0.75) s.after = s.before = undefined;
        return makeFilter(s);
      };
      const view = new FilteredView(store, spec());
      let model = kept(store, view.filter).map((i) => store.records[i]);
      for (let step = 0; step < 60; step++) {
        const op = int(7);
        if (op === 0) {
          // live records: appended past the records the fill covers, a new source among them
          const batch = bulkRecords(rand, next, 1 + int(rand() < 0.2 ? 3 * BLOCK : 300), SOURCES);
          next += batch.length;
          store.add(batch);
          const added = batch.filter((r) => view.filter.matches(r));
          expect(view.update()).toBe(added.length);
          model = model.concat(added);
        } else if (op === 1) {
          view.setFilter(spec()); // may come while the previous one is still being filled
          model = kept(store, view.filter).map((i) => store.records[i]);
        } else if (op === 2) {
          vi.runOnlyPendingTimers(); // one idle task
        } else if (op === 3 && model.length) {
          const p = int(model.length);
          expect(view.at(p)).toBe(model[p]);
        } else if (op === 4 && model.length) {
          // the rows a list shows: a run of positions, at the end or anywhere
          const from = rand() < 0.5 ? Math.max(0, model.length - 40) : int(model.length);
          for (let p = from; p < Math.min(model.length, from + 40); p++) expect(view.at(p)).toBe(model[p]);
        } else if (op === 5) {
          const record = store.records[int(store.records.length)];
          expect(view.positionOf(record.seq)).toBe(model.indexOf(record));
        } else if (op === 6) {
          const direction = rand() < 0.5 ? 1 : -1;
          const from = int(model.length + 1);
          const error = (r: LogRecord) => r.level === 'ERROR';
          let expected = -1;
          for (let p = from; p >= 0 && p < model.length; p += direction) if (error(model[p])) { expected = p; break; }
          expect(view.find(error, from, direction)).toBe(expected);
        }
        expect(view.length).toBe(model.length);
      }
      vi.runAllTimers();
      expect(Array.from({ length: view.length }, (_, p) => view.at(p).seq)).toEqual(model.map((r) => r.seq));
      expect(vi.getTimerCount()).toBe(0);
    }
  }, 30_000);

  it('fills in idle tasks of a bounded length until every block is filled, then stops', () => {
    slowClock();
    const store = heldStore(random(3), BLOCK * 10);
    const view = new FilteredView(store, makeFilter({ level: 'WARNING' }));
    let tasks = 0;
    while (vi.getTimerCount()) {
      vi.runOnlyPendingTimers();
      tasks++;
    }
    expect(tasks).toBe(4); // 3 blocks a task by the clock above
    expect(positions(view, store)).toEqual(kept(store, view.filter));
  });

  it('a refilter cancels the fill of the previous one; a dropped view stops filling', () => {
    slowClock();
    const store = heldStore(random(4), BLOCK * 5);
    const view = new FilteredView(store, makeFilter());
    view.setFilter(makeFilter({ source: ['plugin'] }));
    expect(vi.getTimerCount()).toBe(1);
    view.setFilter(makeFilter({ level: 'ERROR' }));
    expect(vi.getTimerCount()).toBe(1);
    view.dispose();
    expect(vi.getTimerCount()).toBe(0);
    // still whole when read: a reader fills the blocks it asks for
    expect(positions(view, store)).toEqual(kept(store, view.filter));
  });

  it('a reader that reaches every block leaves nothing for the idle tasks', () => {
    slowClock();
    const store = heldStore(random(5), BLOCK * 4 + 17);
    const view = new FilteredView(store, makeFilter({ level: 'INFO', source: ['system', 'Plugin'] }));
    expect(vi.getTimerCount()).toBe(1);
    expect(view.find(() => false)).toBe(-1); // a search over every position
    expect(vi.getTimerCount()).toBe(0);
    expect(positions(view, store)).toEqual(kept(store, view.filter));
  });
});
