/**
 * What both hosts do alike with the server's (or kernel's) answers: a log stream's message becomes
 * the viewer's StreamEvents call, and an exported log is saved as a file.
 */
import type { StreamEvents } from './transport';
import type { LogRecord, TaskInfo } from './types';

/** The fields of a stream message, each carried by its kinds (stream.py and widget.py send the same ones). */
export interface StreamMessage {
  cursor: number;
  task: TaskInfo;
  status: string;
  message: string;
}

/**
 * Hand one stream message of kind `kind` to `events`. `decodeRecords` turns a records message into
 * records (each host carries them its own way) and answers null when the message holds none.
 */
export function dispatchStreamMessage(kind: string, msg: StreamMessage, events: StreamEvents, decodeRecords: () => LogRecord[] | null): void {
  switch (kind) {
    case 'records': {
      const records = decodeRecords();
      if (records) events.records(records);
      break;
    }
    case 'history_end': events.historyEnd(msg.cursor); break;
    case 'status': events.status(msg.task); break;
    case 'reset': events.reset(); break;
    case 'end': events.end(msg.status); break;
    case 'error': events.error(msg.message); break;
    // 'lagging': the server catches up from the cursor it last sent; RecordStore drops any repeat.
  }
}

/** Save `blob` as a file named `name`, as the browser saves a download. */
export function saveFile(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  // The download reads the URL after click() returns: revoked at once, it could find nothing there.
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
