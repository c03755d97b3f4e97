// The virtual list: fixed-height rows, only the visible ones plus overscan in the DOM, whatever the count.
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_SCROLL_HEIGHT, VirtualRows, type VirtualRowsOptions } from '../src/core/virtual';
import { fakeScrolling } from './scroll';

/** happy-dom has no layout: give a row the height a stylesheet would. */
function setHeight(row: HTMLElement, px: number): void {
  Object.defineProperty(row, 'offsetHeight', { get: () => px, configurable: true });
}

function mount(count: number, extra: Partial<VirtualRowsOptions> = {}) {
  const scroll = document.createElement('div');
  document.body.appendChild(scroll);
  fakeScrolling(scroll, 400);
  const keys: number[] = [];
  const list = new VirtualRows({
    scrollElement: scroll,
    rowHeight: 20,
    overscan: 5,
    count,
    initialRect: { width: 600, height: 400 },
    getKey: (i) => (keys.push(i), i),
    renderRow: (row, i) => (row.textContent = `row ${i}`),
    ...extra,
  });
  const top = (index: number) => parseFloat((list.inner.querySelector(`[data-index="${index}"]`) as HTMLElement).style.transform.slice(11));
  return { scroll, list, keys, top };
}

afterEach(() => document.body.replaceChildren());

describe('VirtualRows', () => {
  it('renders only the visible rows and a small overscan of 1,000,000', () => {
    const { list } = mount(1_000_000);
    const shown = list.renderedIndexes();
    expect(shown[0]).toBe(0);
    expect(shown.length).toBeGreaterThanOrEqual(20);
    expect(shown.length).toBeLessThanOrEqual(20 + 5 + 1);
    expect(list.totalSize()).toBe(1_000_000 * 20);
    // taller than browsers allow an element to be: scrolled proportionally within the cap
    expect(list.inner.style.height).toBe(`${MAX_SCROLL_HEIGHT}px`);
  });

  it('scrolling to the end shows the last rows and drops the first', async () => {
    const { list, scroll } = mount(100_000);
    list.scrollToEnd();
    await new Promise((r) => setTimeout(r, 50));
    const shown = list.renderedIndexes();
    expect(shown).toContain(99_999);
    expect(shown).not.toContain(0);
    expect(scroll.children[0].children.length).toBeLessThanOrEqual(200);
    expect(list.isAtEnd()).toBe(true);
  });

  it('past the height cap, any row can be reached and sits in the viewport', () => {
    const { list, scroll, top } = mount(2_000_000);
    for (const index of [1_234_567, 1_999_999, 10]) {
      list.scrollToIndex(index, 'center');
      expect(list.renderedIndexes()).toContain(index);
      const y = top(index) - scroll.scrollTop; // where the row is drawn, relative to the viewport
      expect(y).toBeGreaterThanOrEqual(0);
      expect(y).toBeLessThan(400);
    }
    list.scrollToEnd();
    expect(list.isAtEnd()).toBe(true);
    expect(list.renderedIndexes()).toContain(1_999_999);
  });

  it('a count change asks only for the keys of the rows in range, never for every item', () => {
    const { list, keys, scroll } = mount(1_000_000);
    list.scrollToEnd();
    keys.length = 0;
    for (let n = 1_000_001; n <= 1_000_100; n++) {
      list.setCount(n);
      list.scrollToEnd();
    }
    expect(new Set(keys).size).toBeLessThan(200);
    expect(Math.min(...keys)).toBeGreaterThan(999_900);
    keys.length = 0;
    list.setCount(500_000, true); // a filter: another set of items
    expect(keys.length).toBeLessThan(100);
    expect(scroll.scrollTop).toBeLessThanOrEqual(MAX_SCROLL_HEIGHT);
  });

  it('grows with appended items and keeps row nodes by key', () => {
    const { list } = mount(3);
    const first = list.inner.querySelector('[data-index="0"]');
    list.setCount(10);
    expect(list.renderedIndexes()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(list.inner.querySelector('[data-index="0"]')).toBe(first);
  });

  it('a tall row pushes the rows below it down, follows its key through a filter and shrinks back', () => {
    const expanded = new Set<number>([103]);
    let keyOf = (i: number) => i + 100; // keys 100, 101, …: after the "filter" below, only odd ones
    let indexOf = (key: number) => key - 100;
    const { list, top } = mount(50, {
      getKey: (i) => keyOf(i),
      indexOf: (key) => indexOf(key as number),
      isTall: (i) => expanded.has(keyOf(i)),
      renderRow: (row, i) => setHeight(row, expanded.has(keyOf(i)) ? 95 : 20),
    });
    expect([top(2), top(3), top(4), top(10)]).toEqual([40, 60, 155, 275]);
    expect(list.totalSize()).toBe(50 * 20 + 75);
    keyOf = (i) => 101 + 2 * i; // 101, 103, 105, …: key 103 is now at index 1
    indexOf = (key) => (key % 2 ? (key - 101) / 2 : -1);
    list.setCount(25, true);
    expect([top(1), top(2)]).toEqual([20, 115]);
    expect(list.totalSize()).toBe(25 * 20 + 75);
    expanded.delete(103);
    list.update(1);
    expect(top(2)).toBe(40);
    expect(list.totalSize()).toBe(25 * 20);
  });

  it('learns the row height the stylesheet gives (two lines in a narrow host)', () => {
    const { list, top } = mount(1000, { renderRow: (row) => setHeight(row, 43) });
    expect(list.totalSize()).toBe(1000 * 43);
    expect(top(3)).toBe(129);
    expect(list.renderedIndexes().length).toBeLessThanOrEqual(Math.ceil(400 / 43) + 5 + 1);
  });

  it('keeps showing the last row when a learned row height moves the rows', () => {
    let height = 20;
    const { list } = mount(1000, { renderRow: (row) => setHeight(row, height) });
    list.scrollToEnd();
    expect(list.isAtEnd()).toBe(true);
    height = 43; // the host got narrow: rows wrap onto two lines
    (list as unknown as { heightLearned: boolean }).heightLearned = false; // what a width change does (no ResizeObserver here)
    list.refresh();
    expect(list.totalSize()).toBe(1000 * 43);
    expect(list.isAtEnd()).toBe(true);
    expect(list.renderedIndexes()).toContain(999);
  });

  it('a page is as many rows as the viewport holds, two-line rows included', () => {
    expect(mount(1000).list.rowsPerPage()).toBe(20);
    expect(mount(1000, { renderRow: (row) => setHeight(row, 40) }).list.rowsPerPage()).toBe(10);
  });

  it('destroy removes its rows', () => {
    const { list, scroll } = mount(50);
    list.destroy();
    expect(scroll.children.length).toBe(0);
  });
});
