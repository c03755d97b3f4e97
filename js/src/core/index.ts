/** The viewer core: one viewer, two hosts (anywidget and the JupyterLab sidebar). */
export * from './filter';
export * from './levels';
export * from './records';
export * from './transport';
export * from './types';
export { LogViewer, type ViewerOptions } from './viewer';
export { TaskListPanel, SettingsView } from './panels';
export { VirtualRows } from './virtual';
