/**
 * What both hosts do alike: a filter becomes the fields of a filter message (the widget's and the log
 * socket's) or a query string, a log stream's message becomes the viewer's StreamEvents call, and an
 * exported log is saved as a file.
 */
import { LogFilter, makeFilter, usToIso, type FilterSpec } from './filter';
import { LEVEL_VALUES, LEVELS } from './levels';
import { compareCodePoints } from './text';
import type { StreamEvents } from './transport';
import type { LogRecord, TaskInfo } from './types';

/**
 * A filter on the wire: the fields of the widget's filter and of the log socket's filter message, as
 * filter.py's LogFilter.to_wire writes them and from_wire reads them back (makeFilter reads them too).
 * What is not set is left out.
 */
export interface FilterWire {
  level?: string;
  /** Sorted by code point. */
  source?: string[];
  search?: string;
  /** "KEY=VALUE" (an empty VALUE is the empty string) or "KEY" (the key exists). */
  meta?: string[];
  after?: number;
  before?: number;
  limit?: number;
  /** ISO 8601 in UTC. */
  since?: string;
  until?: string;
  order?: 'desc';
}

const asFilter = (filter: FilterSpec | LogFilter) => (filter instanceof LogFilter ? filter : makeFilter(filter));
const levelName = (filter: LogFilter) => LEVELS.find((l) => LEVEL_VALUES[l] === filter.minLevel)!;
const sortedSources = (filter: LogFilter) => [...filter.sources!].sort(compareCodePoints);

/** The filter as the fields of a filter message (LogFilter.to_wire); a spec is made a filter first, so FilterError says what is wrong with it. */
export function filterToWire(spec: FilterSpec | LogFilter): FilterWire {
  const filter = asFilter(spec);
  const wire: FilterWire = {};
  if (filter.minLevel > 10) wire.level = levelName(filter);
  if (filter.sources !== null) wire.source = sortedSources(filter);
  if (filter.search) wire.search = filter.search;
  if (filter.meta.length) wire.meta = filter.meta.map((c) => (c.value === null ? c.key : `${c.key}=${c.value}`));
  if (filter.afterSeq !== null) wire.after = filter.afterSeq;
  if (filter.beforeSeq !== null) wire.before = filter.beforeSeq;
  if (filter.limit !== null) wire.limit = filter.limit;
  if (filter.sinceUs !== null) wire.since = usToIso(filter.sinceUs);
  if (filter.untilUs !== null) wire.until = usToIso(filter.untilUs);
  if (filter.order !== 'asc') wire.order = filter.order;
  return wire;
}

/**
 * The filter as a query string's parameters (LogFilter.to_params), which the server parses back:
 * `meta.KEY=VALUE` compares (the empty VALUE too), `has=KEY,KEY` asks that keys exist, times are ISO 8601 in UTC.
 */
export function filterToParams(spec: FilterSpec | LogFilter): Record<string, string> {
  const filter = asFilter(spec);
  const params: Record<string, string> = {};
  if (filter.minLevel > 10) params.level = levelName(filter);
  if (filter.sources !== null) params.source = sortedSources(filter).join(',');
  if (filter.search) params.search = filter.search;
  for (const c of filter.meta) if (c.value !== null) params[`meta.${c.key}`] = c.value;
  const exists = filter.meta.filter((c) => c.value === null).map((c) => c.key);
  if (exists.length) params.has = exists.join(',');
  const pairs: [string, number | null][] = [['after', filter.afterSeq], ['before', filter.beforeSeq], ['limit', filter.limit]];
  for (const [name, value] of pairs) if (value !== null) params[name] = String(value);
  if (filter.sinceUs !== null) params.since = usToIso(filter.sinceUs);
  if (filter.untilUs !== null) params.until = usToIso(filter.untilUs);
  if (filter.order !== 'asc') params.order = filter.order;
  return params;
}

/** The fields of a stream message, each carried by its kinds (stream.py and widget.py send the same ones). */
export interface StreamMessage {
  cursor: number;
  task: TaskInfo;
  status: string;
  message: string;
}

/**
 * Hand one stream message of kind `kind` to `events`. `decodeRecords` turns a records message into
 * records (each host carries them its own way) and answers null when the message holds none.
 */
export function dispatchStreamMessage(kind: string, msg: StreamMessage, events: StreamEvents, decodeRecords: () => LogRecord[] | null): void {
  switch (kind) {
    case 'records': {
      const records = decodeRecords();
      if (records) events.records(records);
      break;
    }
    case 'history_end': events.historyEnd(msg.cursor); break;
    case 'status': events.status(msg.task); break;
    case 'reset': events.reset(); break;
    case 'end': events.end(msg.status); break;
    case 'error': events.error(msg.message); break;
    // 'lagging': the server catches up from the cursor it last sent; RecordStore drops any repeat.
  }
}

/** Save `blob` as a file named `name`, as the browser saves a download. */
export function saveFile(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  // The download reads the URL after click() returns: revoked at once, it could find nothing there.
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
