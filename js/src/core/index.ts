/** The viewer core: one viewer, two hosts (anywidget and the JupyterLab sidebar). */
export * from './filter';
export * from './levels';
export * from './records';
export * from './transport';
export * from './types';
export { LogViewer, type ViewerOptions } from './viewer';
export { TaskListPanel } from './task-list';
export { SettingsView } from './settings-view';
export { VirtualRows } from './virtual';
