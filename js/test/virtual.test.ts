// The virtual list: only the visible rows plus overscan are in the DOM, whatever the count.
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualRows } from '../src/core/virtual';
import { fakeScrolling } from './scroll';

function mount(count: number) {
  const scroll = document.createElement('div');
  document.body.appendChild(scroll);
  fakeScrolling(scroll, 400);
  const list = new VirtualRows({
    scrollElement: scroll,
    rowHeight: 20,
    overscan: 5,
    count,
    initialRect: { width: 600, height: 400 },
    getKey: (i) => i,
    renderRow: (row, i) => row.appendChild(document.createTextNode(`row ${i}`)),
  });
  return { scroll, list };
}

afterEach(() => document.body.replaceChildren());

describe('VirtualRows', () => {
  it('renders only the visible rows and a small overscan of 1,000,000', () => {
    const { list } = mount(1_000_000);
    const shown = list.renderedIndexes();
    expect(shown[0]).toBe(0);
    expect(shown.length).toBeGreaterThanOrEqual(20);
    expect(shown.length).toBeLessThanOrEqual(20 + 5 + 1);
    expect(list.inner.style.height).toBe(`${1_000_000 * 20}px`);
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

  it('grows with appended items and keeps row nodes by key', () => {
    const { list } = mount(3);
    const first = list.inner.querySelector('[data-index="0"]');
    list.setCount(10);
    expect(list.renderedIndexes().sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(list.inner.querySelector('[data-index="0"]')).toBe(first);
  });

  it('destroy removes its rows', () => {
    const { list, scroll } = mount(50);
    list.destroy();
    expect(scroll.children.length).toBe(0);
  });
});
