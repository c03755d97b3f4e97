/**
 * VirtualRows: fixed-height windowing; only the visible rows plus a small overscan are in the DOM.
 *
 * Every row has the same height except a few tall ones (expanded metadata), which are measured and
 * kept by key. A row's offset is `index × rowHeight` plus the extra height of the tall rows above it,
 * so a count change (an append, a filter) costs O(tall rows), not O(count).
 * @tanstack/virtual-core 3.19 was dropped for this: its getMeasurements() walks every item from 0 on
 * each count change (getItemKey and its size cache per item), 34 ms per appended batch at 1,000,000
 * records, which held live append to 15–18 fps (measured by bench/viewer).
 * Rows are kept by key while they stay in range, so a row's DOM is reused rather than rebuilt on scroll;
 * a row that leaves the range is recycled for one that enters it (new text in the same elements).
 */

export type RowKey = number | string;

const FOCUSABLE = 'button, input, select, textarea, a[href], [tabindex]';

export interface VirtualRowsOptions {
  scrollElement: HTMLElement;
  /** The height of an ordinary row in px (learned again from the DOM when the list's width changes). */
  rowHeight: number;
  overscan?: number;
  count: number;
  getKey: (index: number) => RowKey;
  /** Fill `row` for item `index`: a new, empty row or a recycled one, whose content it replaces. */
  renderRow: (row: HTMLElement, index: number) => void;
  /** Whether item `index` may be taller than a row (it is measured after rendering); default none. */
  isTall?: (index: number) => boolean;
  /** The index of the item with `key` now, or -1: tall rows keep their height across a filter change. */
  indexOf?: (key: RowKey) => number;
  onScroll?: () => void;
  /** For tests and headless hosts: the viewport size before any layout has happened. */
  initialRect?: { width: number; height: number };
}

/**
 * Browsers cap an element's height (Firefox near 17.9 M px, Chrome near 33.5 M px): a longer list is
 * scrolled proportionally, one physical px standing for `scale` px of the list.
 */
export const MAX_SCROLL_HEIGHT = 15_000_000;

export class VirtualRows {
  readonly inner: HTMLElement;
  private rows = new Map<RowKey, HTMLElement>();
  /** During refresh(): the rows whose content is to be made again. */
  private stale: Set<HTMLElement> | null = null;
  private count: number;
  private rowHeight: number;
  private heightLearned = false;
  /** Measured heights of the tall rows, by key. */
  private tallHeight = new Map<RowKey, number>();
  /** The tall rows within [0, count) by ascending index, and each one's extra height over rowHeight. */
  private tallIndex: number[] = [];
  private tallExtra: number[] = [];
  private extraTotal = 0;
  private drawnHeight = -1;
  private readonly resize: ResizeObserver | null = null;
  private lastWidth = -1;
  /**
   * The viewport height and scroll position as last seen (resize and scroll events) or set here:
   * reading them from the element would force a layout in the middle of our DOM writes.
   */
  private viewportHeight: number;
  private scrollPos = 0;

  constructor(private readonly options: VirtualRowsOptions) {
    const doc = options.scrollElement.ownerDocument;
    this.count = options.count;
    this.rowHeight = options.rowHeight;
    this.inner = doc.createElement('div');
    this.inner.className = 'ntl-rows';
    this.inner.style.position = 'relative';
    this.inner.style.width = '100%';
    options.scrollElement.appendChild(this.inner);
    options.scrollElement.addEventListener('scroll', this.handleScroll, { passive: true });
    this.viewportHeight = options.scrollElement.clientHeight || options.initialRect?.height || 0;
    this.scrollPos = options.scrollElement.scrollTop;
    const Observer = doc.defaultView?.ResizeObserver;
    if (Observer) {
      this.resize = new Observer(() => this.onResize());
      this.resize.observe(options.scrollElement);
    }
    this.render();
  }

  private handleScroll = () => {
    const position = this.options.scrollElement.scrollTop;
    // Our own scroll writes (following, a filter change) come back as events: the rows are already there.
    if (position !== this.scrollPos) {
      this.scrollPos = position;
      this.render();
    }
    this.options.onScroll?.();
  };

  private onResize(): void {
    const el = this.options.scrollElement;
    const atEnd = this.count > 0 && this.isAtEnd(1);
    const width = el.clientWidth;
    this.viewportHeight = el.clientHeight || this.options.initialRect?.height || 0;
    this.scrollPos = el.scrollTop;
    if (width !== this.lastWidth) {
      // A new width may wrap a row onto two lines (the narrow layout): learn the row height again.
      this.lastWidth = width;
      this.heightLearned = false;
      for (const key of this.tallHeight.keys()) if (!this.rows.has(key)) this.tallHeight.delete(key);
    }
    this.render();
    // A list that showed its last row keeps showing it when its viewport shrinks or its rows grow.
    if (atEnd && !this.isAtEnd(1)) this.scrollToEnd();
  }

  /**
   * The number of items changed: records appended, or (keysChanged) another set of items, as after a
   * filter. `toEnd` scrolls to the last item first, so that only the rows finally in view are made.
   */
  setCount(count: number, keysChanged = false, toEnd = false): void {
    const grew = count >= this.count;
    this.count = count;
    if (keysChanged || !grew) this.placeTall();
    // The browser clamps the scroll position when the list gets shorter; so do we.
    this.scrollPos = Math.min(this.scrollPos, Math.max(0, this.physicalHeight() - this.viewport()));
    if (toEnd && count > 0) this.scrollToIndex(count - 1, 'end');
    else this.render();
  }

  /** Redraw every row in range (their content changed: new search highlight, other record objects). */
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
    }
    // Rows still in range are filled again in their own element (the focus stays where it is when
    // renderRow keeps the elements); the others are recycled as usual.
    this.stale = new Set(this.rows.values());
    try {
      this.render();
    } finally {
      this.stale = null;
    }
    if (focusKey !== undefined && !(active && active.isConnected && this.rows.get(focusKey)?.contains(active))) {
      const row = this.rows.get(focusKey);
      ((row && row.querySelectorAll<HTMLElement>(FOCUSABLE)[focusAt]) || this.options.scrollElement).focus();
    }
  }

  /** Re-fill one rendered row in place and measure it again (for example after expanding it). */
  update(index: number): void {
    const key = this.options.getKey(index);
    const row = this.rows.get(key);
    if (!row) return;
    this.options.renderRow(row, index);
    if (this.measure(key, row, index)) {
      this.placeTall();
      this.render();
    }
  }

  scrollToIndex(index: number, align: 'start' | 'center' | 'end' | 'auto' = 'auto'): void {
    if (index < 0 || index >= this.count) return;
    const el = this.options.scrollElement;
    const viewport = this.viewport();
    const start = this.start(index);
    const size = this.rowHeight + this.extraAt(index);
    const top = this.virtualTop();
    let target: number;
    if (align === 'start') target = start;
    else if (align === 'end') target = start + size - viewport;
    else if (align === 'center') target = start + size / 2 - viewport / 2;
    else if (start < top) target = start;
    else if (start + size > top + viewport) target = start + size - viewport;
    else return;
    // Height first, then the one scroll write (which lays out the old rows), then the new rows: one forced layout.
    this.setHeight();
    const max = Math.max(0, this.totalSize() - viewport);
    const position = Math.round(Math.max(0, Math.min(max, target)) / this.scale());
    if (position !== this.scrollPos) {
      this.scrollPos = position;
      el.scrollTop = position;
    }
    this.render();
  }

  scrollToEnd(): void {
    if (this.count > 0) this.scrollToIndex(this.count - 1, 'end');
  }

  /** How many ordinary rows fit in the viewport (a page, for PageUp/PageDown). */
  rowsPerPage(): number {
    return Math.max(1, Math.floor(this.viewport() / this.rowHeight));
  }

  /** Within `threshold` px of the bottom (so "following" the newest row). */
  isAtEnd(threshold = 4): boolean {
    return this.physicalHeight() - (this.scrollPos + this.viewport()) <= threshold;
  }

  /** Indexes of the rows now in the DOM, in order. */
  renderedIndexes(): number[] {
    return [...this.inner.children].map((el) => Number((el as HTMLElement).dataset.index)).sort((a, b) => a - b);
  }

  /** The list's full height in px (before any scaling to the browser's limit). */
  totalSize(): number {
    return this.count * this.rowHeight + this.extraTotal;
  }

  // ---- geometry -----------------------------------------------------------------------------------
  private viewport(): number {
    return this.viewportHeight;
  }

  private physicalHeight(): number {
    return Math.min(this.totalSize(), MAX_SCROLL_HEIGHT);
  }

  /** List px per physical scroll px (1 unless the list is taller than the browser allows). */
  private scale(): number {
    const total = this.totalSize();
    if (total <= MAX_SCROLL_HEIGHT) return 1;
    const viewport = this.viewport();
    return (total - viewport) / (MAX_SCROLL_HEIGHT - viewport);
  }

  private virtualTop(): number {
    return this.scrollPos * this.scale();
  }

  /** The top of item `index` in list px. */
  private start(index: number): number {
    let extra = 0;
    for (let j = 0; j < this.tallIndex.length && this.tallIndex[j] < index; j++) extra += this.tallExtra[j];
    return index * this.rowHeight + extra;
  }

  private extraAt(index: number): number {
    const j = this.tallIndex.indexOf(index);
    return j < 0 ? 0 : this.tallExtra[j];
  }

  /** The item at list px `y`. */
  private indexAt(y: number): number {
    const h = this.rowHeight;
    let extra = 0;
    for (let j = 0; j < this.tallIndex.length; j++) {
      const top = this.tallIndex[j] * h + extra;
      if (y < top) break;
      if (y < top + h + this.tallExtra[j]) return this.tallIndex[j];
      extra += this.tallExtra[j];
    }
    return Math.max(0, Math.min(this.count - 1, Math.floor((y - extra) / h)));
  }

  /** Where the tall rows are now (after a filter change their indexes moved). */
  private placeTall(): void {
    const found: [number, number][] = [];
    for (const [key, height] of this.tallHeight) {
      const index = this.options.indexOf?.(key) ?? (typeof key === 'number' ? key : -1);
      if (index >= 0 && index < this.count && this.options.getKey(index) === key) found.push([index, Math.max(0, height - this.rowHeight)]);
    }
    found.sort((a, b) => a[0] - b[0]);
    this.tallIndex = found.map((f) => f[0]);
    this.tallExtra = found.map((f) => f[1]);
    this.extraTotal = this.tallExtra.reduce((a, b) => a + b, 0);
  }

  /** Read a row's height; true when the layout changed. */
  private measure(key: RowKey, row: HTMLElement, index: number): boolean {
    const height = row.offsetHeight;
    if (height <= 0) return false; // no layout (hidden panel, test DOM): keep what is known
    const tall = (this.options.isTall?.(index) ?? false) && height > this.rowHeight + 0.5;
    const old = this.tallHeight.get(key);
    if (tall) {
      if (old === height) return false;
      this.tallHeight.set(key, height);
    } else {
      if (old === undefined) return false;
      this.tallHeight.delete(key);
    }
    return true;
  }

  private setHeight(): void {
    const height = this.physicalHeight();
    if (height !== this.drawnHeight) {
      this.drawnHeight = height;
      this.inner.style.height = `${height}px`;
    }
  }

  // ---- rendering ----------------------------------------------------------------------------------
  private rendering = false;

  private render(): void {
    if (this.rendering) return;
    this.rendering = true;
    const atEnd = this.count > 0 && this.isAtEnd(1);
    let moved = false;
    try {
      // A second pass only when measuring (a tall row, a new row height) moved the rows.
      for (let pass = 0; pass < 3 && this.layout(); pass++) moved = true;
    } finally {
      this.rendering = false;
    }
    // The same when measuring moved the rows (a narrow host's two-line rows learned after the history
    // was drawn at one line each).
    if (moved && atEnd && !this.isAtEnd(1)) this.scrollToEnd();
  }

  /** Writes first (new rows, positions), then reads (tall rows only); true when a read changed the layout. */
  private layout(): boolean {
    const doc = this.inner.ownerDocument;
    this.setHeight();
    const fresh: [RowKey, HTMLElement, number][] = [];
    let from = 0;
    let to = -1;
    if (this.count > 0) {
      const top = this.virtualTop();
      const overscan = this.options.overscan ?? 8;
      from = Math.max(0, this.indexAt(top) - overscan);
      to = Math.min(this.count - 1, this.indexAt(top + this.viewport()) + overscan);
    }
    const keys: RowKey[] = [];
    for (let index = from; index <= to; index++) keys.push(this.options.getKey(index));
    const inRange = new Set(keys);
    // Rows that left the range are recycled for those that enter it; one holding the focus is not (it
    // would carry the focus to another record), it goes.
    const active = doc.activeElement;
    const spare: HTMLElement[] = [];
    for (const [key, row] of this.rows) {
      if (inRange.has(key)) continue;
      this.rows.delete(key);
      if (active && row.contains(active)) row.remove();
      else spare.push(row);
    }
    // Rows sit at their list offset shifted by (physical − list) scroll position: 0 unless scaled.
    const shift = this.scrollPos - this.virtualTop();
    let y = this.start(from);
    for (let index = from; index <= to; index++) {
      const key = keys[index - from];
      let row = this.rows.get(key);
      const fill = row === undefined || this.stale?.delete(row) === true;
      if (row === undefined) {
        row = spare.pop() ?? this.newRow();
        this.rows.set(key, row);
      }
      if (row.dataset.index !== String(index)) row.dataset.index = String(index);
      if (fill) {
        this.options.renderRow(row, index);
        fresh.push([key, row, index]);
      }
      const transform = `translateY(${y + shift}px)`;
      if (row.style.transform !== transform) row.style.transform = transform;
      y += this.rowHeight + (this.tallHeight.has(key) ? this.extraAt(index) : 0);
    }
    for (const row of spare) row.remove();
    let moved = false;
    if (!this.heightLearned) moved = this.learnRowHeight();
    for (const [key, row, index] of fresh) if (this.options.isTall?.(index) && this.measure(key, row, index)) moved = true;
    if (moved) this.placeTall();
    return moved;
  }

  private newRow(): HTMLElement {
    const row = this.inner.ownerDocument.createElement('div');
    row.style.position = 'absolute';
    row.style.left = '0';
    row.style.right = '0';
    return this.inner.appendChild(row);
  }

  /** The row height the stylesheet gives (one line wide, two in a narrow host), read from one ordinary row. */
  private learnRowHeight(): boolean {
    for (const row of this.rows.values()) {
      const index = Number(row.dataset.index);
      if (this.options.isTall?.(index)) continue;
      const height = row.offsetHeight;
      if (height <= 0) return false;
      this.heightLearned = true;
      if (Math.abs(height - this.rowHeight) < 0.5) return false;
      this.rowHeight = height;
      return true;
    }
    return false;
  }

  destroy(): void {
    this.options.scrollElement.removeEventListener('scroll', this.handleScroll);
    this.resize?.disconnect();
    this.inner.remove();
    this.rows.clear();
  }
}
