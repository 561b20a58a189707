/**
 * The training feature's webview panels: the live training panel (one per experiment file) and
 * its analysis panel. Like every MechLens panel they render complete PanelState snapshots
 * (webviewHost.ts: CSP, resource roots, the state handshake); unlike the generic panels they
 * answer the webview's `webview/panel/action` requests (Stop / Resume / Analyse buttons).
 * Snapshots are pushed at most every PUSH_MS while training streams steps, and at once when the
 * status changes, so a fast run cannot flood the webview.
 */
import * as vscode from 'vscode';
import { WebviewRequests, type PanelActionParams, type PanelState } from '../protocol/webview.js';
import { connectWebview, webviewHtml, webviewOptions, type WebviewConnection } from './webviewHost.js';

export const TRAINING_PANEL_VIEW_TYPE = 'mechlens.trainingPanel';
/** Longest wait between a new step and the snapshot that shows it. */
export const PUSH_MS = 250;

export interface TrainingPanelOptions {
  log: vscode.LogOutputChannel;
  defaultFolder: () => vscode.Uri | undefined;
  /** A button of the webview; rejecting shows the reason next to the buttons. */
  onAction?: (action: PanelActionParams['action']) => Promise<void>;
  onDispose: () => void;
}

export class TrainingPanel implements vscode.Disposable {
  private current: PanelState;
  private readonly connection: WebviewConnection;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private pending: PanelState | undefined;
  private disposed = false;

  constructor(readonly key: string, readonly title: string, private readonly panel: vscode.WebviewPanel, initial: PanelState, extensionUri: vscode.Uri, private readonly opts: TrainingPanelOptions) {
    this.current = initial;
    panel.webview.options = webviewOptions(extensionUri);
    this.connection = connectWebview(panel.webview, () => this.current, { defaultFolder: opts.defaultFolder, log: opts.log });
    this.connection.rpc.onRequest(WebviewRequests.panelAction, async (p) => {
      if (!this.opts.onAction) throw new Error('this panel has no actions');
      await this.opts.onAction(p.action);
    });
    panel.webview.html = webviewHtml(panel.webview, extensionUri, { title, view: 'panel' });
    panel.onDidDispose(() => this.dispose());
  }

  static create(key: string, title: string, initial: PanelState, extensionUri: vscode.Uri, opts: TrainingPanelOptions): TrainingPanel {
    const panel = vscode.window.createWebviewPanel(TRAINING_PANEL_VIEW_TYPE, title, { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true }, {
      ...webviewOptions(extensionUri),
      // Complete snapshots are re-pulled when the webview reloads; nothing to keep alive hidden.
      retainContextWhenHidden: false,
    });
    return new TrainingPanel(key, title, panel, initial, extensionUri, opts);
  }

  get state(): PanelState {
    return this.pending ?? this.current;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  get visible(): boolean {
    try {
      return this.panel.visible;
    } catch {
      return false;
    }
  }

  reveal(): void {
    if (!this.disposed) this.panel.reveal(undefined, true);
  }

  /** Shows `state` now (status changes, results). */
  setState(state: PanelState): void {
    if (this.disposed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = undefined;
    this.current = state;
    this.connection.push(state);
  }

  /** Shows `state` within PUSH_MS, coalescing updates in between (training steps). */
  setStateSoon(state: PanelState): void {
    if (this.disposed) return;
    this.pending = state;
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      const s = this.pending;
      this.pending = undefined;
      if (s && !this.disposed) {
        this.current = s;
        this.connection.push(s);
      }
    }, PUSH_MS);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.timer) clearTimeout(this.timer);
    this.connection.dispose();
    this.opts.onDispose();
    this.panel.dispose();
  }
}
