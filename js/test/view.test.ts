// FilteredView's typed-array filtering keeps exactly the records LogFilter.matches keeps (the filter twin).
import { describe, expect, it } from 'vitest';
import { makeFilter, type FilterSpec } from '../src/core/filter';
import { filterToParams } from '../src/core/protocol';
import { FilteredView, RecordStore } from '../src/core/records';
import type { LogRecord } from '../src/core/types';
import { random } from './random';


const LEVELS = ['DEBUG', 'INFO', 'WARNING', 'ERROR', 'TRACE']; // TRACE: a name the viewer does not know
const SOURCES = ['plugin', 'superset_api', 'system', 'Plugin', 'late_source'];
const WORDS = ['GET', 'dashboard', 'İstanbul', 'ΟΔΟΣ', 'grüße', '100%', 'a_c', 'slow'];
const T0 = 1_714_564_800_000_000;

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

const positions = (view: FilteredView) => Array.from(view.indexes.subarray(0, view.length));

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
      const expected = store.records.flatMap((r, i) => (filter.matches(r) ? [i] : []));
      expect(positions(view), JSON.stringify(filterToParams(filter))).toEqual(expected);
      // a refilter over what is held gives the same as building the view afresh
      const other = makeFilter(makeSpec(rand));
      view.setFilter(other);
      expect(positions(view)).toEqual(store.records.flatMap((r, i) => (other.matches(r) ? [i] : [])));
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
    expect(positions(view)).toEqual(store.records.flatMap((r, i) => (view.filter.matches(r) ? [i] : [])));
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
    expect(view.length).toBe(store.records.filter((r) => r.source === 'superset_api' && (r.level === 'WARNING' || r.level === 'ERROR')).length);
    view.setFilter(makeFilter());
    expect(view.length).toBe(1_000_000);
  });
});
