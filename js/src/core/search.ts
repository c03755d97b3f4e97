/**
 * Text search: the search box, the count of matches, and the current match moved to the previous or
 * next occurrence across every record the filters show, whether its row is rendered or not.
 */
import { el, toolButton } from './format';
import type { FilteredView } from './records';
import { findMatches } from './render';
import type { VirtualRows } from './virtual';

/** What the search needs from the viewer it sits in. */
export interface SearchHost {
  readonly view: FilteredView;
  readonly list: VirtualRows;
  /** Apply the controls, the search box's text among them. */
  applyFilters(): void;
  /** Bring the list up to date with the records that arrived since the last frame. */
  flush(): void;
  pause(): void;
}

export class TextSearch {
  /** The search box with its previous/next buttons and match count, for the toolbar. */
  readonly root: HTMLElement;
  private readonly input: HTMLInputElement;
  private readonly matchCount: HTMLElement;
  /** The current match: its record's position in the view and which occurrence in its message (-1: none). */
  private match = { position: -1, occurrence: -1 };

  constructor(doc: Document, signal: AbortSignal, private readonly host: SearchHost) {
    this.root = el(doc, 'span', 'ntl-search');
    const input = (this.input = el(doc, 'input', 'ntl-search-input'));
    input.type = 'search';
    input.placeholder = 'Search';
    input.setAttribute('aria-label', 'Search');
    let searchTimer: ReturnType<typeof setTimeout> | undefined;
    input.addEventListener('input', () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => host.applyFilters(), 150);
    }, { signal });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        clearTimeout(searchTimer);
        if (host.view.filter.search !== (input.value || null)) host.applyFilters();
        this.next(e.shiftKey ? -1 : 1);
      }
    }, { signal });
    const prev = toolButton(doc, '↑', 'Previous match', () => this.next(-1), signal);
    const next = toolButton(doc, '↓', 'Next match', () => this.next(1), signal);
    this.matchCount = el(doc, 'span', 'ntl-match-count');
    this.matchCount.setAttribute('aria-live', 'polite');
    this.root.append(input, prev, next, this.matchCount);
  }

  /** The text searched for (null: none). */
  text(): string | null {
    return this.input.value || null;
  }

  /** Which occurrence in the record at `position` is the current match (-1: none there). */
  currentAt(position: number): number {
    return this.match.position === position ? this.match.occurrence : -1;
  }

  /** Forget the current match (its position means nothing in a new view). */
  reset(): void {
    this.match = { position: -1, occurrence: -1 };
  }

  private occurrences(position: number): number {
    const needle = this.host.view.filter.searchLower;
    return needle ? findMatches(this.host.view.at(position).message, needle).length : 0;
  }

  updateCount(): void {
    const view = this.host.view;
    const needle = view.filter.searchLower;
    if (!needle) {
      this.matchCount.textContent = '';
      return;
    }
    let total = 0;
    let before = 0;
    for (let p = 0; p < view.length; p++) {
      const n = this.occurrences(p);
      if (p < this.match.position) before += n;
      total += n;
    }
    const current = this.match.position >= 0 ? `${before + this.match.occurrence + 1} of ` : '';
    this.matchCount.textContent = total ? `${current}${total.toLocaleString()} matches` : 'no match';
  }

  /** Move to the next (+1) or previous (-1) occurrence, across records whether rendered or not. */
  next(direction: 1 | -1): void {
    const view = this.host.view;
    const needle = view.filter.searchLower;
    if (!needle || !view.length) return;
    const { position, occurrence } = this.match;
    if (position >= 0 && position < view.length) {
      const n = this.occurrences(position);
      if (occurrence + direction >= 0 && occurrence + direction < n) {
        this.setMatch(position, occurrence + direction);
        return;
      }
    }
    const start = position < 0 ? (direction > 0 ? 0 : view.length - 1) : position + direction;
    const count = view.length;
    for (let step = 0; step < count; step++) {
      const p = (((start + direction * step) % count) + count) % count;
      const n = this.occurrences(p);
      if (n) {
        this.setMatch(p, direction > 0 ? 0 : n - 1);
        return;
      }
    }
  }

  private setMatch(position: number, occurrence: number): void {
    const host = this.host;
    host.flush();
    const old = this.match.position;
    this.match = { position, occurrence };
    host.pause();
    host.list.scrollToIndex(position, 'center');
    if (old >= 0 && old < host.view.length) host.list.update(old);
    host.list.update(position);
    this.updateCount();
  }
}
