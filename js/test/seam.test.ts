// The history/live seam, and the viewer on top of it: filters, follow mode, search, text-only rendering.
import { afterEach, describe, expect, it } from 'vitest';
import { makeFilter } from '../src/core/filter';
import { FilteredView, RecordStore } from '../src/core/records';
import { LogViewer } from '../src/core/viewer';
import { FakeTransport, nextFrame, records } from './fake';
import { fakeScrolling } from './scroll';

afterEach(() => document.body.replaceChildren());

describe('RecordStore seam', () => {
  it('keeps each seq once across history pages, the seam and a lagging catch-up', () => {
    const store = new RecordStore();
    expect(store.add(records(1, 100))).toBe(100);
    // live records already queued before history ended overlap its last page
    expect(store.add(records(95, 120))).toBe(20);
    // after "lagging" the server re-reads from the cursor it last sent: repeats are dropped
    expect(store.add(records(110, 130))).toBe(10);
    expect(store.records.map((r) => r.seq)).toEqual(Array.from({ length: 130 }, (_, i) => i + 1));
    expect(store.cursor).toBe(130);
    store.reset();
    expect([store.records.length, store.cursor, store.historyDone]).toEqual([0, 0, false]);
  });

  it('FilteredView follows appends and refilters', () => {
    const store = new RecordStore();
    const view = new FilteredView(store, makeFilter({ level: 'WARNING' }));
    store.add(records(1, 10, (s) => ({ level: s % 2 ? 'WARNING' : 'DEBUG' })));
    expect(view.update()).toBe(5);
    store.add(records(11, 12, () => ({ level: 'ERROR' })));
    expect(view.update()).toBe(2);
    expect(view.length).toBe(7);
    view.setFilter(makeFilter({ level: 'ERROR' }));
    expect(view.length).toBe(2);
    expect(view.find((r) => r.seq === 12)).toBe(1);
  });
});

function mount(t = new FakeTransport()) {
  const host = document.createElement('div');
  document.body.appendChild(host);
  const viewer = new LogViewer(host, t, 't1', { initialRect: { width: 800, height: 400 }, statsInterval: 60_000 });
  fakeScrolling(host.querySelector('.ntl-scroll')!, 400);
  return { t, host, viewer };
}

const rows = (host: HTMLElement) => [...host.querySelectorAll('.ntl-row')] as HTMLElement[];
const messages = (host: HTMLElement) => rows(host).map((r) => r.querySelector('.ntl-message')!.textContent);

describe('LogViewer', () => {
  it('opens the stream at INFO and above and renders history then live records, once per frame', async () => {
    const { t, host, viewer } = mount();
    expect(t.filters[0].level).toBe('INFO');
    t.events.records(records(1, 3));
    t.events.historyEnd(3);
    t.events.records(records(3, 5));
    expect(messages(host)).toEqual([]); // batches are drawn by the next frame, all at once
    await nextFrame();
    expect(messages(host)).toEqual(['message 1', 'message 2', 'message 3', 'message 4', 'message 5']);
    viewer.destroy();
    expect(t.closed).toBe(true);
    expect(host.children.length).toBe(0);
  });

  it('shows HTML in messages and metadata as text, running nothing', async () => {
    const { t, host } = mount();
    t.events.records(records(1, 1, () => ({ message: '<img src=x onerror=alert(1)>', meta: '{"html":"<script>alert(2)</script>"}' })));
    await nextFrame();
    const row = rows(host)[0];
    expect(row.querySelector('img')).toBeNull();
    expect(row.querySelector('.ntl-message')!.textContent).toBe('<img src=x onerror=alert(1)>');
    (row.querySelector('[data-action="details"]') as HTMLElement).click();
    expect(host.querySelector('script')).toBeNull();
    expect(host.querySelector('.ntl-meta')!.textContent).toContain('"<script>alert(2)</script>"');
  });

  it('the Source list closes on a click outside it, not on one inside', async () => {
    const { t, host } = mount();
    t.events.records(records(1, 2, (s) => ({ source: s === 1 ? 'plugin' : 'superset_api' })));
    await nextFrame();
    const button = [...host.querySelectorAll('button')].find((b) => b.textContent === 'Source: all')!;
    button.click();
    expect(button.getAttribute('aria-expanded')).toBe('true');
    const box = host.querySelector('[role="group"][aria-label="Source"] input') as HTMLElement;
    box.dispatchEvent(new Event('pointerdown', { bubbles: true }));
    expect(button.getAttribute('aria-expanded')).toBe('true');
    host.querySelector('[aria-label="Level"]')!.dispatchEvent(new Event('pointerdown', { bubbles: true }));
    expect(button.getAttribute('aria-expanded')).toBe('false');
  });

  it('every record opens to its whole message, with or without metadata', async () => {
    const { t, host } = mount();
    const long = 'x'.repeat(500) + ' the end';
    t.events.records(records(1, 1, () => ({ message: long, meta: null })));
    await nextFrame();
    const toggle = host.querySelector('[aria-label="Details of record 1"]') as HTMLElement;
    expect(toggle.getAttribute('aria-expanded')).toBe('false');
    toggle.click();
    const row = rows(host)[0];
    expect(row.classList.contains('ntl-row-tall')).toBe(true); // drawn at its own height, message wrapped
    expect(row.querySelector('.ntl-message')!.textContent).toBe(long);
    expect(row.querySelector('[aria-label="Details of record 1"]')!.getAttribute('aria-expanded')).toBe('true');
    expect(row.querySelector('.ntl-meta')).toBeNull();
  });

  it('a narrower filter applies at once on what is held; a wider one asks the server', async () => {
    const { t, host, viewer } = mount();
    t.events.records(records(1, 6, (s) => ({ source: s % 2 ? 'plugin' : 'superset_api' })));
    viewer.setSources(['superset_api']); // drawn in the click, not a frame later
    expect(messages(host)).toEqual(['message 2', 'message 4', 'message 6']);
    expect(t.filters.length).toBe(1); // answered locally
    // a new matching record appears, a non-matching one never shows (US1.2)
    t.events.records(records(7, 8, (s) => ({ source: s === 8 ? 'superset_api' : 'plugin' })));
    await nextFrame();
    expect(messages(host)).toEqual(['message 2', 'message 4', 'message 6', 'message 8']);
    (host.querySelector('[aria-label="Level"]') as HTMLSelectElement).value = 'DEBUG';
    host.querySelector('[aria-label="Level"]')!.dispatchEvent(new Event('change'));
    expect(t.filters.length).toBe(2);
    expect(t.filters[1]).toMatchObject({ level: 'DEBUG', source: ['superset_api'] });
    // the server answers: reset, then the new history replaces what was held
    t.events.reset();
    expect(messages(host).length).toBe(4); // still showing the preview until the answer arrives
    t.events.records(records(1, 2, () => ({ source: 'superset_api', level: 'DEBUG', message: 'debug!' })));
    expect(messages(host)).toEqual(['debug!', 'debug!']);
  });

  it('follow mode: scrolling up pauses it and counts new records; jump to latest resumes', async () => {
    const { t, host, viewer } = mount();
    t.events.records(records(1, 200));
    await nextFrame();
    expect(viewer.following).toBe(true);
    expect(rows(host).at(-1)!.dataset.seq).toBe('200');
    viewer.pause();
    t.events.records(records(201, 205));
    t.events.records(records(206, 212));
    await nextFrame();
    const latest = host.querySelector('.ntl-latest') as HTMLButtonElement;
    expect(latest.hidden).toBe(false);
    expect(latest.textContent).toBe('12 new — jump to latest');
    latest.click();
    expect(viewer.following).toBe(true);
    expect(latest.hidden).toBe(true);
    expect(host.querySelector('[aria-label="Follow newest records"]')!.getAttribute('aria-pressed')).toBe('true');
  });

  it('search highlights matches and moves to ones not yet rendered', async () => {
    const { t, host, viewer } = mount();
    t.events.records(records(1, 5000, (s) => ({ message: s % 1000 === 0 ? `Needle ${s} and needle` : `hay ${s}` })));
    const search = host.querySelector('[aria-label="Search"]') as HTMLInputElement;
    search.value = 'needle';
    viewer.applyFilters();
    expect(messages(host).length).toBe(5);
    expect(host.querySelector('.ntl-match-count')!.textContent).toBe('10 matches');
    viewer.nextMatch(1);
    viewer.nextMatch(1);
    viewer.nextMatch(1);
    expect(host.querySelector('.ntl-match-count')!.textContent).toBe('3 of 10 matches');
    const current = host.querySelector('mark.ntl-match-current')!;
    expect(current.textContent).toBe('Needle');
    expect(current.closest('.ntl-row')!.getAttribute('data-seq')).toBe('2000');
    viewer.nextMatch(-1);
    expect(host.querySelector('.ntl-match-count')!.textContent).toBe('2 of 10 matches');
  });

  it('jump to first error focuses it; errors only keeps ERROR', () => {
    const { t, host, viewer } = mount();
    t.events.records(records(1, 3000, (s) => ({ level: s === 2500 || s === 2900 ? 'ERROR' : 'INFO' })));
    viewer.jumpToFirstError();
    expect(host.querySelector('.ntl-row-focused')!.getAttribute('data-seq')).toBe('2500');
    expect([...host.querySelectorAll('[aria-current="true"]')].map((r) => (r as HTMLElement).dataset.seq)).toEqual(['2500']);
    const errors = host.querySelector('[aria-label="Errors only"]') as HTMLInputElement;
    errors.checked = true;
    errors.dispatchEvent(new Event('change'));
    expect(rows(host).map((r) => r.dataset.seq)).toEqual(['2500', '2900']);
  });

  it('a bad metadata filter is reported, not applied', () => {
    const { t, host, viewer } = mount();
    const meta = host.querySelector('[aria-label="Metadata filter"]') as HTMLInputElement;
    meta.value = 'a b=1';
    viewer.applyFilters();
    expect(meta.getAttribute('aria-invalid')).toBe('true');
    expect(host.querySelector('.ntl-note')!.textContent).toContain("bad metadata key 'a b'");
    meta.value = 'dashboard_id=12';
    viewer.applyFilters();
    expect(t.filters.at(-1)).toMatchObject({ meta: ['dashboard_id=12'] });
  });

  it('every control has an accessible name', () => {
    const { host } = mount();
    for (const name of ['Level', 'Source', 'Search', 'Metadata filter', 'Errors only', 'Jump to first error', 'Previous match', 'Next match', 'Follow newest records', 'Download JSONL', 'Download CSV']) {
      expect(host.querySelector(`[aria-label="${name}"]`), name).not.toBeNull();
    }
    expect(host.querySelector('[role="progressbar"]')).not.toBeNull();
    expect(host.querySelector('[role="list"][aria-label="Log records"]')).not.toBeNull();
  });
});
