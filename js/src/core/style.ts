/** The viewer's CSS, injected once per document; JupyterLab theme variables with fallbacks for other hosts. */

export const CSS = `
.ntl-viewer, .ntl-panel { --ntl-fg: var(--jp-ui-font-color1, #1f2328); --ntl-muted: var(--jp-ui-font-color2, #59636e);
  --ntl-bg: var(--jp-layout-color1, #fff); --ntl-bg2: var(--jp-layout-color2, #f6f8fa); --ntl-border: var(--jp-border-color2, #d0d7de);
  font-family: var(--jp-ui-font-family, system-ui, sans-serif); font-size: var(--jp-ui-font-size1, 13px); color: var(--ntl-fg);
  display: flex; flex-direction: column; gap: 4px; min-height: 0; }
.ntl-viewer { height: 420px; border: 1px solid var(--ntl-border); background: var(--ntl-bg); padding: 4px; box-sizing: border-box; }
.ntl-fill .ntl-viewer { height: 100%; }
.ntl-header, .ntl-toolbar { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; }
.ntl-status { font-weight: 600; padding: 0 6px; border-radius: 3px; background: var(--ntl-bg2); }
.ntl-status-RUNNING, .ntl-status-PENDING { color: #0969da; } .ntl-status-SUCCESS { color: #1a7f37; }
.ntl-status-FAILED, .ntl-status-INTERRUPTED { color: #cf222e; } .ntl-status-CANCELLED { color: #9a6700; }
.ntl-progress { width: 120px; height: 8px; background: var(--ntl-bg2); border: 1px solid var(--ntl-border); border-radius: 4px; overflow: hidden; }
.ntl-progress-bar { height: 100%; width: 0; background: #2da44e; transition: width .2s; }
.ntl-duration, .ntl-progress-message, .ntl-match-count { color: var(--ntl-muted); }
.ntl-counts { margin-left: auto; display: flex; gap: 4px; }
.ntl-count { padding: 0 5px; border-radius: 3px; font-size: 11px; background: var(--ntl-bg2); }
.ntl-count-ERROR { color: #cf222e; } .ntl-count-WARNING { color: #9a6700; } .ntl-count-DEBUG { color: var(--ntl-muted); }
.ntl-toolbar input, .ntl-toolbar select, .ntl-button, .ntl-panel input, .ntl-panel select, .ntl-panel textarea {
  font: inherit; color: inherit; background: var(--ntl-bg); border: 1px solid var(--ntl-border); border-radius: 3px; padding: 1px 6px; }
.ntl-button { cursor: pointer; } .ntl-button:disabled, .ntl-panel :is(input, select):disabled { opacity: .55; cursor: not-allowed; } .ntl-button[aria-pressed="true"] { background: var(--ntl-bg2); font-weight: 600; }
.ntl-button:focus-visible, .ntl-toolbar :focus-visible, .ntl-scroll:focus-visible, .ntl-row button:focus-visible { outline: 2px solid #0969da; outline-offset: 1px; }
.ntl-search-input { width: 12em; } .ntl-meta-input { width: 12em; } .ntl-meta-input[aria-invalid="true"] { border-color: #cf222e; }
.ntl-sources { position: relative; } .ntl-sources-summary { cursor: pointer; border: 1px solid var(--ntl-border); border-radius: 3px; padding: 1px 6px; list-style: none; }
.ntl-source-list { position: absolute; z-index: 10; background: var(--ntl-bg); border: 1px solid var(--ntl-border); padding: 4px; min-width: 14em; max-height: 16em; overflow: auto; box-shadow: 0 2px 8px rgba(0,0,0,.15); }
.ntl-source-option { display: flex; gap: 4px; align-items: center; white-space: nowrap; }
.ntl-frame { position: relative; flex: 1; min-height: 0; display: flex; }
.ntl-scroll { flex: 1; overflow: auto; font-family: var(--jp-code-font-family, ui-monospace, monospace); font-size: var(--jp-code-font-size, 12px); contain: strict; }
.ntl-empty { position: absolute; top: 8px; left: 8px; color: var(--ntl-muted); pointer-events: none; }
.ntl-latest { position: absolute; bottom: 8px; left: 50%; transform: translateX(-50%); background: #0969da; color: #fff; border: 0; border-radius: 12px; padding: 2px 12px; box-shadow: 0 1px 4px rgba(0,0,0,.3); }
/* Rows have one fixed height (the virtual list places them by index × height); an expanded row grows. */
.ntl-row { box-sizing: border-box; top: 0; height: 22px; overflow: hidden; border-bottom: 1px solid transparent; contain: strict; }
.ntl-row-tall { height: auto; contain: layout paint style; } .ntl-row-tall .ntl-message { white-space: pre-wrap; overflow-wrap: anywhere; }
.ntl-row:hover { background: var(--ntl-bg2); } .ntl-row-focused { background: var(--jp-brand-color3, #ddf4ff); }
.ntl-line { display: flex; gap: 6px; align-items: baseline; line-height: 21px; white-space: pre; overflow: hidden; }
.ntl-time { color: var(--ntl-muted); flex: none; }
.ntl-level { flex: none; width: 4.5em; font-weight: 600; }
.ntl-level-DEBUG .ntl-level { color: var(--ntl-muted); } .ntl-level-INFO .ntl-level { color: #0969da; }
.ntl-level-WARNING .ntl-level { color: #9a6700; } .ntl-level-ERROR .ntl-level { color: #cf222e; }
.ntl-level-ERROR { background: rgba(207, 34, 46, .06); } .ntl-level-WARNING { background: rgba(154, 103, 0, .05); }
.ntl-source { flex: none; padding: 0 5px; border-radius: 8px; font-size: 11px; background: hsl(var(--ntl-hue) 70% 90%); color: hsl(var(--ntl-hue) 60% 25%); }
.ntl-message { flex: 1; overflow: hidden; text-overflow: ellipsis; }
.ntl-actions { flex: none; display: flex; gap: 2px; opacity: .55; } .ntl-row:hover .ntl-actions, .ntl-actions:focus-within { opacity: 1; }
.ntl-actions button { font: inherit; font-size: 11px; background: none; border: 1px solid transparent; cursor: pointer; color: var(--ntl-muted); padding: 0 3px; }
.ntl-actions button:hover { border-color: var(--ntl-border); }
.ntl-meta { margin: 0 0 4px 7em; padding: 4px 8px; background: var(--ntl-bg2); white-space: pre-wrap; word-break: break-all; }
mark.ntl-match { background: #fff8c5; color: inherit; } mark.ntl-match-current { background: #ffd33d; outline: 1px solid #bf8700; }
.ntl-note { min-height: 1.2em; color: var(--ntl-muted); } .ntl-note-error { color: #cf222e; }
.ntl-sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
.ntl-panel { padding: 6px; overflow: auto; height: 100%; box-sizing: border-box; }
/* Narrow hosts (the sidebar): a record takes two lines (time, level, source / message, cut with an ellipsis). */
.ntl-viewer, .ntl-tasks { container-type: inline-size; }
@container (max-width: 560px) {
  .ntl-row { height: 43px; border-bottom-color: var(--ntl-border); }
  .ntl-line { display: grid; grid-template-columns: auto auto minmax(0, 1fr) auto; grid-auto-rows: 21px; align-items: center; gap: 0 6px; }
  .ntl-row-tall .ntl-line { grid-auto-rows: auto; }
  .ntl-level { width: auto; }
  .ntl-source { grid-column: 3 / 5; justify-self: start; max-width: 100%; overflow: hidden; text-overflow: ellipsis; }
  .ntl-message { grid-column: 1 / 4; grid-row: 2; }
  .ntl-actions { grid-column: 4; grid-row: 2; }
  .ntl-meta { margin-left: 0; }
}
@container (max-width: 420px) { .ntl-col-started { display: none; } }
.ntl-panel h3 { margin: 6px 0 2px; font-size: 13px; }
.ntl-task-filters { display: flex; flex-wrap: wrap; gap: 4px; margin: 2px 0 4px; } .ntl-task-filters select { min-width: 0; max-width: 100%; }
.ntl-whose { display: flex; flex-wrap: wrap; align-items: center; gap: 2px 8px; } .ntl-whose[hidden] { display: none; }
.ntl-whose label { display: inline-flex; align-items: center; gap: 3px; white-space: nowrap; cursor: pointer; } .ntl-panel .ntl-whose input { margin: 0; padding: 0; }
.ntl-whose input:focus-visible { outline: 2px solid #0969da; outline-offset: 1px; }
.ntl-task-user { display: block; overflow: hidden; text-overflow: ellipsis; color: var(--ntl-muted); font-size: 11px; }
.ntl-task-table { width: 100%; border-collapse: collapse; font-size: 12px; } .ntl-task-table th, .ntl-task-table td { text-align: left; padding: 2px 4px; border-bottom: 1px solid var(--ntl-border); white-space: nowrap; }
.ntl-task-table tr[aria-selected="true"] { background: var(--jp-brand-color3, #ddf4ff); } .ntl-task-table tbody tr { cursor: pointer; }
.ntl-form { display: grid; grid-template-columns: auto 1fr; gap: 4px 8px; align-items: center; }
.ntl-form .ntl-form-actions { grid-column: 1 / -1; display: flex; gap: 6px; }
`;

export function injectStyles(doc: Document): void {
  if (doc.getElementById('nbtasklog-styles')) return;
  const style = doc.createElement('style');
  style.id = 'nbtasklog-styles';
  style.textContent = CSS;
  doc.head.appendChild(style);
}
