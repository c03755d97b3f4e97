// Widget wire format, browser side (run by Node, same V8): decode 100,000 records into the viewer's row objects.
// node bench/viewer/wire_decode.mjs DIR  (DIR holds batch.json and batch.arrow from wire_encode.py)
import { readFileSync } from 'node:fs';
import { tableFromIPC } from '@uwdata/flechette';

const dir = process.argv[2] ?? '.';
const json = readFileSync(`${dir}/batch.json`);
const arrow = readFileSync(`${dir}/batch.arrow`);

function fromJson(bytes) {
  const c = JSON.parse(new TextDecoder().decode(bytes));
  const out = new Array(c.seq.length);
  for (let i = 0; i < out.length; i++) out[i] = { seq: c.seq[i], ts: c.ts[i], level: c.level[i], source: c.source[i], message: c.message[i], meta: c.meta[i] };
  return out;
}

function fromArrow(bytes) {
  const t = tableFromIPC(bytes, { useBigInt: false, useDate: false });
  const col = (n) => t.getChild(n).toArray();
  const seq = col('seq'), ts = col('timestamp'), level = col('level'), source = col('source'), message = col('message'), meta = col('metadata');
  const out = new Array(seq.length);
  for (let i = 0; i < out.length; i++) out[i] = { seq: Number(seq[i]), ts: Number(ts[i]), level: level[i], source: source[i], message: message[i], meta: meta[i] };
  return out;
}

for (const [name, fn, bytes] of [['json', fromJson, json], ['arrow', fromArrow, arrow]]) {
  let bestMs = Infinity, rows;
  for (let r = 0; r < 7; r++) {
    const start = performance.now();
    rows = fn(bytes);
    bestMs = Math.min(bestMs, performance.now() - start);
  }
  console.log(`${name.padEnd(6)} decode ${bestMs.toFixed(1).padStart(7)} ms  rows ${rows.length}  last ${JSON.stringify(rows.at(-1)).slice(0, 90)}`);
}
