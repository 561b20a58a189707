/**
 * The few `vscode` APIs the engine host uses, for running it in plain node: notifications are
 * recorded, progress runs the task, commands are recorded. install() makes `require('vscode')`
 * resolve to this module (the real API exists only inside VS Code's extension host).
 */
import Module from 'node:module';

export const shown: { level: 'info' | 'warning' | 'error'; text: string; items: string[] }[] = [];
export const executed: string[] = [];
/** What the next notification "clicks" (undefined: dismissed). */
export const answers: { next?: string } = {};

export class EventEmitter<T> {
  private listeners: ((e: T) => void)[] = [];
  event = (fn: (e: T) => void) => {
    this.listeners.push(fn);
    return { dispose: () => (this.listeners = this.listeners.filter((l) => l !== fn)) };
  };
  fire(e: T): void {
    for (const l of [...this.listeners]) l(e);
  }
  dispose(): void {
    this.listeners = [];
  }
}

const show = (level: 'info' | 'warning' | 'error') => (text: string, ...items: unknown[]) => {
  shown.push({ level, text, items: items.filter((i): i is string => typeof i === 'string') });
  const a = answers.next;
  answers.next = undefined;
  return Promise.resolve(a);
};

export const ProgressLocation = { Notification: 15, Window: 10 };
export const window = {
  showInformationMessage: show('info'),
  showWarningMessage: show('warning'),
  showErrorMessage: show('error'),
  withProgress: <R>(_o: unknown, task: (p: { report(x: unknown): void }, t: { onCancellationRequested(fn: () => void): { dispose(): void } }) => Promise<R>) =>
    task({ report: () => undefined }, { onCancellationRequested: () => ({ dispose: () => undefined }) }),
};
export const commands = {
  executeCommand: (id: string) => {
    executed.push(id);
    return Promise.resolve(undefined);
  },
};

export function install(): void {
  const M = Module as unknown as { _resolveFilename: (req: string, ...rest: unknown[]) => string };
  const orig = M._resolveFilename;
  M._resolveFilename = function (req: string, ...rest: unknown[]) {
    return req === 'vscode' ? __filename : orig.call(this, req, ...rest);
  };
}
