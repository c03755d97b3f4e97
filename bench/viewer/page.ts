// The viewer benchmark page: the real viewer core on a synthetic transport (no Jupyter), driven by bench_viewer.py.
import type { FilterSpec } from '../../js/src/core/filter';
import type { LogStream, StreamEvents, ViewerTransport } from '../../js/src/core/transport';
import type { LogRecord, TaskStats } from '../../js/src/core/types';
import { LogViewer } from '../../js/src/core/viewer';

const SOURCES = ['plugin', 'reader', 'writer', 'superset_api'];
const LEVELS = ['INFO', 'INFO', 'INFO', 'DEBUG', 'INFO', 'WARNING', 'INFO', 'INFO', 'INFO', 'ERROR'];
const T0 = 1_714_564_800_000_000;

function make(from: number, count: number): LogRecord[] {
  const out: LogRecord[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const seq = from + i;
    out[i] = { seq, ts: T0 + seq * 100, level: LEVELS[seq % 10], source: SOURCES[seq % 4], message: `record ${seq}: GET /api/v1/dashboard/${seq % 997} -> 200`, meta: `{"row":${seq},"ratio":${seq / 7}}` };
  }
  return out;
}

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

const frame = () => new Promise<number>((r) => requestAnimationFrame(() => requestAnimationFrame((t) => r(t))));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const host = document.getElementById('host')!;
const transport = new Synthetic();
const viewer = new LogViewer(host, transport, 'bench', { level: 'DEBUG', statsInterval: 1e9 });
let next = 1;

(window as any).bench = {
  async load(n: number) {
    const start = performance.now();
    for (let left = n; left > 0; left -= 10_000) {
      transport.events.records(make(next, Math.min(10_000, left)));
      next += Math.min(10_000, left);
    }
    transport.events.historyEnd(next - 1);
    await frame();
    return { ms: performance.now() - start, held: viewer.store.records.length, rows: host.querySelectorAll('.ntl-row').length };
  },
  /** Click-to-rendered of a source filter change over what is held (the issue's ≤ 16 ms median target). */
  async sourceFilter(times: number) {
    const narrow: number[] = [];
    const widen: number[] = [];
    const work: number[] = [];
    for (let i = 0; i < times; i++) {
      let start = performance.now();
      viewer.setSources(['superset_api']);
      work.push(performance.now() - start);
      await frame();
      narrow.push(performance.now() - start);
      start = performance.now();
      viewer.setSources(null);
      work.push(performance.now() - start);
      await frame();
      widen.push(performance.now() - start);
    }
    return { narrowMedian: median(narrow), widenMedian: median(widen), workMedian: median(work), rows: host.querySelectorAll('.ntl-row').length };
  },
  /** Live records at `rate`/s for `seconds` while following: frames per second and DOM rows. */
  async live(rate: number, seconds: number) {
    viewer.jumpToLatest();
    let frames = 0;
    let last = performance.now();
    let worst = 0;
    const end = performance.now() + seconds * 1000;
    let carry = 0;
    await new Promise<void>((resolve) => {
      const tick = (t: number) => {
        frames++;
        worst = Math.max(worst, t - last);
        const due = ((t - last) / 1000) * rate + carry;
        const count = Math.floor(due);
        carry = due - count;
        last = t;
        if (count) {
          transport.events.records(make(next, count));
          next += count;
        }
        if (t < end) requestAnimationFrame(tick);
        else resolve();
      };
      requestAnimationFrame(tick);
    });
    await frame();
    const lastShown = [...host.querySelectorAll('.ntl-row')].map((r) => Number((r as HTMLElement).dataset.seq)).sort((a, b) => b - a)[0];
    return { fps: frames / seconds, worstFrameMs: worst, held: viewer.store.records.length, rows: host.querySelectorAll('.ntl-row').length, lastShown, newest: next - 1 };
  },
  heap() {
    return (performance as any).memory?.usedJSHeapSize ?? null;
  },
};

(window as any).bench.profile = async () => {
  const out: Record<string, number> = {};
  let t = performance.now();
  for (let i = 0; i < 20; i++) {
    transport.events.records(make(next, 167));
    next += 167;
  }
  out.append167 = (performance.now() - t) / 20;
  t = performance.now();
  viewer.view.setFilter(viewer.view.filter);
  out.refilter = performance.now() - t;
  t = performance.now();
  viewer.list.setCount(viewer.view.length, true);
  out.setCountMeasure = performance.now() - t;
  t = performance.now();
  viewer.list.setCount(viewer.view.length + 0, false);
  out.setCountSame = performance.now() - t;
  t = performance.now();
  viewer.list.refresh();
  out.refresh = performance.now() - t;
  t = performance.now();
  viewer.setSources(['superset_api']);
  out.setSourcesSync = performance.now() - t;
  t = performance.now();
  viewer.setSources(null);
  out.setSourcesNullSync = performance.now() - t;
  return out;
};

(window as any).bench.parts = () => {
  const timings: Record<string, number> = {};
  const wrap = (obj: any, name: string, label: string) => {
    const original = obj[name].bind(obj);
    obj[name] = (...args: unknown[]) => {
      const t = performance.now();
      const r = original(...args);
      timings[label] = (timings[label] ?? 0) + performance.now() - t;
      return r;
    };
  };
  const v = viewer as any;
  wrap(v.store, 'add', 'store.add');
  wrap(v.view, 'update', 'view.update');
  wrap(v.list, 'setCount', 'list.setCount');
  wrap(v.list.virtualizer, 'getVirtualItems', 'getVirtualItems');
  wrap(v.list.virtualizer, 'getTotalSize', 'getTotalSize');
  wrap(v.list.virtualizer, 'scrollToIndex', 'scrollToIndex');
  wrap(v, 'updateEmpty', 'updateEmpty');
  const t = performance.now();
  for (let i = 0; i < 10; i++) {
    transport.events.records(make(next, 167));
    next += 167;
  }
  timings.total = performance.now() - t;
  for (const k in timings) timings[k] /= 10;
  return timings;
};
