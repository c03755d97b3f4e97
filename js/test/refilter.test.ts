// A filter change over more records than a block of the store's tallies: the view's length is known
// at once and its positions are filled as they are read and in idle tasks; everything the viewer does
// in between (live records, another filter, the keyboard, jump to first error, search, follow mode)
// sees the same records as a view filled at once would.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LogViewer } from '../src/core/viewer';
import type { LogRecord } from '../src/core/types';
import { FakeTransport, records } from './fake';
import { fakeScrolling } from './scroll';

const SOURCES = ['plugin', 'superset_api', 'system'];
/** Five blocks of 8,192 records and a part of one: a refilter's positions are filled over several idle tasks. */
const HELD = 5 * 8192 + 300;
const make = (seq: number): Partial<LogRecord> => ({ source: SOURCES[seq % 3], level: seq % 997 === 0 ? 'ERROR' : seq % 5 ? 'INFO' : 'DEBUG' });

beforeEach(() => {
  // The idle tasks are timeouts in happy-dom (it has no requestIdleCallback): fake ones run only when a test says.
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
});

afterEach(() => {
  vi.useRealTimers();
  document.body.replaceChildren();
});

function mount() {
  const t = new FakeTransport();
  const host = document.createElement('div');
  document.body.appendChild(host);
  const viewer = new LogViewer(host, t, 't1', { level: 'DEBUG', initialRect: { width: 800, height: 400 }, statsInterval: 60_000 });
  const scroll = host.querySelector('.ntl-scroll') as HTMLElement;
  fakeScrolling(scroll, 400);
  const held = records(1, HELD, make);
  t.events.records(held);
  t.events.historyEnd(HELD);
  viewer.flush();
  vi.runAllTimers();
  return { t, host, viewer, scroll, held };
}

const shownSeqs = (host: HTMLElement) => ([...host.querySelectorAll('.ntl-row')] as HTMLElement[]).map((r) => Number(r.dataset.seq)).sort((a, b) => a - b);
const allSeqs = (viewer: LogViewer) => Array.from({ length: viewer.view.length }, (_, p) => viewer.view.at(p).seq);
const key = (scroll: HTMLElement, name: string) => scroll.dispatchEvent(new KeyboardEvent('keydown', { key: name, bubbles: true }));

describe('a filter change while its positions are being filled', () => {
  it('shows the newest matches at once, takes live records in, and ends equal to a whole refilter', () => {
    const { t, host, viewer, held } = mount();
    viewer.setSources(['superset_api', 'system']);
    expect(vi.getTimerCount()).toBe(1); // the fill is under way
    let expected = held.filter((r) => r.source !== 'plugin');
    expect(viewer.view.length).toBe(expected.length);
    const shown = shownSeqs(host);
    expect(shown.at(-1)).toBe(expected.at(-1)!.seq); // following: the newest match is on screen
    expect(shown).toEqual(expected.slice(-shown.length).map((r) => r.seq));
    // live records before any idle task ran
    const live = records(HELD + 1, HELD + 30, make);
    t.events.records(live);
    viewer.flush();
    expected = expected.concat(live.filter((r) => r.source !== 'plugin'));
    expect(viewer.view.length).toBe(expected.length);
    expect(shownSeqs(host).at(-1)).toBe(expected.at(-1)!.seq);
    vi.runAllTimers();
    expect(allSeqs(viewer)).toEqual(expected.map((r) => r.seq));
  });

  it('a second filter change before the first is filled replaces it', () => {
    const { host, viewer, held } = mount();
    viewer.setSources(['plugin']);
    vi.runOnlyPendingTimers(); // part of the first fill
    viewer.setSources(['system']);
    expect(vi.getTimerCount()).toBe(1);
    const expected = held.filter((r) => r.source === 'system').map((r) => r.seq);
    expect(shownSeqs(host)).toEqual(expected.slice(-shownSeqs(host).length));
    vi.runAllTimers();
    expect(allSeqs(viewer)).toEqual(expected);
  });

  it('the keyboard, jump to first error and positionOf read records not filled yet', () => {
    const { host, viewer, scroll, held } = mount();
    viewer.setSources(['superset_api']);
    const expected = held.filter((r) => r.source === 'superset_api');
    const status = host.querySelector('[aria-label="Current record"]')!;
    key(scroll, 'Home');
    expect(status.textContent).toContain(`Record ${expected[0].seq}, 1 of ${expected.length}:`);
    expect(host.querySelector('.ntl-row-focused')!.getAttribute('data-seq')).toBe(String(expected[0].seq));
    key(scroll, 'PageDown');
    const page = viewer.list.rowsPerPage();
    expect(status.textContent).toContain(`Record ${expected[page].seq}, ${page + 1} of ${expected.length}:`);
    viewer.jumpToFirstError();
    const error = expected.findIndex((r) => r.level === 'ERROR');
    expect(host.querySelector('.ntl-row-focused')!.getAttribute('data-seq')).toBe(String(expected[error].seq));
    const middle = expected[Math.floor(expected.length / 2)];
    expect(viewer.view.positionOf(middle.seq)).toBe(Math.floor(expected.length / 2));
    expect(viewer.view.positionOf(middle.seq + 1)).toBe(-1); // a plugin record: not in the view
    vi.runAllTimers();
    expect(allSeqs(viewer)).toEqual(expected.map((r) => r.seq));
  });

  it('search over a source change not filled yet counts and finds every match', () => {
    const { host, viewer, held } = mount();
    viewer.setSources(['plugin', 'system']);
    const search = host.querySelector('[aria-label="Search"]') as HTMLInputElement;
    search.value = 'message 4000'; // 4000 and 40000 to 40009, of all three sources
    viewer.applyFilters();
    const expected = held.filter((r) => r.source !== 'superset_api' && r.message.includes('message 4000'));
    expect(host.querySelector('.ntl-match-count')!.textContent).toBe(`${expected.length} matches`);
    viewer.nextMatch(1);
    expect(host.querySelector('.ntl-match-count')!.textContent).toBe(`1 of ${expected.length} matches`);
    expect(host.querySelector('mark.ntl-match-current')!.closest('.ntl-row')!.getAttribute('data-seq')).toBe(String(expected[0].seq));
  });

  it('paused: the records that arrive are counted as they pass the new filter', () => {
    const { t, host, viewer } = mount();
    viewer.pause();
    viewer.setSources(['system']);
    const live = records(HELD + 1, HELD + 9, make);
    t.events.records(live);
    viewer.flush();
    const latest = host.querySelector('.ntl-latest') as HTMLButtonElement;
    expect(latest.textContent).toBe(`${live.filter((r) => r.source === 'system').length} new — jump to latest`);
    viewer.jumpToLatest();
    expect(shownSeqs(host).at(-1)).toBe(live.filter((r) => r.source === 'system').at(-1)!.seq);
  });
});
