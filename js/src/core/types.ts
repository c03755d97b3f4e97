/** The shapes the viewer speaks: one log record, a task row, a task's stats. */

/** One log line of one task, as the viewer holds it. */
export interface LogRecord {
  seq: number;
  /** UTC microseconds since the epoch (below 2^53 until the year 2255, so exact as a number). */
  ts: number;
  level: string;
  source: string;
  message: string;
  /** The metadata as the JSON object text the store keeps (null: none); parsed only when needed. */
  meta: string | null;
}

export interface TaskInfo {
  id: string;
  plugin: string;
  status: string;
  params?: unknown;
  created_at?: string | null;
  started_at?: string | null;
  finished_at?: string | null;
  error?: string | null;
  progress?: number | null;
  progress_message?: string | null;
  record_count?: number | null;
  /** Who started the task (null: a task from before the store recorded it). */
  username?: string | null;
  [key: string]: unknown;
}

export interface TaskStats {
  levels: Record<string, number>;
  sources: Record<string, number>;
  metadata_keys: string[];
  total: number;
}

export const STATUSES = ['PENDING', 'RUNNING', 'SUCCESS', 'FAILED', 'CANCELLED', 'INTERRUPTED'];
export const ACTIVE_STATUSES = new Set(['PENDING', 'RUNNING']);
