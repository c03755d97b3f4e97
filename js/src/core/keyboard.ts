/**
 * The list's keyboard and its current record: the arrows and PageUp/PageDown move it, Home/End go to
 * either end, Enter (or Space) opens it, Ctrl+C copies it, Jump to first error moves it there; the
 * 'Current record' status region says which record it is.
 */
import { el } from './format';
import type { FilteredView } from './records';
import type { LogRecord } from './types';
import type { VirtualRows } from './virtual';

/** What the keyboard needs from the viewer it sits in. */
export interface KeyboardHost {
  readonly view: FilteredView;
  readonly list: VirtualRows;
  /** Bring the list up to date with the records that arrived since the last frame. */
  flush(): void;
  pause(): void;
  jumpToLatest(): void;
  toggleDetails(position: number): void;
  copy(record: LogRecord): Promise<void>;
  say(message: string): void;
}

export class RecordKeyboard {
  /** The current record's position in the view (-1: none). */
  position = -1;
  /** The list keeps the keyboard focus while the arrows move the current record: this says which it is. */
  readonly status: HTMLElement;

  constructor(doc: Document, private readonly host: KeyboardHost) {
    this.status = el(doc, 'div', 'ntl-sr-only');
    this.status.setAttribute('role', 'status');
    this.status.setAttribute('aria-label', 'Current record');
  }

  /** Take the keys pressed on the list element `scroll` itself (not on a button in a row). */
  listen(scroll: HTMLElement, signal: AbortSignal): void {
    scroll.addEventListener('keydown', (e) => e.target === scroll && this.onKey(e), { signal });
  }

  /** No current record (a new view, or the end of the list where follow mode takes over). */
  reset(): void {
    this.position = -1;
    this.status.textContent = '';
  }

  /** Make the first ERROR record the filters show the current one. */
  jumpToFirstError(): void {
    const host = this.host;
    const position = host.view.find((r) => r.level === 'ERROR');
    if (position < 0) {
      host.say('No error among the records shown.');
      return;
    }
    host.pause();
    this.focusRow(position);
    this.announce(position);
    host.say(`First error: record ${host.view.at(position).seq}.`);
  }

  private onKey(e: KeyboardEvent): void {
    const { view, list } = this.host;
    const rows = list.rowsPerPage(); // two-line rows in a narrow host: fewer per page
    const moves: Record<string, number> = { ArrowDown: 1, ArrowUp: -1, PageDown: rows, PageUp: -rows };
    if (e.key in moves) {
      e.preventDefault();
      const from = this.position >= 0 ? this.position : moves[e.key] > 0 ? -1 : view.length;
      const to = Math.max(0, Math.min(view.length - 1, from + moves[e.key]));
      if (moves[e.key] < 0) this.host.pause();
      this.focusRow(to);
      this.announce(to);
      if (to === view.length - 1 && moves[e.key] > 0) this.host.jumpToLatest();
    } else if (e.key === 'Home') {
      e.preventDefault();
      this.host.pause();
      this.focusRow(0);
      this.announce(0);
    } else if (e.key === 'End') {
      e.preventDefault();
      this.reset();
      this.host.jumpToLatest();
    } else if ((e.key === 'Enter' || e.key === ' ') && this.position >= 0) {
      e.preventDefault();
      this.host.toggleDetails(this.position);
    } else if (e.key === 'c' && (e.ctrlKey || e.metaKey) && this.position >= 0) {
      e.preventDefault();
      void this.host.copy(view.at(this.position));
    }
  }

  private focusRow(position: number): void {
    const host = this.host;
    host.flush();
    const old = this.position;
    this.position = position;
    host.list.scrollToIndex(position, 'center');
    if (old >= 0 && old < host.view.length) host.list.update(old);
    host.list.update(position);
  }

  /** Tell assistive tools the record the arrows moved to (its row is text, the list keeps the focus). */
  private announce(position: number): void {
    const r = this.host.view.at(position);
    if (!r) return;
    const text = `Record ${r.seq}, ${position + 1} of ${this.host.view.length}: ${r.level}, ${r.source}: ${r.message.slice(0, 300)}`;
    // The same text again (an arrow at the first or last record) is not read out; a silent
    // no-break space makes it a change.
    this.status.textContent = this.status.textContent === text ? `${text}\u00a0` : text;
  }
}
