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
export const ViewColumn = { Active: -1, Beside: -2, One: 1, Two: 2, Three: 3 };

export class Uri {
  private constructor(readonly fsPath: string) {}
  static file(p: string): Uri {
    return new Uri(p);
  }
  static joinPath(u: Uri, ...parts: string[]): Uri {
    return new Uri([u.fsPath, ...parts].join('/'));
  }
  toString(): string {
    return `file://${this.fsPath}`;
  }
}

/** A webview panel as far as MechLens's panels use it; messages posted to it are recorded. */
export class FakeWebviewPanel {
  title: string;
  viewColumn: number | undefined;
  visible = true;
  active = true;
  disposed = false;
  readonly posted: unknown[] = [];
  private readonly received = new EventEmitter<unknown>();
  private readonly disposedEvent = new EventEmitter<void>();
  private readonly viewState = new EventEmitter<void>();
  readonly webview = {
    options: {} as unknown,
    html: '',
    cspSource: 'mock:',
    asWebviewUri: (u: Uri) => u,
    postMessage: (m: unknown) => {
      this.posted.push(m);
      return Promise.resolve(true);
    },
    onDidReceiveMessage: this.received.event,
  };
  onDidDispose = this.disposedEvent.event;
  onDidChangeViewState = this.viewState.event;
  constructor(
    readonly viewType: string,
    title: string,
    column: number,
  ) {
    this.title = title;
    // Beside the active editor (column 1) is column 2, as in a window with one editor group.
    this.viewColumn = column === ViewColumn.Beside ? 2 : column === ViewColumn.Active ? 1 : column;
  }
  /** The webview sends a message to the host. */
  send(m: unknown): void {
    this.received.fire(m);
  }
  reveal(): void {
    for (const p of panels) p.active = p === this;
    this.visible = true;
    this.viewState.fire();
  }
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.disposedEvent.fire();
  }
}

/** Every panel createWebviewPanel made, in order. */
export const panels: FakeWebviewPanel[] = [];
export const window = {
  showInformationMessage: show('info'),
  showWarningMessage: show('warning'),
  showErrorMessage: show('error'),
  createWebviewPanel: (viewType: string, title: string, show: { viewColumn: number } | number) => {
    const p = new FakeWebviewPanel(viewType, title, typeof show === 'number' ? show : show.viewColumn);
    for (const q of panels) q.active = false;
    panels.push(p);
    return p;
  },
  setStatusBarMessage: () => ({ dispose: () => undefined }),
  showSaveDialog: () => Promise.resolve(undefined),
  withProgress: <R>(_o: unknown, task: (p: { report(x: unknown): void }, t: { onCancellationRequested(fn: () => void): { dispose(): void } }) => Promise<R>) =>
    task({ report: () => undefined }, { onCancellationRequested: () => ({ dispose: () => undefined }) }),
};
export const commands = {
  executeCommand: (id: string) => {
    executed.push(id);
    return Promise.resolve(undefined);
  },
};

export const env = { clipboard: { writeText: () => Promise.resolve() } };
export const workspace = { fs: { writeFile: () => Promise.resolve() }, workspaceFolders: undefined };

export function install(): void {
  const M = Module as unknown as { _resolveFilename: (req: string, ...rest: unknown[]) => string };
  const orig = M._resolveFilename;
  M._resolveFilename = function (req: string, ...rest: unknown[]) {
    return req === 'vscode' ? __filename : orig.call(this, req, ...rest);
  };
}
