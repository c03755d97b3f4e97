/** The form that starts a plugin: choose it, fill its parameters (from params_schema), start it. */
import { el, errorText, option } from './format';
import type { PluginInfo, TaskService } from './transport';
import type { TaskInfo } from './types';

export class StartForm {
  readonly root: HTMLFormElement;
  private plugins: PluginInfo[] = [];
  private fields: HTMLElement;
  private select: HTMLSelectElement;

  constructor(private doc: Document, service: TaskService, signal: AbortSignal, started: (t: TaskInfo) => void, fail: (m: string) => void) {
    const d = doc;
    this.root = el(d, 'form', 'ntl-start');
    this.root.setAttribute('aria-label', 'Start a task');
    this.root.appendChild(el(d, 'h3', undefined, 'Start a task'));
    this.fields = el(d, 'div', 'ntl-form');
    this.select = el(d, 'select');
    this.select.setAttribute('aria-label', 'Plugin');
    this.select.addEventListener('change', () => this.renderFields(), { signal });
    const submit = el(d, 'button', 'ntl-button', 'Start');
    submit.type = 'submit';
    this.root.append(this.select, this.fields, submit);
    this.root.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        const task = await service.startTask(this.select.value, this.params());
        started(task);
      } catch (error) {
        fail(errorText(error));
      }
    }, { signal });
    service.plugins().then((plugins) => {
      this.plugins = plugins;
      this.select.replaceChildren(...plugins.map((p) => option(this.doc, p.name, p.name)));
      this.renderFields();
    }, (error) => fail(String(error?.message ?? error)));
  }

  private get plugin(): PluginInfo | undefined {
    return this.plugins.find((p) => p.name === this.select.value);
  }

  private renderFields(): void {
    const d = this.doc;
    const props = this.plugin?.params_schema?.properties ?? {};
    const children: HTMLElement[] = [];
    if (this.plugin?.description) {
      const p = el(d, 'div', 'ntl-note', this.plugin.description);
      p.style.gridColumn = '1 / -1';
      children.push(p);
    }
    for (const [name, schema] of Object.entries(props)) {
      const label = el(d, 'label', undefined, schema.title ?? name);
      let input: HTMLInputElement | HTMLSelectElement;
      if (schema.enum) {
        input = el(d, 'select');
        for (const v of schema.enum) input.appendChild(option(d, String(v), JSON.stringify(v)));
        if (schema.default !== undefined) input.value = JSON.stringify(schema.default);
      } else {
        input = el(d, 'input');
        if (schema.type === 'boolean') {
          input.type = 'checkbox';
          input.checked = Boolean(schema.default);
        } else {
          input.type = schema.type === 'integer' || schema.type === 'number' ? 'number' : 'text';
          if (schema.type === 'number') input.step = 'any';
          const d0 = schema.default;
          input.value = d0 === undefined || d0 === null ? '' : typeof d0 === 'object' ? JSON.stringify(d0) : String(d0);
          if (schema.type === 'array' || schema.type === 'object') input.placeholder = schema.type === 'array' ? '[1, 2, 3]' : '{"key": "value"}';
        }
      }
      input.name = name;
      input.dataset.type = schema.type ?? 'string';
      input.setAttribute('aria-label', schema.title ?? name);
      if (schema.description) input.title = schema.description;
      const id = `ntl-param-${name}-${Math.random().toString(36).slice(2)}`;
      input.id = id;
      label.htmlFor = id;
      children.push(label, input);
    }
    this.fields.replaceChildren(...children);
  }

  /** The parameters typed as the schema says; bad JSON is reported by startTask's caller. */
  params(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const input of this.fields.querySelectorAll<HTMLInputElement | HTMLSelectElement>('input, select')) {
      const type = input.dataset.type;
      if (input instanceof HTMLSelectElement) out[input.name] = JSON.parse(input.value);
      else if (type === 'boolean') out[input.name] = input.checked;
      else if (input.value === '') continue;
      else if (type === 'integer' || type === 'number') out[input.name] = Number(input.value);
      else if (type === 'array' || type === 'object') {
        try {
          out[input.name] = JSON.parse(input.value);
        } catch {
          throw new Error(`${input.name}: not valid JSON`);
        }
      } else out[input.name] = input.value;
    }
    return out;
  }
}
