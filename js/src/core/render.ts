/**
 * One log row, built from text nodes only (never innerHTML): a message such as
 * `<img src=x onerror=alert(1)>` shows literally and runs nothing.
 */
import { foldCase } from './filter';
import { localDateTime, localTime, sourceHue, el } from './format';
import { JsonNumber, parseLossless, type JsonValue } from './json';
import type { LogRecord } from './types';

/** [start, end) ranges of case-insensitive occurrences of `needle` in `text` (needle already folded). */
export function findMatches(text: string, needleLower: string): [number, number][] {
  if (!needleLower) return [];
  const hay = foldCase(text);
  // Folding keeps UTF-16 lengths (İ and Σ are mapped first); if some rare mapping did not, skip highlighting.
  if (hay.length !== text.length) return [];
  const out: [number, number][] = [];
  for (let at = hay.indexOf(needleLower); at >= 0; at = hay.indexOf(needleLower, at + needleLower.length)) {
    out.push([at, at + needleLower.length]);
  }
  return out;
}

/** Append `text` to `parent` with the occurrences of the search wrapped in <mark>; `current` marks one of them. */
export function appendHighlighted(parent: HTMLElement, text: string, needleLower: string | null, current = -1): void {
  const doc = parent.ownerDocument;
  const ranges = needleLower ? findMatches(text, needleLower) : [];
  let at = 0;
  ranges.forEach(([start, end], i) => {
    if (start > at) parent.appendChild(doc.createTextNode(text.slice(at, start)));
    const mark = el(doc, 'mark', i === current ? 'ntl-match ntl-match-current' : 'ntl-match', text.slice(start, end));
    parent.appendChild(mark);
    at = end;
  });
  if (at < text.length) parent.appendChild(doc.createTextNode(text.slice(at)));
}

/** Metadata, indented, numbers exactly as stored. */
export function prettyMeta(meta: string): string {
  let value: JsonValue;
  try {
    value = parseLossless(meta);
  } catch {
    return meta;
  }
  const out = (v: JsonValue, indent: string): string => {
    if (v instanceof JsonNumber) return v.raw;
    if (v === null || typeof v !== 'object') return JSON.stringify(v);
    const inner = indent + '  ';
    if (Array.isArray(v)) return v.length ? `[\n${v.map((x) => inner + out(x, inner)).join(',\n')}\n${indent}]` : '[]';
    const keys = Object.keys(v);
    return keys.length ? `{\n${keys.map((k) => `${inner}${JSON.stringify(k)}: ${out(v[k], inner)}`).join(',\n')}\n${indent}}` : '{}';
  };
  return out(value, '');
}

/** The plain-text line "Copy record" puts on the clipboard. */
export function recordText(record: LogRecord): string {
  const line = `${localDateTime(record.ts)} ${record.level.padEnd(7)} [${record.source}] ${record.message}`;
  return record.meta === null ? line : `${line} ${record.meta}`;
}

export interface RowState {
  expanded: boolean;
  searchLower: string | null;
  /** Which occurrence of the search in this row is the current match (-1: none). */
  currentMatch: number;
  focused: boolean;
}

export function renderRow(row: HTMLElement, record: LogRecord, state: RowState): void {
  const doc = row.ownerDocument;
  row.className = `ntl-row ntl-level-${record.level}${state.focused ? ' ntl-row-focused' : ''}${state.expanded && record.meta !== null ? ' ntl-row-tall' : ''}`;
  row.setAttribute('role', 'listitem');
  row.dataset.seq = String(record.seq);
  const line = el(doc, 'div', 'ntl-line');
  const time = el(doc, 'span', 'ntl-time', localTime(record.ts));
  time.title = localDateTime(record.ts);
  const level = el(doc, 'span', 'ntl-level', record.level);
  const source = el(doc, 'span', 'ntl-source', record.source);
  source.style.setProperty('--ntl-hue', String(sourceHue(record.source)));
  const message = el(doc, 'span', 'ntl-message');
  appendHighlighted(message, record.message, state.searchLower, state.currentMatch);
  line.append(time, level, source, message);
  const actions = el(doc, 'span', 'ntl-actions');
  if (record.meta !== null) {
    const toggle = el(doc, 'button', 'ntl-meta-toggle', state.expanded ? '▾ meta' : '▸ meta');
    toggle.type = 'button';
    toggle.dataset.action = 'meta';
    toggle.setAttribute('aria-expanded', String(state.expanded));
    toggle.setAttribute('aria-label', `Metadata of record ${record.seq}`);
    actions.appendChild(toggle);
  }
  const copy = el(doc, 'button', 'ntl-copy', 'copy');
  copy.type = 'button';
  copy.dataset.action = 'copy';
  copy.setAttribute('aria-label', `Copy record ${record.seq}`);
  actions.appendChild(copy);
  line.appendChild(actions);
  row.appendChild(line);
  if (state.expanded && record.meta !== null) row.appendChild(el(doc, 'pre', 'ntl-meta', prettyMeta(record.meta)));
}
