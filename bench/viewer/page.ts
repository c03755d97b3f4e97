// The viewer benchmark page: the real viewer core on a synthetic transport (no Jupyter), driven by bench_viewer.py.
// Records reach the viewer the way the widget delivers them: a columnar JSON batch in a binary buffer,
// decoded by widget-transport's decodeColumns (so strings are flat, as from the wire).
import type { FilterSpec } from '../../js/src/core/filter';
import { recordsFromColumns, type ColumnBatch, type LogStream, type StreamEvents, type ViewerTransport } from '../../js/src/core/transport';
import type { LogRecord, TaskStats } from '../../js/src/core/types';
import { LogViewer } from '../../js/src/core/viewer';
import { decodeColumns } from '../../js/src/widget-transport';

const SOURCES = ['plugin', 'reader', 'writer', 'superset_api'];
const LEVELS = ['INFO', 'INFO', 'INFO', 'DEBUG', 'INFO', 'WARNING', 'INFO', 'INFO', 'INFO', 'ERROR'];
const T0 = 1_714_564_800_000_000;
const encoder = new TextEncoder();

/** The bytes the kernel side would send for records from..from+count-1. */
function wire(from: number, count: number): Uint8Array {
  const batch: ColumnBatch = { seq: [], ts: [], level: [], source: [], message: [], meta: [] };
  for (let seq = from; seq < from + count; seq++) {
    batch.seq.push(seq);
    batch.ts.push(T0 + seq * 100);
    batch.level.push(LEVELS[seq % 10]);
    batch.source.push(SOURCES[seq % 4]);
    batch.message.push(`record ${seq}: GET /api/v1/dashboard/${seq % 997} -> 200`);
    batch.meta.push(seq % 3 ? null : `{"row":${seq},"ratio":${seq / 7}}`);
  }
  return encoder.encode(JSON.stringify(batch));
}

const decode = (bytes: Uint8Array): LogRecord[] => recordsFromColumns(decodeColumns(bytes));

class Synthetic implements ViewerTransport {
  events!: StreamEvents;
  stat: TaskStats = { levels: {}, sources: {}, metadata_keys: ['row', 'ratio'], total: 0 };
  openStream(_id: string, _spec: FilterSpec, events: StreamEvents): LogStream {
    this.events = events;
    return { setFilter: () => undefined, close: () => undefined };
  }
  task = async () => ({ id: 'bench', plugin: 'high_volume', status: 'RUNNING', started_at: new Date().toISOString(), progress: 0.3 });
  stats = async () => this.stat;
  download = async () => undefined;
}

const afterFrame = () => new Promise<number>((r) => requestAnimationFrame(() => requestAnimationFrame((t) => r(t))));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const host = document.getElementById('host')!;
const transport = new Synthetic();
const viewer = new LogViewer(host, transport, 'bench', { level: 'DEBUG', statsInterval: 1e9 });
let next = 1;
(window as any).viewer = viewer; // for poking at it from the DevTools

/**
 * Click → rendered, for every click on the page: from the click event's timeStamp (when the browser
 * received the input) to a task posted from the first requestAnimationFrame callback after the click's
 * handlers ran. Such a task runs once that frame's style, layout and paint are done, i.e. when the
 * new rows are rendered (the compositor still has to show them: add a few ms for the screen).
 * `work` is the time spent in the click's own handlers (the viewer's filtering and DOM update);
 * `frameStart` is when that frame began (its requestAnimationFrame callbacks ran).
 */
interface Click { work: number; rendered: number; frameStart: number; eventTiming?: number }
const clicks: Click[] = [];
let current: { stamp: number; start: number } | null = null;
document.addEventListener('click', (e) => {
  current = { stamp: e.timeStamp, start: performance.now() };
}, true);
const finish = () => {
  if (!current) return;
  const { stamp, start } = current;
  current = null;
  const click: Click = { work: performance.now() - start, rendered: NaN, frameStart: NaN };
  clicks.push(click);
  requestAnimationFrame(() => {
    click.frameStart = performance.now() - stamp;
    const channel = new MessageChannel();
    channel.port1.onmessage = () => (click.rendered = performance.now() - stamp);
    channel.port2.postMessage(null);
  });
};
// A checkbox's change event comes after its click; a plain button has only the click. Bubble phase on
// the document: after the viewer's own listeners on the element.
document.addEventListener('change', finish);
document.addEventListener('click', (e) => (e.target as HTMLElement).closest('input') === null && finish());
// The browser's own measure (Event Timing: input to the next presented frame, rounded to 8 ms), as a cross-check.
const timings: number[] = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) if (entry.name === 'click') timings.push(entry.duration);
}).observe({ type: 'event', durationThreshold: 16, buffered: false } as PerformanceObserverInit);
const idle = el('button', 'A button that does nothing');
host.before(idle);

function el<K extends keyof HTMLElementTagNameMap>(tag: K, label: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.setAttribute('aria-label', label);
  node.textContent = label;
  return node;
}

(window as any).bench = {
  /** Frames per second of requestAnimationFrame with nothing appended: the display's rate here. */
  async frameRate(seconds: number) {
    let frames = 0;
    const end = performance.now() + seconds * 1000;
    await new Promise<void>((resolve) => {
      const tick = (t: number) => (frames++, t < end ? requestAnimationFrame(tick) : resolve());
      requestAnimationFrame(tick);
    });
    return frames / seconds;
  },
  /** Hold n records as history (pages of 10,000), then show the source list the filter is clicked in. */
  async load(n: number) {
    const start = performance.now();
    for (let left = n; left > 0; left -= 10_000) {
      const count = Math.min(10_000, left);
      transport.events.records(decode(wire(next, count)));
      next += count;
    }
    transport.events.historyEnd(next - 1);
    await afterFrame();
    const ms = performance.now() - start;
    await viewer.refreshStats();
    (host.querySelector('.ntl-sources') as HTMLDetailsElement).open = true;
    return { ms, held: viewer.store.records.length, rows: host.querySelectorAll('.ntl-row').length };
  },
  /** The held records' size as JSON text (one object per record, UTF-8), for the heap's reference. */
  jsonBytes() {
    let bytes = 0;
    for (const r of viewer.store.records) bytes += encoder.encode(JSON.stringify(r)).length + 1;
    return bytes;
  },
  /** Script reference: Array.prototype.filter by source over the same records, median ms. */
  arrayFilter(times: number) {
    const ms: number[] = [];
    let kept = 0;
    for (let i = 0; i < times; i++) {
      const t = performance.now();
      kept = viewer.store.records.filter((r) => r.source !== 'plugin').length;
      ms.push(performance.now() - t);
    }
    return { ms: median(ms), kept };
  },
  /** The clicks measured since the last call, once their frame has been rendered. */
  async takeClicks() {
    await afterFrame();
    await new Promise((r) => setTimeout(r, 20));
    const out = clicks.splice(0);
    return { clicks: out, eventTimings: timings.splice(0), rows: host.querySelectorAll('.ntl-row').length, shown: viewer.view.length };
  },
  /**
   * Live records at `rate`/s for `seconds` while following, as the stream sends them: one batch per
   * 50 ms (the server's stream_interval), decoded from bytes. Counts frames and checks the newest is shown.
   */
  async live(rate: number, seconds: number) {
    viewer.jumpToLatest();
    const frames: number[] = [];
    const start = performance.now();
    let sent = 0;
    const timer = setInterval(() => {
      const due = Math.floor(((performance.now() - start) / 1000) * rate) - sent;
      if (due > 0) {
        transport.events.records(decode(wire(next, due)));
        next += due;
        sent += due;
      }
    }, 50);
    await new Promise<void>((resolve) => {
      const tick = (t: number) => {
        frames.push(t);
        if (t - start < seconds * 1000) requestAnimationFrame(tick);
        else resolve();
      };
      requestAnimationFrame(tick);
    });
    clearInterval(timer);
    const elapsed = (frames[frames.length - 1] - frames[0]) / 1000;
    let worst = 0;
    let long = 0;
    for (let i = 1; i < frames.length; i++) {
      worst = Math.max(worst, frames[i] - frames[i - 1]);
      if (frames[i] - frames[i - 1] > 20) long++;
    }
    await afterFrame();
    const seqs = [...host.querySelectorAll('.ntl-row')].map((r) => Number((r as HTMLElement).dataset.seq));
    return { fps: (frames.length - 1) / elapsed, worstFrameMs: worst, longFrames: long, sent, held: viewer.store.records.length, rows: seqs.length, lastShown: Math.max(...seqs), newest: next - 1 };
  },
  heap() {
    return (performance as any).memory?.usedJSHeapSize ?? null;
  },
};
