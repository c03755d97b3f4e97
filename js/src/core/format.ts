/** Small helpers: local time, durations, a stable colour per source, elements, buttons and the note line. */

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** Local wall-clock time of a µs timestamp, to the millisecond: "14:03:07.123". */
export function localTime(us: number): string {
  const d = new Date(Math.floor(us / 1000));
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Local date and time, for the tooltip and copies: "2024-05-01 14:03:07.123456". */
export function localDateTime(us: number): string {
  const d = new Date(Math.floor(us / 1000));
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(((us % 1_000_000) + 1_000_000) % 1_000_000, 6)}`;
}

export function duration(seconds: number): string {
  if (!isFinite(seconds) || seconds < 0) return '';
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${pad(m)} min` : `${m} min ${pad(s % 60)} s`;
}

/** A hue for a source name, stable across sessions (FNV-1a). */
export function sourceHue(source: string): number {
  let hash = 2166136261;
  for (let i = 0; i < source.length; i++) hash = Math.imul(hash ^ source.charCodeAt(i), 16777619);
  return (hash >>> 0) % 360;
}

export function seconds(from: string | null | undefined, to: string | null | undefined): number | null {
  if (!from) return null;
  const start = Date.parse(from);
  const end = to ? Date.parse(to) : Date.now();
  return (end - start) / 1000;
}

export function el<K extends keyof HTMLElementTagNameMap>(doc: Document, tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const node = doc.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.appendChild(doc.createTextNode(text));
  return node;
}

/** An <option> made in `doc` (the Option constructor belongs to one window; hosts may differ). */
export function option(doc: Document, text: string, value: string): HTMLOptionElement {
  const o = doc.createElement('option');
  o.textContent = text;
  o.value = value;
  return o;
}

/** A button named `label` that runs `action` until `signal` aborts. */
export function button(doc: Document, text: string, label: string, action: () => void, signal: AbortSignal): HTMLButtonElement {
  const b = el(doc, 'button', 'ntl-button', text);
  b.type = 'button';
  b.setAttribute('aria-label', label);
  b.addEventListener('click', action, { signal });
  return b;
}

/** A button of the viewer's toolbar: its name is its tooltip too (some show only an arrow). */
export function toolButton(doc: Document, text: string, label: string, action: () => void, signal: AbortSignal): HTMLButtonElement {
  const b = button(doc, text, label, action, signal);
  b.title = label;
  return b;
}

/** The text of a caught error, for a status note. */
export function errorText(error: unknown): string {
  return String((error as Error)?.message ?? error);
}

/** Show `message` in a panel's note line, styled as an error when `isError`. */
export function showNote(note: HTMLElement, message: string, isError = false): void {
  note.textContent = message;
  note.className = isError ? 'ntl-note ntl-note-error' : 'ntl-note';
  note.setAttribute('role', isError ? 'alert' : 'status'); // an error is announced at once
}
