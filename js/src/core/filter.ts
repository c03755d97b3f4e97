/**
 * LogFilter: the viewer's twin of filter.py's LogFilter.matches and make_filter, with the same meaning
 * (the same test cases as tests/test_filter.py run against it in js/test/filter.test.ts, and the cases of
 * tests/filter_wire_cases.json in js/test/protocol.test.ts). protocol.ts writes it for the wire.
 */
import { JsonNumber, parseLossless, type JsonValue } from './json';
import { LEVEL_VALUES, parseLevel } from './levels';
import { compareCodePoints, strip, validText } from './text';
import type { LogRecord } from './types';

const KEY_SEGMENT = /^[A-Za-z0-9_-]+$/;
export const MAX_LIMIT = 100_000;
/** The largest seq (the column is a BIGINT), as text: a JS number rounds it up to 2**63, which is past it. */
const MAX_SEQ_TEXT = '9223372036854775807';
/**
 * The times a Python datetime holds, 0001-01-01 to 9999-12-31 in UTC, in microseconds: from MIN_US to
 * before END_US (10000-01-01). A JS number holds END_US, not the microsecond before it, which rounds up to it.
 */
export const MIN_US = -62_135_596_800_000_000;
export const END_US = 253_402_300_800_000_000;

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

  /** The same filter: every condition, the order and the limit. */
  equals(other: LogFilter): boolean {
    return identity(this) === identity(other);
  }
}

function identity(f: LogFilter): string {
  const sources = f.sources === null ? null : [...f.sources].sort(compareCodePoints);
  return JSON.stringify([f.minLevel, sources, f.search, f.meta.map((c) => [c.key, c.value]), f.afterSeq, f.beforeSeq, f.sinceUs, f.untilUs, f.order, f.limit]);
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
    spec.search ? validText(spec.search) : null,
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
  const names = typeof source === 'string' ? [source] : [...source];
  if (!names.every((n) => typeof n === 'string')) throw new FilterError('source must be a name or a list of names');
  // A comma separates names in every form (no source name holds one), as the query string carries them.
  const cleaned = new Set(names.flatMap((n) => n.split(',')).map(strip).filter(Boolean).map(validText));
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
    const path = strip(key).split('.');
    if (!path.every((p) => KEY_SEGMENT.test(p))) {
      throw new FilterError(`bad metadata key '${key}': use letters, digits, '_' or '-', with '.' between nested keys`);
    }
    if (value !== null && typeof value === 'object') {
      throw new FilterError(`metadata condition '${key}': compare text, a number or true/false, not ${Array.isArray(value) ? 'list' : 'dict'}`);
    }
    if (value !== null && typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new FilterError(`metadata condition '${key}': compare text, a number or true/false, not ${typeof value}`);
    }
    return new MetaCondition(path, value === null ? null : validText(jsonScalarText(value as string | number | boolean)));
  });
  // All must hold, so their order means nothing and a repeat adds nothing: sorted and unique as make_filter
  // has them (a path's parts joined by NUL, which no key holds, sort as Python's tuples of them).
  const compare = (a: MetaCondition, b: MetaCondition) => {
    const [x, y] = [a.path.join('\u0000'), b.path.join('\u0000')];
    if (x !== y) return x < y ? -1 : 1;
    if ((a.value === null) !== (b.value === null)) return a.value === null ? 1 : -1;
    return compareCodePoints(a.value ?? '', b.value ?? '');
  };
  const unique = conditions.sort(compare).filter((c, i, all) => i === 0 || compare(all[i - 1], c) !== 0);
  const compared = new Map<string, string>();
  for (const c of unique) {
    if (c.value === null) continue;
    const first = compared.get(c.key);
    // No record holds two values at one key; and the query string carries one value per key.
    if (first !== undefined) throw new FilterError(`metadata key '${c.key}' is compared with two values, '${first}' and '${c.value}': a record holds one`);
    compared.set(c.key, c.value);
  }
  return unique;
}

/** A whole number from `minimum` to `maximum`; without a maximum, a seq (up to the largest a BIGINT holds). */
function parseIntArg(name: string, value: unknown, minimum: number, maximum?: number): number | null {
  if (value === undefined || value === null || value === '') return null;
  const number = typeof value === 'number' ? value : typeof value === 'string' && /^\s*[-+]?\d+\s*$/.test(value) ? parseInt(value, 10) : NaN;
  if (!Number.isInteger(number)) throw new FilterError(`${name} must be a whole number, not ${JSON.stringify(value)}`);
  const tooBig = maximum === undefined ? number >= 2 ** 63 : number > maximum;
  if (number < minimum || tooBig) {
    const bound = maximum !== undefined ? `between ${minimum} and ${maximum}` : number < minimum ? `at least ${minimum}` : `between ${minimum} and ${MAX_SEQ_TEXT}`;
    throw new FilterError(`${name} must be ${bound}, not ${number}`);
  }
  return number;
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * UTC microseconds of an ISO 8601 time (without an offset: local time, as make_filter takes it), exact to
 * the microsecond; null for text that is not one (a day or hour that does not exist included, as
 * datetime.fromisoformat has it).
 */
export function isoToUs(text: string): number | null {
  const m = ISO.exec(text);
  if (!m) return null;
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', zone] = m;
  // setFullYear, not Date.UTC or new Date(y, …), which read years 0-99 as 1900-1999.
  const date = new Date(0);
  if (zone) date.setUTCFullYear(+y, +mo - 1, +d);
  else date.setFullYear(+y, +mo - 1, +d);
  const [month, day] = zone ? [date.getUTCMonth(), date.getUTCDate()] : [date.getMonth(), date.getDate()];
  if (month !== +mo - 1 || day !== +d || +h > 23 || +mi > 59 || +s > 59) return null;
  if (zone) date.setUTCHours(+h, +mi, +s, 0);
  else date.setHours(+h, +mi, +s, 0);
  let ms = date.getTime();
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
  let us: number | null;
  if (value instanceof Date) us = value.getTime() * 1000;
  else if (typeof value === 'string') {
    us = isoToUs(value);
    if (us === null) throw new FilterError(`${name} must be an ISO 8601 time, not '${value}'`);
  } else if (typeof value === 'number' && Number.isInteger(value)) us = value;
  else throw new FilterError(`${name} must be a datetime or ISO 8601 text, not ${JSON.stringify(value)}`);
  // The SQL face and the text forms of the other side write a time as a datetime, which holds these.
  if (!(us >= MIN_US && us < END_US)) throw new FilterError(`${name} must be a time between 0001-01-01 and 9999-12-31 in UTC, not ${JSON.stringify(value)}`);
  return us;
}
