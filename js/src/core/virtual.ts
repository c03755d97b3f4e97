/**
 * VirtualRows: only the visible rows plus a small overscan are in the DOM, on @tanstack/virtual-core.
 *
 * The host gives a scroll element and a row renderer; rows are kept by key while they stay in range,
 * so a row's DOM (and its expanded state) is reused rather than rebuilt on every scroll.
 */
import { Virtualizer, elementScroll, measureElement, observeElementOffset, observeElementRect, type Rect } from '@tanstack/virtual-core';

const FOCUSABLE = 'button, input, select, textarea, a[href], [tabindex]';

export interface VirtualRowsOptions {
  scrollElement: HTMLElement;
  /** The estimated height of a collapsed row in px; taller rows (expanded metadata) are measured. */
  rowHeight: number;
  overscan?: number;
  count: number;
  getKey: (index: number) => number | string;
  /** Fill `row` (already emptied when it is new) for item `index`. */
  renderRow: (row: HTMLElement, index: number, isNew: boolean) => void;
  onScroll?: () => void;
  /** For tests and headless hosts: the viewport size before any layout has happened. */
  initialRect?: Rect;
}

export class VirtualRows {
  readonly inner: HTMLElement;
  readonly virtualizer: Virtualizer<HTMLElement, HTMLElement>;
  private rows = new Map<number | string, HTMLElement>();
  private unmount: () => void;
  private count: number;
  private rendering = false;

  constructor(private readonly options: VirtualRowsOptions) {
    const doc = options.scrollElement.ownerDocument;
    this.count = options.count;
    this.inner = doc.createElement('div');
    this.inner.className = 'ntl-rows';
    this.inner.style.position = 'relative';
    this.inner.style.width = '100%';
    options.scrollElement.appendChild(this.inner);
    this.virtualizer = new Virtualizer<HTMLElement, HTMLElement>({
      count: this.count,
      getScrollElement: () => options.scrollElement,
      estimateSize: () => options.rowHeight,
      overscan: options.overscan ?? 8,
      getItemKey: (index) => options.getKey(index),
      scrollToFn: elementScroll,
      observeElementRect: (instance, cb) => {
        if (options.initialRect) cb(options.initialRect);
        return observeElementRect(instance, (rect) => cb(rect.height || !options.initialRect ? rect : options.initialRect));
      },
      observeElementOffset,
      initialRect: options.initialRect,
      indexAttribute: 'data-index',
      // A row measured while its panel is hidden (or without layout) reads 0 px; caching that would
      // pile every such row onto one offset, so keep the estimate instead.
      measureElement: (element, entry, instance) => measureElement(element, entry, instance) || options.rowHeight,
      onChange: () => this.render(),
    });
    this.unmount = this.virtualizer._didMount();
    this.virtualizer._willUpdate();
    options.scrollElement.addEventListener('scroll', this.handleScroll, { passive: true });
    this.render();
  }

  private handleScroll = () => this.options.onScroll?.();

  /** The number of items changed (records appended or a filter applied). */
  setCount(count: number, keysChanged = false): void {
    this.count = count;
    const options = { ...this.virtualizer.options, count };
    // The same index is another record now: a new key function makes the virtualizer lay out again,
    // while its size cache (by key, i.e. seq) stays valid, so measure() (which empties it) is not needed.
    if (keysChanged) options.getItemKey = (index) => this.options.getKey(index);
    this.virtualizer.setOptions(options);
    this.virtualizer._willUpdate();
    this.render();
  }

  /** Redraw every row in range (their content changed: new search highlight, expanded state). */
  refresh(): void {
    // Rebuilt rows would drop the keyboard focus to <body>: give it back to the same control of the same row.
    const active = this.inner.ownerDocument.activeElement as HTMLElement | null;
    let focusKey: number | string | undefined;
    let focusAt = -1;
    for (const [key, row] of this.rows) {
      if (active && row.contains(active)) {
        focusKey = key;
        focusAt = [...row.querySelectorAll(FOCUSABLE)].indexOf(active);
      }
      row.remove();
    }
    this.rows.clear();
    this.render();
    if (focusKey !== undefined) {
      const row = this.rows.get(focusKey);
      ((row && row.querySelectorAll<HTMLElement>(FOCUSABLE)[focusAt]) || this.options.scrollElement).focus();
    }
  }

  /** Re-fill one rendered row in place and measure it again (for example after expanding it). */
  update(index: number): void {
    const row = this.rows.get(this.options.getKey(index));
    if (!row) return;
    row.replaceChildren();
    this.options.renderRow(row, index, true);
    this.virtualizer.measureElement(row);
  }

  scrollToIndex(index: number, align: 'start' | 'center' | 'end' | 'auto' = 'auto'): void {
    if (index >= 0 && index < this.count) this.virtualizer.scrollToIndex(index, { align });
  }

  scrollToEnd(): void {
    if (this.count > 0) this.virtualizer.scrollToIndex(this.count - 1, { align: 'end' });
  }

  /** Within `threshold` px of the bottom (so "following" the newest row). */
  isAtEnd(threshold = 4): boolean {
    const el = this.options.scrollElement;
    const viewport = el.clientHeight || this.options.initialRect?.height || 0;
    return this.virtualizer.getTotalSize() - (el.scrollTop + viewport) <= threshold;
  }

  /** Indexes of the rows now in the DOM, in order. */
  renderedIndexes(): number[] {
    return [...this.inner.children].map((el) => Number((el as HTMLElement).dataset.index)).sort((a, b) => a - b);
  }

  private dirty = false;

  private render(): void {
    if (this.rendering) {
      this.dirty = true; // a measurement moved rows while rendering: lay them out once more at the end
      return;
    }
    this.rendering = true;
    try {
      for (let pass = 0; pass < 3; pass++) {
        this.dirty = false;
        this.layout();
        if (!this.dirty) break;
      }
    } finally {
      this.rendering = false;
    }
  }

  /** Writes first (new rows, positions), then reads (measurements): one layout per frame, not one per row. */
  private layout(): void {
    const doc = this.inner.ownerDocument;
    const items = this.virtualizer.getVirtualItems();
    this.inner.style.height = `${this.virtualizer.getTotalSize()}px`;
    const keep = new Set<number | string>();
    const fresh: HTMLElement[] = [];
    for (const item of items) {
      const key = item.key as number | string;
      keep.add(key);
      let row = this.rows.get(key);
      if (row === undefined) {
        row = doc.createElement('div');
        row.style.position = 'absolute';
        row.style.left = '0';
        row.style.right = '0';
        this.rows.set(key, row);
        this.inner.appendChild(row);
      }
      // The key names the item (a record's seq): its content is made once; a new index only moves it.
      const isNew = row.dataset.index === undefined;
      row.dataset.index = String(item.index);
      if (isNew) {
        this.options.renderRow(row, item.index, true);
        fresh.push(row);
      }
      row.style.transform = `translateY(${item.start}px)`;
    }
    for (const [key, row] of this.rows) {
      if (!keep.has(key)) {
        row.remove();
        this.rows.delete(key);
      }
    }
    for (const row of fresh) this.virtualizer.measureElement(row);
  }

  destroy(): void {
    this.options.scrollElement.removeEventListener('scroll', this.handleScroll);
    this.unmount();
    this.inner.remove();
    this.rows.clear();
  }
}
