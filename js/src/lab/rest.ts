/**
 * The transport over the server's REST and WebSocket API (server/handlers.py, server/stream.py),
 * with URLs and authentication from @jupyterlab/services' ServerConnection. No kernel needed.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import type { FilterSpec } from '../core/filter';
import { dispatchStreamMessage, filterToParams, filterToWire, saveFile } from '../core/protocol';
import { recordFromWire, type LogStream, type PluginInfo, type SettingsInfo, type StreamEvents, type TaskPage, type TaskQuery, type TaskService, type ViewerTransport } from '../core/transport';
import type { TaskInfo, TaskStats } from '../core/types';

const API = 'nbtasklog/api';
/** Close codes after which reconnecting cannot help (stream.py: unknown task, bad filter). */
const FINAL_CLOSE = new Set([4400, 4403, 4404]);

export class RestTransport implements ViewerTransport, TaskService {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  private url(path: string, query?: Record<string, string>): string {
    return URLExt.join(this.settings.baseUrl, API, path) + (query && Object.keys(query).length ? URLExt.objectToQueryString(query) : '');
  }

  async request<T>(path: string, init: RequestInit = {}, query?: Record<string, string>): Promise<T> {
    // 'no-cache' (revalidate) instead of ServerConnection's default 'no-store', which appends a bare
    // timestamp parameter that the API's strict query checks answer with 400.
    const response = await ServerConnection.makeRequest(this.url(path, query), { cache: 'no-cache', ...init }, this.settings);
    if (!response.ok) {
      let message = response.statusText;
      try {
        const body = await response.json();
        message = body.message || body.reason || message;
      } catch {
        /* not JSON: keep the status text */
      }
      throw new ServerConnection.ResponseError(response, `[nbtasklog] ${response.status}: ${message}`);
    }
    return response.status === 204 ? (undefined as T) : ((await response.json()) as T);
  }

  private socket(path: string, query: Record<string, string>): WebSocket {
    const q = { ...query };
    if (this.settings.token && this.settings.appendToken) q.token = this.settings.token;
    const url = URLExt.join(this.settings.wsUrl, API, path) + (Object.keys(q).length ? URLExt.objectToQueryString(q) : '');
    return new this.settings.WebSocket(url);
  }

  openStream(taskId: string, spec: FilterSpec, events: StreamEvents): LogStream {
    let current = spec;
    let cursor = 0;
    let closed = false;
    let ended = false;
    let ws: WebSocket;
    let retry: ReturnType<typeof setTimeout> | undefined;
    const connect = (after: number) => {
      const query = filterToParams(current);
      if (after) query.after = String(after);
      ws = this.socket(`tasks/${encodeURIComponent(taskId)}/logs/stream`, query);
      ws.onmessage = (event) => {
        const msg = JSON.parse(event.data as string);
        // The position a reconnect resumes from, and whether the stream ended (no reconnect then).
        if (msg.type === 'records') cursor = msg.cursor;
        else if (msg.type === 'reset') cursor = 0;
        else if (msg.type === 'end') ended = true;
        dispatchStreamMessage(msg.type, msg, events, () => msg.records.map(recordFromWire));
      };
      ws.onclose = (event) => {
        if (closed || ended) return;
        if (FINAL_CLOSE.has(event.code)) {
          events.error(`[nbtasklog] log stream closed: ${event.reason || event.code}`);
          return;
        }
        retry = setTimeout(() => connect(cursor), 1000); // the server restarted or the network dropped: resume at the cursor
      };
    };
    connect(0);
    return {
      setFilter: (next) => {
        current = next;
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'filter', ...filterToWire(next) }));
      },
      close: () => {
        closed = true;
        clearTimeout(retry);
        ws.close();
      },
    };
  }

  task(taskId: string): Promise<TaskInfo> {
    return this.request(`tasks/${encodeURIComponent(taskId)}`);
  }

  stats(taskId: string): Promise<TaskStats> {
    return this.request(`tasks/${encodeURIComponent(taskId)}/logs/stats`);
  }

  async download(taskId: string, spec: FilterSpec, format: 'jsonl' | 'csv'): Promise<void> {
    const query = { ...filterToParams(spec), format };
    const response = await ServerConnection.makeRequest(this.url(`tasks/${encodeURIComponent(taskId)}/logs/export`, query), { cache: 'no-cache' }, this.settings);
    if (!response.ok) throw new Error(`[nbtasklog] export failed: ${response.status} ${response.statusText}`);
    saveFile(await response.blob(), `${taskId}.${format}`);
  }

  listTasks(query: TaskQuery = {}): Promise<TaskPage> {
    const params: Record<string, string> = { limit: String(query.limit ?? 100) };
    for (const key of ['status', 'plugin', 'user', 'before'] as const) if (query[key]) params[key] = query[key]!;
    return this.request<TaskPage>('tasks', {}, params);
  }

  watchTasks(changed: (t: TaskInfo) => void, deleted: (id: string) => void): () => void {
    let closed = false;
    let ws: WebSocket;
    let retry: ReturnType<typeof setTimeout> | undefined;
    const connect = () => {
      ws = this.socket('tasks/stream', {});
      ws.onmessage = (event) => {
        const msg = JSON.parse(event.data as string);
        if (msg.type === 'task') changed(msg.task);
        else if (msg.type === 'deleted') deleted(msg.id);
      };
      ws.onclose = () => {
        if (!closed) retry = setTimeout(connect, 2000);
      };
    };
    connect();
    return () => {
      closed = true;
      clearTimeout(retry);
      ws.close();
    };
  }

  async plugins(): Promise<PluginInfo[]> {
    return (await this.request<{ plugins: PluginInfo[] }>('plugins')).plugins;
  }

  startTask(plugin: string, params: Record<string, unknown>): Promise<TaskInfo> {
    return this.request('tasks', { method: 'POST', body: JSON.stringify({ plugin, params }) });
  }

  async cancelTask(id: string): Promise<void> {
    await this.request(`tasks/${encodeURIComponent(id)}/cancel`, { method: 'POST', body: '{}' });
  }

  async deleteTask(id: string): Promise<void> {
    await this.request(`tasks/${encodeURIComponent(id)}`, { method: 'DELETE' });
  }

  getSettings(): Promise<SettingsInfo> {
    return this.request('settings');
  }

  putSettings(changes: Partial<Omit<SettingsInfo, 'writable'>>): Promise<SettingsInfo> {
    return this.request('settings', { method: 'PUT', body: JSON.stringify(changes) });
  }
}
