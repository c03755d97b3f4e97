/**
 * A record's own actions, from the buttons of its row or the keyboard: opening its details (the whole
 * message and its metadata, drawn as a tall row) and copying its text to the clipboard.
 */
import { el } from './format';
import type { FilteredView } from './records';
import { recordText } from './render';
import type { LogRecord } from './types';
import type { VirtualRows } from './virtual';

/** What the record actions need from the viewer they sit in. */
export interface RecordActionsHost {
  readonly view: FilteredView;
  readonly list: VirtualRows;
  say(message: string): void;
}

export class RecordActions {
  /** The seqs of the records open to their details (kept by seq: positions change with the filters). */
  private readonly expanded = new Set<number>();

  /** `root` holds the copy fallback's text area for a moment; `scroll` is the list, its rows inside. */
  constructor(private readonly root: HTMLElement, private readonly scroll: HTMLElement, private readonly host: RecordActionsHost) {}

  isOpen(seq: number): boolean {
    return this.expanded.has(seq);
  }

  /** A click in the list: on a row's Details or Copy button, that action. */
  onRowClick(e: MouseEvent): void {
    const button = (e.target as HTMLElement).closest('button[data-action]') as HTMLElement | null;
    const row = (e.target as HTMLElement).closest('.ntl-row') as HTMLElement | null;
    if (!button || !row) return;
    const position = Number(row.dataset.index);
    if (button.dataset.action === 'details') this.toggleDetails(position);
    else if (button.dataset.action === 'copy') void this.copy(this.host.view.at(position));
  }

  toggleDetails(position: number): void {
    const record = this.host.view.at(position);
    if (this.expanded.has(record.seq)) this.expanded.delete(record.seq);
    else this.expanded.add(record.seq);
    this.host.list.update(position);
    (this.scroll.querySelector(`.ntl-row[data-index="${position}"] .ntl-details-toggle`) as HTMLElement | null)?.focus();
  }

  async copy(record: LogRecord): Promise<void> {
    const text = recordText(record);
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // Clipboard API refused (insecure context, no permission): the old way through a selection.
      const doc = this.root.ownerDocument;
      const area = el(doc, 'textarea');
      area.value = text;
      this.root.appendChild(area);
      area.select();
      doc.execCommand?.('copy');
      area.remove();
    }
    this.host.say(`Record ${record.seq} copied.`);
  }
}
