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

const templates = new WeakMap<Document, HTMLElement>();

/** One row's line, made once per document and cloned for every row (cheaper than building each node). */
function lineTemplate(doc: Document): HTMLElement {
  let line = templates.get(doc);
  if (!line) {
    line = el(doc, 'div', 'ntl-line');
    const actions = el(doc, 'span', 'ntl-actions');
    for (const [className, action, text] of [['ntl-details-toggle', 'details', ''], ['ntl-copy', 'copy', 'copy']]) {
      const button = el(doc, 'button', className, text);
      button.type = 'button';
      button.dataset.action = action;
      actions.appendChild(button);
    }
    line.append(el(doc, 'span', 'ntl-time'), el(doc, 'span', 'ntl-level'), el(doc, 'span', 'ntl-source'), el(doc, 'span', 'ntl-message'), actions);
    templates.set(doc, line);
  }
  return line;
}

const hues = new Map<string, string>();

/** Set a node's text, writing only what changed: every write makes the browser lay the row out again. */
function setText(node: HTMLElement, text: string): void {
  const first = node.firstChild;
  if (first !== null && first === node.lastChild && first.nodeType === Node.TEXT_NODE) {
    if ((first as Text).data !== text) (first as Text).data = text;
  } else {
    node.textContent = text;
  }
}

function setAttr(node: HTMLElement, name: string, value: string): void {
  if (node.getAttribute(name) !== value) node.setAttribute(name, value);
}

/** Fill `row` with `record`: an empty row, or one that showed another record (its elements are reused). */
export function renderRow(row: HTMLElement, record: LogRecord, state: RowState): void {
  const doc = row.ownerDocument;
  setAttr(row, 'class', `ntl-row ntl-level-${record.level}${state.focused ? ' ntl-row-focused' : ''}${state.expanded ? ' ntl-row-tall' : ''}`);
  setAttr(row, 'role', 'listitem');
  // The keyboard's record (arrows, Enter, jump to first error) is the list's current item for assistive tools too.
  if (state.focused) row.setAttribute('aria-current', 'true');
  else row.removeAttribute('aria-current');
  row.dataset.seq = String(record.seq);
  // A row that showed another record keeps its elements and only the text that differs is written:
  // laying its buttons out again was most of a filter change's frame (bench/viewer).
  let line = row.firstElementChild as HTMLElement | null;
  if (line) while (line.nextSibling) line.nextSibling.remove();
  else line = row.appendChild(lineTemplate(doc).cloneNode(true) as HTMLElement);
  const [time, level, source, message, actions] = line.children as unknown as HTMLElement[];
  setText(time, localTime(record.ts));
  setAttr(time, 'title', localDateTime(record.ts));
  setText(level, record.level);
  setText(source, record.source);
  let hue = hues.get(record.source);
  if (hue === undefined) hues.set(record.source, (hue = String(sourceHue(record.source))));
  if (source.style.getPropertyValue('--ntl-hue') !== hue) source.style.setProperty('--ntl-hue', hue);
  if (state.searchLower) {
    message.textContent = '';
    appendHighlighted(message, record.message, state.searchLower, state.currentMatch);
  } else {
    setText(message, record.message);
  }
  const [toggle, copy] = actions.children as unknown as HTMLElement[];
  // Every record opens: the whole message (a row shows one line of it) and the metadata, if any.
  setText(toggle, state.expanded ? '▾' : '▸');
  setAttr(toggle, 'title', state.expanded ? 'Hide details' : 'Show the whole message and the metadata');
  setAttr(toggle, 'aria-expanded', String(state.expanded));
  setAttr(toggle, 'aria-label', `Details of record ${record.seq}`);
  setAttr(copy, 'aria-label', `Copy record ${record.seq}`);
  if (state.expanded && record.meta !== null) row.appendChild(el(doc, 'pre', 'ntl-meta', prettyMeta(record.meta)));
}
