// A transport the tests drive by hand: they push history, live records and events into the viewer.
import type { FilterSpec } from '../src/core/filter';
import type { LogStream, StreamEvents, ViewerTransport } from '../src/core/transport';
import type { LogRecord, TaskInfo, TaskStats } from '../src/core/types';

export class FakeTransport implements ViewerTransport {
  events!: StreamEvents;
  filters: FilterSpec[] = [];
  closed = false;
  stat: TaskStats = { levels: { INFO: 0 }, sources: {}, metadata_keys: [], total: 0 };
  info: TaskInfo = { id: 't1', plugin: 'backup', status: 'RUNNING', started_at: new Date().toISOString(), progress: 0.5 };

  openStream(_taskId: string, spec: FilterSpec, events: StreamEvents): LogStream {
    this.events = events;
    this.filters.push(spec);
    return { setFilter: (s) => this.filters.push(s), close: () => (this.closed = true) };
  }
  task = async () => this.info;
  stats = async () => this.stat;
  download = async () => undefined;
}

export function records(from: number, to: number, make: (seq: number) => Partial<LogRecord> = () => ({})): LogRecord[] {
  const out: LogRecord[] = [];
  for (let seq = from; seq <= to; seq++) {
    out.push({ seq, ts: 1_714_564_800_000_000 + seq * 1000, level: 'INFO', source: 'plugin', message: `message ${seq}`, meta: null, ...make(seq) });
  }
  return out;
}

/** Resolves after the next animation frame (the viewer draws arrived records once per frame). */
export const nextFrame = () => new Promise<void>((resolve) => requestAnimationFrame(() => resolve()));
