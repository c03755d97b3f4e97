// Rebuilding the rows (new search highlight, records swapped after a filter change) keeps the keyboard focus.
import { afterEach, expect, it } from 'vitest';
import { VirtualRows } from '../src/core/virtual';
import { fakeScrolling } from './scroll';

afterEach(() => document.body.replaceChildren());

/** Ten rows of 20 px in a 400 px focusable list, filled by `renderRow`. */
function mount(renderRow: (row: HTMLElement, i: number) => void): VirtualRows {
  const scroll = document.createElement('div');
  scroll.tabIndex = 0;
  document.body.appendChild(scroll);
  fakeScrolling(scroll, 400);
  return new VirtualRows({ scrollElement: scroll, rowHeight: 20, count: 10, initialRect: { width: 600, height: 400 }, getKey: (i) => i, renderRow });
}

it('refresh gives the focus back to the same control of the same row', () => {
  const list = mount((row, i) => {
    row.replaceChildren(); // a renderer that makes new nodes: the focus must still come back
    for (const name of ['meta', 'copy']) {
      const b = document.createElement('button');
      b.textContent = `${name} ${i}`;
      row.appendChild(b);
    }
  });
  const before = list.inner.querySelector<HTMLElement>('[data-index="3"]')!.querySelectorAll('button')[1];
  before.focus();
  list.refresh();
  const active = document.activeElement as HTMLElement;
  expect(active).not.toBe(before); // a new node ...
  expect(active.textContent).toBe('copy 3'); // ... for the same control
});

it('refresh fills rows still in view in their own elements: the focused control stays the same node', () => {
  let version = 1;
  const list = mount((row, i) => {
    // as render.ts does: the row's elements are kept, only their text is written again
    const button = (row.firstElementChild as HTMLButtonElement | null) ?? row.appendChild(document.createElement('button'));
    button.textContent = `copy ${i} v${version}`;
  });
  const before = list.inner.querySelector<HTMLElement>('[data-index="3"] button')!;
  before.focus();
  version = 2;
  list.refresh();
  expect(document.activeElement).toBe(before);
  expect(before.textContent).toBe('copy 3 v2');
  expect(list.inner.querySelectorAll('button').length).toBe(10);
});
