/**
 * What the viewer needs from a host, with two implementations: the widget model (anywidget custom
 * messages, js/src/widget-transport.ts) and the server's REST/WebSocket API (js/src/lab/rest.ts).
 */
import type { FilterSpec } from './filter';
import type { LogRecord, TaskInfo, TaskStats } from './types';

/** Events of one task's log stream: history pages, then live batches (stream.py's protocol). */
export interface StreamEvents {
  records(records: LogRecord[]): void;
  /** History is complete up to `cursor`; what follows is live. */
  historyEnd(cursor: number): void;
  status(task: TaskInfo): void;
  /** A new filter applies from here on: records held under the old one are replaced. */
  reset(): void;
  end(status: string): void;
  error(message: string): void;
}

export interface LogStream {
  /** Change the server-side filter without reopening (the stream answers with reset, then history). */
  setFilter(spec: FilterSpec): void;
  close(): void;
}

export interface ViewerTransport {
  openStream(taskId: string, spec: FilterSpec, events: StreamEvents): LogStream;
  task(taskId: string): Promise<TaskInfo>;
  stats(taskId: string): Promise<TaskStats>;
  /** Save the filtered log as a file (JSONL or CSV), through the export endpoint or the kernel. */
  download(taskId: string, spec: FilterSpec, format: 'jsonl' | 'csv'): Promise<void>;
}

export interface PluginInfo {
  name: string;
  description?: string | null;
  params_schema?: { properties?: Record<string, { type?: string; default?: unknown; description?: string; title?: string; items?: unknown; enum?: unknown[] }>; required?: string[] } | null;
}

export interface SettingsInfo {
  log_level: string;
  task_log_level: string;
  belief_scope_enabled: boolean;
  writable: boolean;
}

/** The task list, starting tasks and the settings (sidebar and the TaskList/SettingsPanel widgets). */
/** Which tasks a list shows: by status, plugin and who started them, the page before task id `before`. */
export interface TaskQuery {
  status?: string;
  plugin?: string;
  /** Only the tasks this user started (exact match with TaskInfo.username). */
  user?: string;
  before?: string;
  limit?: number;
}

export interface TaskPage {
  tasks: TaskInfo[];
  cursor: string | null;
  /** The asking user's name as task rows record it (compare TaskInfo.username with it); null: unknown. */
  user: string | null;
  /** False when this user may not see other users' tasks: the page then holds only theirs. */
  others_visible: boolean;
}

export interface TaskService {
  /** A page of tasks, newest first; `cursor` (the `before` of the next page) is null on the last page. */
  listTasks(query?: TaskQuery): Promise<TaskPage>;
  /** Task created or changed, or deleted; returns the function that stops watching. */
  watchTasks(changed: (task: TaskInfo) => void, deleted: (id: string) => void): () => void;
  plugins(): Promise<PluginInfo[]>;
  startTask(plugin: string, params: Record<string, unknown>): Promise<TaskInfo>;
  cancelTask(id: string): Promise<void>;
  deleteTask(id: string): Promise<void>;
  getSettings(): Promise<SettingsInfo>;
  putSettings(changes: Partial<Omit<SettingsInfo, 'writable'>>): Promise<SettingsInfo>;
}

/** Records from the wire's object form (record.to_dict / record_text): ISO timestamp, metadata object. */
export function recordFromWire(item: { seq: number; timestamp: string; level: string; source: string; message: string; metadata: unknown }): LogRecord {
  return {
    seq: item.seq,
    ts: isoToUsFast(item.timestamp),
    level: item.level,
    source: item.source,
    message: item.message,
    meta: item.metadata === null || item.metadata === undefined ? null : JSON.stringify(item.metadata),
  };
}

/** "2024-05-01T12:00:00.123456+00:00" -> µs; the server always sends UTC with this shape. */
export function isoToUsFast(text: string): number {
  const ms = Date.parse(text);
  const dot = text.indexOf('.', 19);
  const fraction = dot === 19 ? text.slice(20, 26) : '';
  return Math.floor(ms / 1000) * 1_000_000 + (fraction ? parseInt(fraction.padEnd(6, '0'), 10) : 0);
}

/** Records from the widget's columnar batch: {seq: [...], ts: [...], level, source, message, meta}. */
export interface ColumnBatch {
  seq: number[];
  ts: number[];
  level: string[];
  source: string[];
  message: string[];
  meta: (string | null)[];
}

export function recordsFromColumns(batch: ColumnBatch): LogRecord[] {
  const out: LogRecord[] = new Array(batch.seq.length);
  for (let i = 0; i < out.length; i++) {
    out[i] = { seq: batch.seq[i], ts: batch.ts[i], level: batch.level[i], source: batch.source[i], message: batch.message[i], meta: batch.meta[i] };
  }
  return out;
}
