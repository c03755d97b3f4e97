/**
 * LogFilter: the viewer's twin of filter.py's LogFilter.matches and make_filter, with the same meaning
 * (the same test cases as tests/test_filter.py run against it in js/test/filter.test.ts).
 */
import { JsonNumber, parseLossless, type JsonValue } from './json';
import { LEVEL_VALUES, LEVELS, parseLevel } from './levels';
import type { LogRecord } from './types';

const KEY_SEGMENT = /^[A-Za-z0-9_-]+$/;
export const MAX_LIMIT = 100_000;

export class FilterError extends Error {}

/** What a host or transport passes around: the user-facing arguments of make_filter. */
export interface FilterSpec {
  level?: string | null;
  source?: string | string[] | null;
  search?: string | null;
  /** "key=value" / "key" strings, or {key: value} (null: the key exists). */
  meta?: string[] | Record<string, string | number | boolean | null> | null;
  after?: number | string | null;
  before?: number | string | null;
  since?: number | string | Date | null;
  until?: number | string | Date | null;
  order?: 'asc' | 'desc';
  limit?: number | string | null;
  errors_only?: boolean;
}

/** SQL lower() maps each code point alone; toLowerCase, like str.lower, expands İ and makes a final Σ ς. */
export function foldCase(text: string): string {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(text) ? text.toLowerCase() : text.replace(/\u0130/g, 'i').replace(/\u03a3/g, '\u03c3').toLowerCase();
}

/** filter._float_text on Python's repr text of a float: DuckDB's (yyjson) rendering. */
export function floatText(repr: string): string {
  if (/^-?(inf|nan)$/i.test(repr)) return repr;
  const sign = repr.startsWith('-') ? '-' : '';
  const [mantissa, exponent = '0'] = repr.replace(/^-/, '').toLowerCase().split('e');
  const [whole, fraction = ''] = mantissa.split('.');
  let digits = whole + fraction;
  const stripped = digits.replace(/^0+/, '');
  if (!stripped) return sign + '0.0';
  const point = whole.length + parseInt(exponent, 10) - (digits.length - stripped.length);
  digits = stripped.replace(/0+$/, '');
  if (!(-7 < point - 1 && point - 1 < 21)) return `${sign}${digits[0]}${digits.length > 1 ? '.' + digits.slice(1) : ''}e${point - 1}`;
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}.0`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** The text a JSON scalar compares as (filter.json_scalar_text); number tokens as written by Python's json. */
export function jsonScalarText(value: string | boolean | JsonNumber | number): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return String(value);
  if (value instanceof JsonNumber) return /[.eE]/.test(value.raw) ? floatText(value.raw) : value.raw;
  // A JS number given by a caller: integral ones as Python ints (JS cannot tell 1 from 1.0).
  return Number.isInteger(value) ? String(value) : floatText(String(value));
}

export class MetaCondition {
  constructor(readonly path: string[], readonly value: string | null) {}
  get key(): string {
    return this.path.join('.');
  }
  matches(metadata: JsonValue): boolean {
    let node: JsonValue = metadata;
    for (const part of this.path) {
      if (node === null || typeof node !== 'object' || Array.isArray(node) || node instanceof JsonNumber || !(part in node)) return false;
      node = (node as Record<string, JsonValue>)[part];
    }
    if (this.value === null) return true;
    if (node === null || (typeof node === 'object' && !(node instanceof JsonNumber))) return false;
    return jsonScalarText(node as string | boolean | JsonNumber) === this.value;
  }
}

const parsedMeta = new WeakMap<LogRecord, JsonValue>();

/** A record's metadata as a lossless tree, parsed once. */
export function recordMeta(record: LogRecord): JsonValue {
  if (record.meta === null) return null;
  let value = parsedMeta.get(record);
  if (value === undefined) {
    try {
      value = parseLossless(record.meta);
    } catch {
      value = null;
    }
    parsedMeta.set(record, value);
  }
  return value;
}

export class LogFilter {
  readonly searchLower: string | null;
  constructor(
    readonly minLevel = 10,
    readonly sources: ReadonlySet<string> | null = null,
    readonly search: string | null = null,
    readonly meta: readonly MetaCondition[] = [],
    readonly afterSeq: number | null = null,
    readonly beforeSeq: number | null = null,
    readonly sinceUs: number | null = null,
    readonly untilUs: number | null = null,
    readonly order: 'asc' | 'desc' = 'asc',
    readonly limit: number | null = null,
  ) {
    this.searchLower = search ? foldCase(search) : null;
  }

  /** True when `record` passes every condition except order and limit (LogFilter.matches). */
  matches(record: LogRecord): boolean {
    if ((LEVEL_VALUES[record.level] ?? 0) < this.minLevel) return false;
    if (this.sources !== null && !this.sources.has(record.source)) return false;
    if (this.afterSeq !== null && record.seq <= this.afterSeq) return false;
    if (this.beforeSeq !== null && record.seq >= this.beforeSeq) return false;
    if (this.sinceUs !== null && record.ts < this.sinceUs) return false;
    if (this.untilUs !== null && record.ts >= this.untilUs) return false;
    if (this.searchLower !== null && !foldCase(record.message).includes(this.searchLower)) return false;
    if (this.meta.length) {
      if (record.meta === null) return false;
      const metadata = recordMeta(record);
      if (!this.meta.every((c) => c.matches(metadata))) return false;
    }
    return true;
  }

  /** Filter, order by seq, cut to the limit (LogFilter.apply). */
  apply(records: Iterable<LogRecord>): LogRecord[] {
    const kept = [...records].filter((r) => this.matches(r)).sort((a, b) => (this.order === 'desc' ? b.seq - a.seq : a.seq - b.seq));
    return this.limit === null ? kept : kept.slice(0, this.limit);
  }

  /** The query-string form the server parses back (LogFilter.to_params): `meta.KEY=VALUE` compares (the
   * empty VALUE too), `has=KEY,KEY` asks that keys exist, times are ISO 8601 in UTC. */
  toParams(): Record<string, string> {
    const params: Record<string, string> = {};
    if (this.minLevel > 10) params.level = LEVELS.find((l) => LEVEL_VALUES[l] === this.minLevel)!;
    if (this.sources !== null) params.source = [...this.sources].sort().join(',');
    if (this.search) params.search = this.search;
    for (const c of this.meta) if (c.value !== null) params[`meta.${c.key}`] = c.value;
    const exists = this.meta.filter((c) => c.value === null).map((c) => c.key);
    if (exists.length) params.has = exists.join(',');
    const pairs: [string, number | null][] = [['after', this.afterSeq], ['before', this.beforeSeq], ['limit', this.limit]];
    for (const [name, value] of pairs) if (value !== null) params[name] = String(value);
    if (this.sinceUs !== null) params.since = usToIso(this.sinceUs);
    if (this.untilUs !== null) params.until = usToIso(this.untilUs);
    if (this.order !== 'asc') params.order = this.order;
    return params;
  }

  /**
   * True when every record this filter keeps is also kept by `wider`, so that the records held under
   * `wider` answer this filter without asking the server. Metadata conditions must be equal: records
   * that came as parsed JSON (WebSocket) may render numbers differently, so those go to the server.
   */
  narrows(wider: LogFilter): boolean {
    if (this.minLevel < wider.minLevel) return false;
    if (wider.sources !== null && (this.sources === null || [...this.sources].some((s) => !wider.sources!.has(s)))) return false;
    if (wider.searchLower !== null && (this.searchLower === null || !this.searchLower.includes(wider.searchLower))) return false;
    const keys = (f: LogFilter) => f.meta.map((c) => `${c.key}\u0000${c.value ?? '\u0001'}`).sort().join('\u0002');
    if (keys(this) !== keys(wider)) return false;
    return this.afterSeq === wider.afterSeq && this.beforeSeq === wider.beforeSeq && this.sinceUs === wider.sinceUs && this.untilUs === wider.untilUs;
  }

  equals(other: LogFilter): boolean {
    return JSON.stringify(this.toParams()) === JSON.stringify(other.toParams());
  }
}

/** make_filter: user-facing arguments to a LogFilter, each checked; FilterError says what was wrong. */
export function makeFilter(spec: FilterSpec = {}): LogFilter {
  let minLevel: number;
  if (spec.errors_only) minLevel = 40;
  else if (spec.level === undefined || spec.level === null || spec.level === '') minLevel = 10;
  else {
    try {
      minLevel = LEVEL_VALUES[parseLevel(String(spec.level))];
    } catch (error) {
      throw new FilterError((error as Error).message);
    }
  }
  if (spec.search !== undefined && spec.search !== null && typeof spec.search !== 'string') {
    throw new FilterError(`search must be text, not ${typeof spec.search}`);
  }
  const order = spec.order ?? 'asc';
  if (order !== 'asc' && order !== 'desc') throw new FilterError(`order must be 'asc' or 'desc', not '${order}'`);
  return new LogFilter(
    minLevel,
    parseSources(spec.source),
    spec.search || null,
    parseMeta(spec.meta),
    parseIntArg('after', spec.after, 0),
    parseIntArg('before', spec.before, 1),
    parseTime('since', spec.since),
    parseTime('until', spec.until),
    order,
    parseIntArg('limit', spec.limit, 1, MAX_LIMIT),
  );
}

function parseSources(source: FilterSpec['source']): Set<string> | null {
  if (source === undefined || source === null) return null;
  const names = typeof source === 'string' ? source.split(',') : [...source];
  if (!names.every((n) => typeof n === 'string')) throw new FilterError('source must be a name or a list of names');
  const cleaned = new Set(names.map((n) => n.trim()).filter(Boolean));
  if (!cleaned.size) throw new FilterError('source is empty: give at least one source name');
  return cleaned;
}

export function parseMeta(meta: FilterSpec['meta']): MetaCondition[] {
  if (meta === undefined || meta === null) return [];
  const items: [string, unknown][] = [];
  if (Array.isArray(meta) || typeof meta === 'string') {
    for (const text of typeof meta === 'string' ? [meta] : meta) {
      if (typeof text !== 'string') throw new FilterError(`metadata condition must be 'key=value' or 'key', not ${JSON.stringify(text)}`);
      const at = text.indexOf('=');
      items.push(at < 0 ? [text, null] : [text.slice(0, at), text.slice(at + 1)]);
    }
  } else {
    items.push(...Object.entries(meta));
  }
  const conditions = items.map(([key, value]) => {
    const path = key.trim().split('.');
    if (!path.every((p) => KEY_SEGMENT.test(p))) {
      throw new FilterError(`bad metadata key '${key}': use letters, digits, '_' or '-', with '.' between nested keys`);
    }
    if (value !== null && typeof value === 'object') {
      throw new FilterError(`metadata condition '${key}': compare text, a number or true/false, not ${Array.isArray(value) ? 'list' : 'dict'}`);
    }
    return new MetaCondition(path, value === null ? null : jsonScalarText(value as string | number | boolean));
  });
  // All must hold, so their order means nothing: sorted as make_filter sorts them.
  const order = (c: MetaCondition) => [c.path.join('\u0000'), c.value === null ? 1 : 0, c.value ?? ''] as const;
  return conditions.sort((a, b) => {
    const [x, y] = [order(a), order(b)];
    for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
  });
}

function parseIntArg(name: string, value: unknown, minimum: number, maximum?: number): number | null {
  if (value === undefined || value === null || value === '') return null;
  const number = typeof value === 'number' ? value : typeof value === 'string' && /^\s*[-+]?\d+\s*$/.test(value) ? parseInt(value, 10) : NaN;
  if (!Number.isInteger(number)) throw new FilterError(`${name} must be a whole number, not ${JSON.stringify(value)}`);
  if (number < minimum || (maximum !== undefined && number > maximum)) {
    const bound = maximum !== undefined ? `between ${minimum} and ${maximum}` : `at least ${minimum}`;
    throw new FilterError(`${name} must be ${bound}, not ${number}`);
  }
  return number;
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?(Z|[+-]\d{2}:?\d{2})?$/;

/** UTC microseconds of an ISO 8601 time (without an offset: local time, as make_filter takes it), exact to the microsecond. */
export function isoToUs(text: string): number | null {
  const m = ISO.exec(text.trim());
  if (!m) return null;
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', zone] = m;
  let ms = zone ? Date.UTC(+y, +mo - 1, +d, +h, +mi, +s) : new Date(+y, +mo - 1, +d, +h, +mi, +s).getTime();
  if (zone && zone !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    ms -= sign * (parseInt(digits.slice(0, 2), 10) * 60 + parseInt(digits.slice(2), 10)) * 60_000;
  }
  return ms * 1000 + parseInt(frac.padEnd(6, '0'), 10);
}

/** us_to_datetime(us).isoformat(): UTC, microseconds only when there are any, "+00:00". */
export function usToIso(us: number): string {
  const micros = ((us % 1_000_000) + 1_000_000) % 1_000_000;
  const seconds = new Date((us - micros) / 1000).toISOString().slice(0, 19);
  return `${seconds}${micros ? '.' + String(micros).padStart(6, '0') : ''}+00:00`;
}

function parseTime(name: string, value: FilterSpec['since']): number | null {
  if (value === undefined || value === null || value === '') return null;
  if (value instanceof Date) return value.getTime() * 1000;
  if (typeof value === 'string') {
    const us = isoToUs(value);
    if (us === null) throw new FilterError(`${name} must be an ISO 8601 time, not '${value}'`);
    return us;
  }
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  throw new FilterError(`${name} must be a datetime or ISO 8601 text, not ${JSON.stringify(value)}`);
}
