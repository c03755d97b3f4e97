/**
 * The transport over an anywidget model: requests and stream events travel as custom messages
 * (widget.py is the Python side); record batches come as a binary buffer of columnar JSON.
 */
import type { FilterSpec } from './core/filter';
import { dispatchStreamMessage, filterToWire, saveFile } from './core/protocol';
import {
  recordsFromColumns,
  type ColumnBatch,
  type LogStream,
  type PluginInfo,
  type SettingsInfo,
  type StreamEvents,
  type TaskPage,
  type TaskQuery,
  type TaskService,
  type ViewerTransport,
} from './core/transport';
import type { TaskInfo, TaskStats } from './core/types';

/** The part of an anywidget model this transport uses. */
export interface WidgetModel {
  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[] | ArrayBufferView[]): void;
  on(name: string, callback: (...args: any[]) => void): void;
  off(name: string, callback?: (...args: any[]) => void): void;
}

interface Pending {
  resolve: (value: any) => void;
  reject: (error: Error) => void;
}

const decoder = new TextDecoder();

export function decodeColumns(buffer: ArrayBuffer | DataView | Uint8Array): ColumnBatch {
  const bytes = buffer instanceof Uint8Array ? buffer : buffer instanceof DataView ? new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength) : new Uint8Array(buffer);
  return JSON.parse(decoder.decode(bytes)) as ColumnBatch;
}

export class WidgetTransport implements ViewerTransport, TaskService {
  private next = 1;
  private pending = new Map<number, Pending>();
  private streams = new Map<number, StreamEvents>();
  private taskWatchers = new Set<{ changed: (t: TaskInfo) => void; deleted: (id: string) => void }>();

  constructor(private readonly model: WidgetModel, signal?: AbortSignal) {
    model.on('msg:custom', this.onMessage);
    signal?.addEventListener('abort', () => this.dispose());
  }

  private onMessage = (msg: any, buffers?: (ArrayBuffer | DataView)[]) => {
    if (!msg || typeof msg !== 'object') return;
    if (msg.type === 'reply') {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if ('error' in msg && msg.error != null) p.reject(new Error(String(msg.error)));
      else p.resolve(buffers?.length ? { ...msg.result, buffer: buffers[0] } : msg.result);
    } else if (msg.type === 'stream') {
      const events = this.streams.get(msg.stream);
      if (!events) return;
      dispatchStreamMessage(msg.event, msg, events, () => (buffers?.length ? recordsFromColumns(decodeColumns(buffers[0])) : null));
    } else if (msg.type === 'task') {
      this.taskWatchers.forEach((w) => w.changed(msg.task));
    } else if (msg.type === 'deleted') {
      this.taskWatchers.forEach((w) => w.deleted(msg.id));
    }
  };

  /** One request to the kernel; the reply carries the id back, failures as {error, id}. */
  request<T>(method: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.model.send({ type: 'request', id, method, args });
    });
  }

  openStream(taskId: string, spec: FilterSpec, events: StreamEvents): LogStream {
    const stream = this.next++;
    this.streams.set(stream, events);
    this.model.send({ type: 'open', stream, task: taskId, filter: filterToWire(spec) });
    return {
      setFilter: (next) => this.model.send({ type: 'filter', stream, filter: filterToWire(next) }),
      close: () => {
        this.streams.delete(stream);
        this.model.send({ type: 'close', stream });
      },
    };
  }

  task(taskId: string): Promise<TaskInfo> {
    return this.request('task', { task_id: taskId });
  }

  stats(taskId: string): Promise<TaskStats> {
    return this.request('stats', { task_id: taskId });
  }

  async download(taskId: string, spec: FilterSpec, format: 'jsonl' | 'csv'): Promise<void> {
    const reply = await this.request<{ name: string; buffer: DataView }>('export', { task_id: taskId, filter: filterToWire(spec), format });
    const view = reply.buffer;
    const blob = new Blob([new Uint8Array(view.buffer as ArrayBuffer, view.byteOffset, view.byteLength)], { type: format === 'csv' ? 'text/csv' : 'application/x-ndjson' });
    saveFile(blob, reply.name);
  }

  listTasks(query: TaskQuery = {}): Promise<TaskPage> {
    return this.request('tasks', { ...query });
  }

  watchTasks(changed: (t: TaskInfo) => void, deleted: (id: string) => void): () => void {
    const watcher = { changed, deleted };
    this.taskWatchers.add(watcher);
    return () => this.taskWatchers.delete(watcher);
  }

  plugins(): Promise<PluginInfo[]> {
    return this.request('plugins');
  }

  startTask(plugin: string, params: Record<string, unknown>): Promise<TaskInfo> {
    return this.request('start', { plugin, params });
  }

  async cancelTask(id: string): Promise<void> {
    await this.request('cancel', { task_id: id });
  }

  async deleteTask(id: string): Promise<void> {
    await this.request('delete', { task_id: id });
  }

  getSettings(): Promise<SettingsInfo> {
    return this.request('settings');
  }

  putSettings(changes: Partial<Omit<SettingsInfo, 'writable'>>): Promise<SettingsInfo> {
    return this.request('update_settings', { changes });
  }

  dispose(): void {
    this.model.off('msg:custom', this.onMessage);
    for (const stream of this.streams.keys()) this.model.send({ type: 'close', stream });
    this.streams.clear();
    for (const p of this.pending.values()) p.reject(new Error('[nbtasklog] widget view closed'));
    this.pending.clear();
  }
}
