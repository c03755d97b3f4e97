/**
 * The viewer's toolbar: the filter controls (level, sources with their counts, metadata `key=value`
 * with the keys suggested, errors only) and the FilterSpec they describe, around the search box and
 * the action buttons it is given.
 */
import type { FilterSpec } from './filter';
import { el, option } from './format';
import { LEVELS } from './levels';
import type { LogRecord, TaskStats } from './types';

/** What goes in the toolbar besides the filter controls, in the places it has. */
export interface ToolbarParts {
  /** The search box, after the sources. */
  search: HTMLElement;
  /** The buttons at the end. */
  actions: HTMLElement[];
}

export class Toolbar {
  readonly root: HTMLElement;
  private readonly level: HTMLSelectElement;
  private readonly summary: HTMLButtonElement;
  private readonly sourceList: HTMLElement;
  private readonly meta: HTMLInputElement;
  private readonly keys: HTMLDataListElement;
  private readonly errors: HTMLInputElement;
  private selectedSources: Set<string> | null = null;
  private readonly sourceBoxes = new Map<string, HTMLInputElement>();

  /** `changed` runs when the user changes a filter control. */
  constructor(private readonly doc: Document, private readonly signal: AbortSignal, initialLevel: string, parts: ToolbarParts, private readonly changed: () => void) {
    const d = doc;
    this.root = el(d, 'div', 'ntl-toolbar');
    this.root.setAttribute('role', 'toolbar');
    this.root.setAttribute('aria-label', 'Log filters');

    this.level = el(d, 'select', 'ntl-level-select');
    this.level.setAttribute('aria-label', 'Level');
    for (const name of LEVELS) this.level.appendChild(option(d, name === 'DEBUG' ? 'DEBUG and above' : `${name}${name === 'ERROR' ? '' : ' and above'}`, name));
    this.level.value = initialLevel;
    this.level.addEventListener('change', () => changed(), { signal });

    // A disclosure button (aria-expanded), not <details>/<summary>: a summary has no ARIA role, so tools
    // that work by role and name (Playwright, the e2e tests) could neither find nor name it.
    const sources = el(d, 'div', 'ntl-sources');
    const summary = (this.summary = el(d, 'button', 'ntl-button ntl-sources-summary', 'Source: all')); // its text is its name: "Source: …"
    summary.type = 'button';
    const sourceList = (this.sourceList = el(d, 'div', 'ntl-source-list'));
    sourceList.id = `ntl-sources-${Math.random().toString(36).slice(2)}`;
    sourceList.setAttribute('role', 'group');
    sourceList.setAttribute('aria-label', 'Source');
    summary.setAttribute('aria-controls', sourceList.id);
    const showSources = (open: boolean) => {
      sourceList.hidden = !open;
      summary.setAttribute('aria-expanded', String(open));
    };
    showSources(false);
    summary.addEventListener('click', () => showSources(sourceList.hidden), { signal });
    sourceList.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape') return;
      showSources(false);
      summary.focus();
    }, { signal });
    // Like a menu, the open list closes when the user clicks anywhere else (it covers the first rows).
    d.addEventListener('pointerdown', (e) => {
      if (!sourceList.hidden && !sources.contains(e.target as Node)) showSources(false);
    }, { signal, capture: true });
    sources.append(summary, sourceList);

    this.meta = el(d, 'input', 'ntl-meta-input');
    this.meta.placeholder = 'key=value, …';
    this.meta.setAttribute('aria-label', 'Metadata filter');
    this.keys = el(d, 'datalist');
    this.keys.id = `ntl-keys-${Math.random().toString(36).slice(2)}`;
    this.meta.setAttribute('list', this.keys.id);
    this.meta.addEventListener('change', () => changed(), { signal });
    this.meta.addEventListener('keydown', (e) => e.key === 'Enter' && changed(), { signal });

    const errorsLabel = el(d, 'label', 'ntl-errors-only');
    this.errors = el(d, 'input');
    this.errors.type = 'checkbox';
    this.errors.setAttribute('aria-label', 'Errors only');
    this.errors.addEventListener('change', () => changed(), { signal });
    errorsLabel.append(this.errors, d.createTextNode(' Errors only'));

    this.root.append(this.level, sources, parts.search, this.meta, this.keys, errorsLabel, ...parts.actions);
  }

  /** The filter the controls describe with `search`, in make_filter's terms. */
  spec(search: string | null): FilterSpec {
    const meta = this.meta.value.split(',').map((s) => s.trim()).filter(Boolean);
    return {
      level: this.level.value,
      source: this.selectedSources ? [...this.selectedSources] : null,
      search,
      meta: meta.length ? meta : null,
      errors_only: this.errors.checked,
    };
  }

  /** Mark the metadata input as holding a condition the filter refused, or no longer. */
  setMetaInvalid(invalid: boolean): void {
    if (invalid) this.meta.setAttribute('aria-invalid', 'true');
    else this.meta.removeAttribute('aria-invalid');
  }

  /** Choose the sources shown (null: all), as if the user had ticked them. */
  setSources(sources: Iterable<string> | null): void {
    this.selectedSources = sources === null ? null : new Set(sources);
    for (const [name, box] of this.sourceBoxes) box.checked = this.selectedSources === null || this.selectedSources.has(name);
    this.updateSourceSummary();
    this.changed();
  }

  /**
   * The sources with their counts and the metadata keys to suggest, from the task's stats; sources of
   * the newest records held are listed too (at 0): stats are read every few seconds and may not know them yet.
   */
  showStats(stats: TaskStats, held: readonly LogRecord[]): void {
    this.renderSources(stats.sources, held);
    this.keys.replaceChildren(...stats.metadata_keys.map((k) => option(this.doc, `${k}=`, `${k}=`)));
  }

  private updateSourceSummary(): void {
    const s = this.selectedSources;
    this.summary.textContent = s === null ? 'Source: all' : s.size === 1 ? `Source: ${[...s][0]}` : `Source: ${s.size} selected`;
  }

  private renderSources(sources: Record<string, number>, held: readonly LogRecord[]): void {
    const counts = new Map<string, number>(Object.entries(sources));
    for (const r of held.slice(-2000)) if (!counts.has(r.source)) counts.set(r.source, 0);
    for (const [name, count] of [...counts].sort((a, b) => a[0].localeCompare(b[0]))) {
      let box = this.sourceBoxes.get(name);
      if (!box) {
        const label = el(this.doc, 'label', 'ntl-source-option');
        box = el(this.doc, 'input');
        box.type = 'checkbox';
        box.value = name;
        box.checked = this.selectedSources === null || this.selectedSources.has(name);
        box.addEventListener('change', () => {
          const all = [...this.sourceBoxes.values()];
          const chosen = all.filter((b) => b.checked).map((b) => b.value);
          this.selectedSources = chosen.length === all.length ? null : new Set(chosen);
          this.updateSourceSummary();
          this.changed();
        }, { signal: this.signal });
        const text = el(this.doc, 'span', 'ntl-source-name', name);
        text.style.setProperty('--ntl-hue', '0');
        label.append(box, text, el(this.doc, 'span', 'ntl-source-count'));
        this.sourceList.appendChild(label);
        this.sourceBoxes.set(name, box);
      }
      const label = box.parentElement!;
      (label.lastChild as HTMLElement).textContent = ` (${count.toLocaleString()})`;
      box.setAttribute('aria-label', `${name} (${count})`);
    }
  }
}
