/// <reference types="node" />
// One wire for filters: the fields of a filter message and the query string the viewer writes are
// the ones filter.py writes (the shared cases), and read back as the same filter (hostile input too).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { END_US, FilterError, LogFilter, makeFilter, MIN_US, type FilterSpec } from '../src/core/filter';
import { filterToParams, filterToWire, type FilterWire } from '../src/core/protocol';
import { compareCodePoints, strip, validText } from '../src/core/text';
import { RestTransport } from '../src/lab/rest';
import { WidgetTransport } from '../src/widget-transport';
import { random } from './random';

interface Case {
  spec: FilterSpec;
  wire: FilterWire;
  params: Record<string, string>;
}
const shared = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '../../tests/filter_wire_cases.json'), 'utf8')) as {
  cases: Case[];
  refused: { spec: FilterSpec; error: string }[];
};
const T0 = 1_714_564_800_000_000; // 2024-05-01T12:00:00Z in microseconds

describe('the filter on the wire, as filter.py has it', () => {
  it.each(shared.cases)('writes what LogFilter.to_wire and to_params write: %j', ({ spec, wire, params }) => {
    const filter = makeFilter(spec);
    expect(filterToWire(filter)).toEqual(wire);
    expect(filterToParams(filter)).toEqual(params);
    expect(makeFilter(wire).equals(filter)).toBe(true);
  });

  it.each(shared.refused)('refuses what make_filter refuses, in the same words: %j', ({ spec, error }) => {
    expect(() => makeFilter(spec)).toThrow(FilterError);
    expect(() => makeFilter(spec)).toThrow(error);
  });

  it('leaves out the defaults; sources sorted, metadata as KEY=VALUE / KEY, times ISO in UTC', () => {
    const spec: FilterSpec = { level: 'warning', source: ['b', 'a'], search: 'x', meta: { 'a.b': 1, c: null, d: '', e: null }, after: 4, limit: 9, order: 'desc', since: '2024-05-01T12:00:00+00:00' };
    expect(filterToWire(spec)).toEqual({ level: 'WARNING', source: ['a', 'b'], search: 'x', meta: ['a.b=1', 'c', 'd=', 'e'], after: 4, limit: 9, order: 'desc', since: '2024-05-01T12:00:00+00:00' });
    expect(filterToParams(spec)).toEqual({ level: 'WARNING', source: 'a,b', search: 'x', 'meta.a.b': '1', 'meta.d': '', has: 'c,e', after: '4', limit: '9', order: 'desc', since: '2024-05-01T12:00:00+00:00' });
    expect(filterToParams({ until: T0 + 7 })).toEqual({ until: '2024-05-01T12:00:00.000007+00:00' });
    expect(filterToWire({ errors_only: true, level: 'DEBUG' })).toEqual({ level: 'ERROR' });
    expect([filterToWire({}), filterToParams({})]).toEqual([{}, {}]);
  });

  it('text is made as Python makes it: str.strip, valid_text, code point order', () => {
    expect(strip('\x1c\x85 a b\u3000\x1f')).toBe('a b');
    expect(strip('\ufeffa')).toBe('\ufeffa');
    expect(validText('a\ud800b\udc80 \ud83d\ude00')).toBe('a\ufffdb\ufffd \ud83d\ude00');
    expect(['\ud83d\ude00', '\uff21', 'z'].sort(compareCodePoints)).toEqual(['z', '\uff21', '\ud83d\ude00']);
  });
});


// Lone surrogates, NUL, controls, what trim() and str.strip() strip differently, both forms' separators, astral characters.
const ODD = ['\ud800', '\udfff', '\x00', '\x01', '\x1b', '\x7f', '\x9b', '\x1c', '\x1f', '\x85', '\u2028', '\ufeff', '\u3000', ' ', '\t', '\n', ',', '=', '.', '&', '%', '+', '\ud83d\ude00', '\uff21', 'İ', 'Σ', 'a', 'B', '7'];

function hostileSpec(rand: () => number): FilterSpec {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const text = (max: number) => Array.from({ length: Math.floor(rand() * (max + 1)) }, () => (rand() < 0.8 ? pick(ODD) : String.fromCharCode(Math.floor(rand() * 0x10000)))).join('');
  const key = () => (rand() < 0.85 ? pick(['', ' ', '\x1c', '\u3000']) + Array.from({ length: 1 + Math.floor(rand() * 3) }, () => pick(['a', 'b2', 'x-y', 'k_', '0'])).join('.') + pick(['', ' ', '\x1f']) : text(4));
  const scalar = () => pick<string | number | boolean | null>([null, true, false, 0, -0, 10, 0.5, 1e21, -7, '', text(6), text(6)]);
  const seq = () => pick<number | string>([0, 1, 7, 2 ** 40, Number.MAX_SAFE_INTEGER, 2 ** 63, -1, 1.5, '12', ' 3 ', 'x', '']);
  const time = () => pick<number | string | Date>([
    T0 + Math.floor(rand() * 2 ** 40) - 2 ** 39,
    Math.floor((rand() * 2 - 1) * 2 ** 53),
    MIN_US, MIN_US - 1, END_US - 32, END_US, 2 ** 60,
    '0001-01-01T00:00:00+00:00', '0050-06-01T00:00:00.123457-05:30', '9999-12-31T23:59:59.999999Z', '9999-12-31T23:59:59-00:01',
    '2024-05-01T14:00:00.000001+02:00', '2024-02-30T00:00:00Z', '2024-05-01T12:00:00', 'yesterday', new Date(Date.UTC(2024, 4, 2)), '',
  ]);
  const spec: FilterSpec = {};
  if (rand() < 0.5) spec.level = pick(['DEBUG', 'info', ' Warn ', 'fatal', '\x1cERROR', '', 'loud', text(3)]);
  if (rand() < 0.5) spec.source = rand() < 0.4 ? text(8) : Array.from({ length: Math.floor(rand() * 4) }, () => (rand() < 0.7 ? text(6) : pick(['a', 'b,c', ' d '])));
  if (rand() < 0.5) spec.search = text(10);
  if (rand() < 0.5) {
    spec.meta = rand() < 0.5
      ? Array.from({ length: Math.floor(rand() * 4) }, () => (rand() < 0.4 ? key() : `${key()}=${text(6)}`))
      : Object.fromEntries(Array.from({ length: Math.floor(rand() * 4) }, () => [key(), scalar()]));
  }
  if (rand() < 0.4) spec.after = seq();
  if (rand() < 0.4) spec.before = seq();
  if (rand() < 0.3) spec.since = time();
  if (rand() < 0.3) spec.until = time();
  if (rand() < 0.3) spec.order = pick(['asc', 'desc'] as const);
  if (rand() < 0.3) spec.limit = pick([1, 100, 100_000, 0, 100_001, '5']);
  if (rand() < 0.3) spec.errors_only = rand() < 0.5;
  return spec;
}

describe('the wire form reads back as the same filter', () => {
  it('for 5,000 hostile filters (each one makeFilter takes), through JSON text', () => {
    const rand = random(7);
    let built = 0;
    for (let round = 0; round < 5000; round++) {
      const spec = hostileSpec(rand);
      let filter: LogFilter;
      try {
        filter = makeFilter(spec);
      } catch (error) {
        if (!(error instanceof FilterError)) throw error;
        continue;
      }
      built++;
      const wire = filterToWire(filter);
      const back = makeFilter(JSON.parse(JSON.stringify(wire)) as FilterWire);
      expect(back, JSON.stringify(spec)).toEqual(filter);
      expect(back.equals(filter)).toBe(true);
      expect(filterToWire(back)).toEqual(wire);
      expect(filterToParams(back)).toEqual(filterToParams(filter));
    }
    expect(built).toBeGreaterThan(1500); // most of the cases were filters, not refusals
  });
});

describe('both hosts send the wire form', () => {
  const spec: FilterSpec = { level: 'INFO', source: null, search: null, meta: ['k=a=b', 'k', 'api'], errors_only: true };
  const wire = { level: 'ERROR', meta: ['api', 'k=a=b', 'k'] };

  it('the widget: open, filter and export carry LogFilter.to_wire fields', async () => {
    const sent: any[] = [];
    const model = { send: (content: unknown) => sent.push(content), on: () => undefined, off: () => undefined };
    const transport = new WidgetTransport(model);
    const stream = transport.openStream('t1', spec, { records() {}, historyEnd() {}, status() {}, reset() {}, end() {}, error() {} });
    stream.setFilter({ ...spec, source: ['b', 'a'] });
    void transport.download('t1', spec, 'csv');
    expect(sent).toEqual([
      { type: 'open', stream: 1, task: 't1', filter: wire },
      { type: 'filter', stream: 1, filter: { ...wire, source: ['a', 'b'] } },
      { type: 'request', id: 2, method: 'export', args: { task_id: 't1', filter: wire, format: 'csv' } },
    ]);
  });

  it('the lab: the socket URL carries to_params, a filter change the to_wire fields, every condition of a key kept', () => {
    const sockets: FakeSocket[] = [];
    class FakeSocket {
      readyState = 1; // open
      sent: string[] = [];
      onmessage: unknown = null;
      onclose: unknown = null;
      constructor(readonly url: string) {
        sockets.push(this);
      }
      send(text: string) {
        this.sent.push(text);
      }
      close() {}
    }
    const settings = { baseUrl: 'http://host/', wsUrl: 'ws://host/', token: '', appendToken: false, WebSocket: FakeSocket };
    const transport = new RestTransport(settings as never);
    const stream = transport.openStream('t1', spec, { records() {}, historyEnd() {}, status() {}, reset() {}, end() {}, error() {} });
    const url = new URL(sockets[0].url.replace(/^ws/, 'http'));
    expect(Object.fromEntries(url.searchParams)).toEqual({ level: 'ERROR', 'meta.k': 'a=b', has: 'api,k' });
    // meta "k=a=b, k" is two conditions on one key: a key-to-value object would keep one
    stream.setFilter(spec);
    expect(sockets[0].sent.map((text) => JSON.parse(text))).toEqual([{ type: 'filter', ...wire }]);
    stream.close();
  });
});
