/** The viewer's header: the task's status, plugin, progress, duration and its records counted by level. */
import { duration, el, seconds } from './format';
import { LEVELS } from './levels';
import type { TaskInfo } from './types';

export class TaskHeader {
  readonly root: HTMLElement;
  private readonly status: HTMLElement;
  private readonly plugin: HTMLElement;
  private readonly progress: HTMLElement;
  private readonly bar: HTMLElement;
  private readonly took: HTMLElement;
  private readonly progressMessage: HTMLElement;
  private readonly counts: HTMLElement;

  constructor(private readonly doc: Document) {
    const d = doc;
    this.root = el(d, 'div', 'ntl-header');
    this.status = el(d, 'span', 'ntl-status', '…');
    this.status.setAttribute('role', 'status');
    this.status.setAttribute('aria-label', 'Task status');
    this.plugin = el(d, 'span', 'ntl-plugin');
    this.progress = el(d, 'div', 'ntl-progress');
    this.progress.setAttribute('role', 'progressbar');
    this.progress.setAttribute('aria-label', 'Progress');
    this.progress.setAttribute('aria-valuemin', '0');
    this.progress.setAttribute('aria-valuemax', '100');
    this.bar = el(d, 'div', 'ntl-progress-bar');
    this.progress.appendChild(this.bar);
    this.took = el(d, 'span', 'ntl-duration');
    this.took.setAttribute('aria-label', 'Duration');
    this.counts = el(d, 'span', 'ntl-counts');
    this.counts.setAttribute('aria-label', 'Records by level');
    this.progressMessage = el(d, 'span', 'ntl-progress-message');
    this.root.append(this.status, this.plugin, this.progress, this.took, this.progressMessage, this.counts);
  }

  show(t: TaskInfo): void {
    this.status.textContent = t.status;
    this.status.className = `ntl-status ntl-status-${t.status}`;
    this.plugin.textContent = t.plugin ?? '';
    const fraction = t.progress ?? (t.status === 'SUCCESS' ? 1 : null);
    this.progress.hidden = fraction === null;
    if (fraction !== null) {
      const pct = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
      this.bar.style.width = `${pct}%`;
      this.progress.setAttribute('aria-valuenow', String(pct));
      this.progress.title = `${pct}%`;
    }
    this.progressMessage.textContent = t.progress_message ?? (t.error ? `error: ${t.error}` : '');
    this.tick(t);
  }

  /** The duration so far: called every second, since a running task's grows. */
  tick(t: TaskInfo | null): void {
    const s = t ? seconds(t.started_at, t.finished_at) : null;
    this.took.textContent = s === null ? '' : duration(s);
  }

  showCounts(levels: Record<string, number>): void {
    this.counts.replaceChildren();
    for (const name of LEVELS) {
      const chip = el(this.doc, 'span', `ntl-count ntl-count-${name}`, `${name} ${(levels[name] ?? 0).toLocaleString()}`);
      this.counts.appendChild(chip);
    }
  }
}
