// The JS filter means what filter.py's LogFilter means: the cases of tests/test_filter.py, ported.
import { describe, expect, it } from 'vitest';
import { FilterError, LogFilter, foldCase, isoToUs, jsonScalarText, makeFilter, MetaCondition, type FilterSpec } from '../src/core/filter';
import { JsonNumber } from '../src/core/json';
import type { LogRecord } from '../src/core/types';

const T0 = 1_714_564_800_000_000; // 2024-05-01T12:00:00Z in microseconds

/** Metadata text as Python's metadata_to_json writes it (compact); numbers given as raw tokens stay as written. */
function rec(seq: number, level = 'INFO', source = 'plugin', message = 'm', meta: string | null = null, ts?: number): LogRecord {
  return { seq, ts: ts ?? T0 + seq, level, source, message, meta };
}

describe('makeFilter parsing', () => {
  it('defaults let everything through in seq order', () => {
    const f = makeFilter();
    expect([f.minLevel, f.sources, f.search, f.meta, f.order, f.limit]).toEqual([10, null, null, [], 'asc', null]);
  });

  it('parses each argument', () => {
    const f = makeFilter({ level: 'warning', source: 'plugin, superset_api,', search: 'Slow', meta: ['a.b=1', 'flag'], after: '3', before: 10, since: '2024-05-01T12:00:00+00:00', until: new Date(Date.UTC(2024, 4, 2)), order: 'desc', limit: '50' });
    expect(f.minLevel).toBe(30);
    expect([...f.sources!].sort()).toEqual(['plugin', 'superset_api']);
    expect(f.search).toBe('Slow');
    expect(f.meta).toEqual([new MetaCondition(['a', 'b'], '1'), new MetaCondition(['flag'], null)]);
    expect([f.afterSeq, f.beforeSeq, f.limit, f.order]).toEqual([3, 10, 50, 'desc']);
    expect(f.sinceUs).toBe(T0);
    expect(f.untilUs).toBe(Date.UTC(2024, 4, 2) * 1000);
  });

  it('meta mapping values become comparison text, in key order (the order given means nothing)', () => {
    const f = makeFilter({ meta: { dashboard_id: 10, ok: true, name: 'x', present: null } });
    expect(f.meta.map((c) => [c.key, c.value])).toEqual([['dashboard_id', '10'], ['name', 'x'], ['ok', 'true'], ['present', null]]);
  });

  it('errors_only means ERROR whatever level says; sources may be a list', () => {
    const f = makeFilter({ level: 'debug', errors_only: true, source: ['a', 'b'] });
    expect(f.minLevel).toBe(40);
    expect([...f.sources!].sort()).toEqual(['a', 'b']);
  });

  it('empty strings mean not given', () => {
    expect(makeFilter({ level: '', search: '', after: '', limit: '' }).equals(new LogFilter())).toBe(true);
  });

  const bad: [FilterSpec, string][] = [
    [{ level: 'loud' }, "unknown log level 'loud'"],
    [{ level: 'loud' }, 'DEBUG, INFO, WARNING, ERROR'],
    [{ meta: { 'a b': 1 } }, "bad metadata key 'a b'"],
    [{ meta: ['a..b=1'] }, "bad metadata key 'a..b'"],
    [{ meta: { '$.a': 1 } }, "use letters, digits, '_' or '-'"],
    [{ meta: { a: { b: 1 } as never } }, 'not dict'],
    [{ meta: [3 as never] }, "metadata condition must be 'key=value' or 'key'"],
    [{ after: -1 }, 'after must be at least 0, not -1'],
    [{ after: 'x' }, 'after must be a whole number, not "x"'],
    [{ after: 1.5 }, 'after must be a whole number'],
    [{ before: 0 }, 'before must be at least 1, not 0'],
    [{ limit: 0 }, 'limit must be between 1 and 100000, not 0'],
    [{ limit: 100_001 }, 'limit must be between 1 and 100000, not 100001'],
    [{ order: 'newest' as never }, "order must be 'asc' or 'desc', not 'newest'"],
    [{ source: '' }, 'source is empty'],
    [{ source: ' , ' }, 'source is empty'],
    [{ source: [] }, 'source is empty'],
    [{ source: [1 as never] }, 'source must be a name or a list of names'],
    [{ search: 5 as never }, 'search must be text'],
    [{ since: 'yesterday' }, "since must be an ISO 8601 time, not 'yesterday'"],
    [{ until: 1.5 }, 'until must be a datetime or ISO 8601 text'],
  ];
  it.each(bad)('errors say which part and why: %j', (spec, fragment) => {
    expect(() => makeFilter(spec)).toThrow(FilterError);
    expect(() => makeFilter(spec)).toThrow(fragment);
  });
});

describe('matches', () => {
  it('level is that level and above', () => {
    const f = makeFilter({ level: 'WARNING' });
    expect(['DEBUG', 'INFO', 'WARNING', 'ERROR'].map((l) => f.matches(rec(1, l)))).toEqual([false, false, true, true]);
  });

  it('sources match exactly, case-sensitive', () => {
    const f = makeFilter({ source: 'superset_api' });
    expect(f.matches(rec(1, 'INFO', 'superset_api'))).toBe(true);
    expect(f.matches(rec(1, 'INFO', 'plugin'))).toBe(false);
    expect(f.matches(rec(1, 'INFO', 'Superset_API'))).toBe(false);
  });

  it('search is a case-insensitive substring of the message, never the metadata', () => {
    const f = makeFilter({ search: 'GrüßE' });
    expect(f.matches(rec(1, 'INFO', 'plugin', 'viele grüße aus Zürich'))).toBe(true);
    expect(f.matches(rec(1, 'INFO', 'plugin', 'gruesse', '{"text":"grüße"}'))).toBe(false);
    expect(makeFilter({ search: '100%' }).matches(rec(1, 'INFO', 'plugin', 'done: 100% of rows'))).toBe(true);
    expect(makeFilter({ search: 'a_c' }).matches(rec(1, 'INFO', 'plugin', 'abc'))).toBe(false);
  });

  it('case folding is the one SQL lower() uses', () => {
    expect(foldCase('İSTANBUL')).toBe('istanbul');
    expect(foldCase('ΟΔΟΣ')).toBe('οδοσ');
    expect(foldCase('MiXeD')).toBe('mixed');
    expect(makeFilter({ search: 'σ' }).matches(rec(1, 'INFO', 'plugin', 'ΟΔΟΣ'))).toBe(true);
    expect(makeFilter({ search: 'ist' }).matches(rec(1, 'INFO', 'plugin', 'İstanbul'))).toBe(true);
  });

  it('seq and time ranges: after/before exclusive, since inclusive, until exclusive', () => {
    const f = makeFilter({ after: 2, before: 5 });
    expect([1, 2, 3, 4, 5, 6].filter((s) => f.matches(rec(s)))).toEqual([3, 4]);
    const w = makeFilter({ since: T0 + 2, until: T0 + 4 });
    expect([1, 2, 3, 4, 5, 6].filter((s) => w.matches(rec(s)))).toEqual([2, 3]);
  });

  it('metadata equality and existence on nested paths', () => {
    const r = rec(1, 'INFO', 'plugin', 'm', '{"dashboard_id":10,"api":{"status":502,"ok":false,"none":null},"name":"x"}');
    expect(makeFilter({ meta: { dashboard_id: 10 } }).matches(r)).toBe(true);
    expect(makeFilter({ meta: ['dashboard_id=10'] }).matches(r)).toBe(true);
    expect(makeFilter({ meta: { dashboard_id: 11 } }).matches(r)).toBe(false);
    expect(makeFilter({ meta: { 'api.status': '502', 'api.ok': false } }).matches(r)).toBe(true);
    expect(makeFilter({ meta: ['api.none'] }).matches(r)).toBe(true);
    expect(makeFilter({ meta: { 'api.none': 'null' } }).matches(r)).toBe(false);
    expect(makeFilter({ meta: ['api.missing'] }).matches(r)).toBe(false);
    expect(makeFilter({ meta: ['name.deeper'] }).matches(r)).toBe(false);
    expect(makeFilter({ meta: ['api'] }).matches(rec(2))).toBe(false);
    expect(makeFilter({ meta: ['dashboard_id=10', 'name=y'] }).matches(r)).toBe(false);
  });

  it('objects and arrays never equal a value but exist', () => {
    const r = rec(1, 'INFO', 'plugin', 'm', '{"tags":[1,2],"api":{"a":1}}');
    expect(makeFilter({ meta: ['tags', 'api'] }).matches(r)).toBe(true);
    expect(makeFilter({ meta: ['tags=[1,2]'] }).matches(r)).toBe(false);
    expect(makeFilter({ meta: ['api={"a":1}'] }).matches(r)).toBe(false);
  });

  it('floats in metadata compare as DuckDB renders them, from the stored text', () => {
    // Python's json writes repr(): 1.0, 1e+16, 1e-07, 2.5e-05; the filter compares yyjson's text.
    const r = rec(1, 'INFO', 'plugin', 'm', '{"a":1.0,"b":1e+16,"c":1e-07,"d":2.5e-05,"e":5}');
    expect(makeFilter({ meta: ['a=1.0', 'b=10000000000000000.0', 'c=1e-7', 'd=0.000025', 'e=5'] }).matches(r)).toBe(true);
    expect(makeFilter({ meta: ['a=1'] }).matches(r)).toBe(false);
  });

  it('json scalar text renders like DuckDB JSON extraction', () => {
    const floats = ['0.5', '1.0', '1e+16', '1e+21', '1e-07', '2.5e-05', '-0.0', '1.5e+300'].map((raw) => jsonScalarText(new JsonNumber(raw)));
    expect(['x', 5, true].map((v) => jsonScalarText(v as never))).toEqual(['x', '5', 'true']);
    expect(floats).toEqual(['0.5', '1.0', '10000000000000000.0', '1e21', '1e-7', '0.000025', '-0.0', '1.5e300']);
  });
});

describe('apply, paging form, narrowing', () => {
  it('apply orders by seq and cuts to the limit', () => {
    const records = [[5, 'INFO'], [1, 'ERROR'], [3, 'DEBUG'], [2, 'INFO'], [4, 'INFO']].map(([s, l]) => rec(s as number, l as string));
    expect(makeFilter({ level: 'INFO' }).apply(records).map((r) => r.seq)).toEqual([1, 2, 4, 5]);
    expect(makeFilter({ level: 'INFO', order: 'desc', limit: 2 }).apply(records).map((r) => r.seq)).toEqual([5, 4]);
  });

  it('narrows: a filter that keeps a subset can be answered from the records held', () => {
    const wide = makeFilter({ level: 'INFO' });
    expect(makeFilter({ level: 'INFO', source: ['api'] }).narrows(wide)).toBe(true);
    expect(makeFilter({ level: 'ERROR', search: 'x' }).narrows(wide)).toBe(true);
    expect(makeFilter({ level: 'DEBUG' }).narrows(wide)).toBe(false);
    expect(makeFilter({ level: 'INFO', search: 'abc' }).narrows(makeFilter({ level: 'INFO', search: 'B' }))).toBe(true);
    expect(makeFilter({ level: 'INFO', search: 'a' }).narrows(makeFilter({ level: 'INFO', search: 'ab' }))).toBe(false);
    expect(makeFilter({ source: 'a' }).narrows(makeFilter({ source: 'a,b' }))).toBe(true);
    expect(makeFilter().narrows(makeFilter({ source: 'a' }))).toBe(false);
    expect(makeFilter({ meta: ['k=1'] }).narrows(makeFilter())).toBe(false); // metadata always asks the server
  });

  it('ISO times are exact to the microsecond, naive ones local time (as make_filter takes them)', () => {
    expect(isoToUs('2024-05-01T12:00:00.000001Z')).toBe(T0 + 1);
    expect(isoToUs('2024-05-01T14:00:00+02:00')).toBe(T0);
    expect(isoToUs('2024-05-01T12:00:00.000001')).toBe(new Date(2024, 4, 1, 12, 0, 0).getTime() * 1000 + 1);
  });
});
