/**
 * MechLens panels (WebviewPanels). A panel shows a loading snapshot at once, runs its task with
 * an AbortSignal, then shows the result or the error (plus a notification); closing it aborts
 * the task, which cancels the engine request across the worker boundary. A result is saved as a
 * run (src/protocol/runs.ts); re-opening a run shows its saved snapshot without recomputing.
 */
import * as vscode from 'vscode';
import type { PanelState } from '../protocol/webview.js';
import type { RunInputs, RunRecord } from '../protocol/runs.js';
import { webviewHtml, webviewOptions, connectWebview, type WebviewConnection } from './webviewHost.js';
import { errorState, isResultState, loadingState } from './states.js';
import { errorMessage, isCancellation } from './latest.js';
import { describeError, notifyError } from './notify.js';

export const PANEL_VIEW_TYPE = 'mechlens.panel';

export interface PanelTaskResult {
  state: PanelState;
  /** What is saved with the run; absent: the result is not saved. */
  run?: { inputs: RunInputs; save: (state: PanelState) => Promise<RunRecord | undefined> };
}

export interface PanelSnapshot {
  id: number;
  title: string;
  kind: PanelState['kind'];
  state: PanelState;
  visible: boolean;
  /** The run this panel shows (saved or re-opened). */
  runId?: string;
}

let nextPanelId = 1;

export class MechLensPanel {
  readonly id = nextPanelId++;
  private state: PanelState;
  private readonly connection: WebviewConnection;
  private abort: AbortController | undefined;
  private disposed = false;
  private readonly fixedTitle: string;
  runId: string | undefined;

  constructor(
    readonly key: string,
    private readonly panel: vscode.WebviewPanel,
    initial: PanelState,
    extensionUri: vscode.Uri,
    private readonly deps: { log: vscode.LogOutputChannel; defaultFolder: () => vscode.Uri | undefined; onDispose: (p: MechLensPanel) => void },
  ) {
    this.state = initial;
    this.fixedTitle = panel.title;
    panel.webview.options = webviewOptions(extensionUri);
    this.connection = connectWebview(panel.webview, () => this.state, { defaultFolder: deps.defaultFolder, log: deps.log });
    panel.webview.html = webviewHtml(panel.webview, extensionUri, { title: panel.title, view: 'panel' });
    panel.onDidDispose(() => this.dispose());
  }

  /** Fixed at creation (tests and the Runs view find panels by it). */
  get title(): string {
    return this.fixedTitle;
  }

  snapshot(): PanelSnapshot {
    let visible = false;
    try {
      visible = this.panel.visible;
    } catch {
      // The webview was disposed and our onDidDispose has not run yet: it is not visible.
    }
    const s: PanelSnapshot = { id: this.id, title: this.title, kind: this.state.kind, state: this.state, visible };
    if (this.runId) s.runId = this.runId;
    return s;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  reveal(): void {
    if (!this.disposed) this.panel.reveal(undefined, false);
  }

  setState(state: PanelState): void {
    if (this.disposed) return;
    this.state = state;
    this.connection.push(state);
  }

  /**
   * Shows `loading`, runs `task`, then its result. A newer run (or closing the panel) aborts
   * this one; its late result is dropped. Failures become the error state and a notification.
   */
  async run(title: string, loadingMessage: string, task: (signal: AbortSignal) => Promise<PanelTaskResult>): Promise<void> {
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    this.setState(loadingState(title, loadingMessage));
    try {
      const r = await task(abort.signal);
      if (abort.signal.aborted || this.disposed) return;
      this.setState(r.state);
      if (r.run && isResultState(r.state)) {
        try {
          const rec = await r.run.save(r.state);
          if (rec) this.runId = rec.id;
        } catch (e) {
          // The panel is what the user asked for; a run that cannot be saved is only logged.
          this.deps.log.warn(`could not save the run of "${title}": ${errorMessage(e)}`);
        }
      }
    } catch (e) {
      if (this.disposed || abort.signal.aborted) return;
      if (isCancellation(e)) {
        this.setState(errorState(title, 'Cancelled.'));
        return;
      }
      this.setState(errorState(title, describeError(e)));
      notifyError(title, e, this.deps.log);
    } finally {
      if (this.abort === abort) this.abort = undefined;
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    // Closing a panel mid-run cancels its request (the engine stops at its next check).
    this.abort?.abort();
    this.connection.dispose();
    this.deps.onDispose(this);
    this.panel.dispose();
  }
}

export class PanelManager implements vscode.Disposable {
  private readonly panels = new Set<MechLensPanel>();

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly log: vscode.LogOutputChannel,
    private readonly defaultFolder: () => vscode.Uri | undefined,
  ) {}

  /** The panel for `key` (revealed), or a new one; every panel starts in `initial`. */
  open(key: string, title: string, initial: PanelState): MechLensPanel {
    for (const p of this.panels) {
      if (p.key === key && !p.isDisposed) {
        p.reveal();
        return p;
      }
    }
    const panel = vscode.window.createWebviewPanel(PANEL_VIEW_TYPE, title, { viewColumn: vscode.ViewColumn.Beside, preserveFocus: false }, {
      ...webviewOptions(this.extensionUri),
      // The webview pulls its complete state when it (re)loads, so it need not be kept alive hidden.
      retainContextWhenHidden: false,
    });
    const p = new MechLensPanel(key, panel, initial, this.extensionUri, {
      log: this.log,
      defaultFolder: this.defaultFolder,
      onDispose: (x) => this.panels.delete(x),
    });
    this.panels.add(p);
    return p;
  }

  /** Re-opens a saved run from its snapshot, without recomputing. */
  openRun(rec: RunRecord): MechLensPanel {
    const p = this.open(`run:${rec.id}`, rec.title, rec.state);
    p.runId = rec.id;
    p.setState(rec.state);
    return p;
  }

  list(): PanelSnapshot[] {
    return [...this.panels].filter((p) => !p.isDisposed).map((p) => p.snapshot());
  }

  dispose(): void {
    for (const p of [...this.panels]) p.dispose();
    this.panels.clear();
  }
}
