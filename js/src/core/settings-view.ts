/**
 * The logging settings (log level, task log level, belief_scope), read-only for users the server does
 * not allow to write. The JupyterLab sidebar and the SettingsPanel widget mount it.
 */
import { el, errorText, option, showNote } from './format';
import { LEVELS } from './levels';
import { injectStyles } from './style';
import type { SettingsInfo, TaskService } from './transport';

export class SettingsView {
  readonly root: HTMLFormElement;
  private abort = new AbortController();
  private note: HTMLElement;
  private controls: { log_level: HTMLSelectElement; task_log_level: HTMLSelectElement; belief_scope_enabled: HTMLInputElement };

  constructor(host: HTMLElement, readonly service: TaskService) {
    const d = host.ownerDocument;
    injectStyles(d);
    this.root = el(d, 'form', 'ntl-panel ntl-settings');
    this.root.setAttribute('aria-label', 'Logging settings');
    this.root.appendChild(el(d, 'h3', undefined, 'Logging settings'));
    const grid = el(d, 'div', 'ntl-form');
    const levelSelect = (label: string) => {
      const s = el(d, 'select');
      s.setAttribute('aria-label', label);
      for (const l of LEVELS) s.appendChild(option(d, l, l));
      grid.append(el(d, 'span', undefined, label), s);
      return s;
    };
    const log_level = levelSelect('Log level');
    const task_log_level = levelSelect('Task log level');
    const belief = el(d, 'input');
    belief.type = 'checkbox';
    belief.setAttribute('aria-label', 'belief_scope logging');
    grid.append(el(d, 'span', undefined, 'belief_scope logging'), belief);
    const actions = el(d, 'div', 'ntl-form-actions');
    const save = el(d, 'button', 'ntl-button', 'Save');
    save.type = 'submit';
    actions.appendChild(save);
    grid.appendChild(actions);
    this.note = el(d, 'div', 'ntl-note');
    this.note.setAttribute('role', 'status');
    this.root.append(grid, this.note);
    host.appendChild(this.root);
    this.controls = { log_level, task_log_level, belief_scope_enabled: belief };
    this.root.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.save();
    }, { signal: this.abort.signal });
    void this.load();
  }

  async load(): Promise<void> {
    try {
      this.show(await this.service.getSettings());
    } catch (error) {
      this.say(errorText(error), true);
    }
  }

  private show(s: SettingsInfo): void {
    const c = this.controls;
    c.log_level.value = s.log_level;
    c.task_log_level.value = s.task_log_level;
    c.belief_scope_enabled.checked = s.belief_scope_enabled;
    for (const control of [...Object.values(c), this.root.querySelector('button')!]) (control as HTMLInputElement).disabled = !s.writable;
    this.say(s.writable ? '' : 'Read-only: you are not allowed to change the settings.');
  }

  async save(): Promise<void> {
    const c = this.controls;
    try {
      this.show(await this.service.putSettings({ log_level: c.log_level.value, task_log_level: c.task_log_level.value, belief_scope_enabled: c.belief_scope_enabled.checked }));
      this.say('Saved; running tasks use it now.');
    } catch (error) {
      this.say(errorText(error), true);
    }
  }

  private say(message: string, isError = false): void {
    showNote(this.note, message, isError);
  }

  destroy(): void {
    this.abort.abort();
    this.root.remove();
  }
}
