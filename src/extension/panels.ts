/**
 * MechLens panels (WebviewPanels). A panel shows a loading snapshot at once, runs its task with
 * an AbortSignal, then shows the result or the error (plus a notification); closing it aborts
 * the task, which cancels the engine request across the worker boundary. A result is saved as a
 * run (src/protocol/runs.ts); re-opening a run shows its saved snapshot without recomputing.
 *
 * Placement follows VS Code's own previews: every panel opens in one results column beside the
 * editor (the column the other MechLens panels are in), and a new result of a kind replaces the
 * panel of that kind (its "slot": inspect, attention, attribution, experiment, run, …) unless that
 * panel is locked (the lock button in its title bar) or still computing. A window reload restores
 * the panels: the webview keeps its run id / state with setState and the serializer below reopens
 * it.
 */
import * as vscode from 'vscode';
import { WebviewRequests, type PanelActionParams, type PanelState } from '../protocol/webview.js';
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
  /** Locked panels are never replaced by a later result of their kind. */
  locked: boolean;
  /** The editor column the panel is in (undefined while it is not shown). */
  column?: number;
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
  private baseTitle: string;
  private lockedFlag = false;
  private runIdValue: string | undefined;

  constructor(
    public key: string,
    private readonly panel: vscode.WebviewPanel,
    initial: PanelState,
    extensionUri: vscode.Uri,
    private readonly deps: {
      log: vscode.LogOutputChannel;
      defaultFolder: () => vscode.Uri | undefined;
      onDispose: (p: MechLensPanel) => void;
      onViewState: (p: MechLensPanel) => void;
      onAction: (p: MechLensPanel, a: PanelActionParams) => Promise<void>;
    },
  ) {
    this.state = initial;
    this.baseTitle = panel.title;
    panel.webview.options = webviewOptions(extensionUri);
    this.connection = connectWebview(panel.webview, () => this.state, { defaultFolder: deps.defaultFolder, log: deps.log, onRunId: () => ({ runId: this.runIdValue, locked: this.lockedFlag }) });
    panel.webview.html = webviewHtml(panel.webview, extensionUri, { title: panel.title, view: 'panel' });
    panel.onDidDispose(() => this.dispose());
    panel.onDidChangeViewState(() => deps.onViewState(this));
    // A panel's buttons (e.g. Inspect's "dashboard" on an SAE feature) ask the host to act.
    this.connection.rpc.onRequest(WebviewRequests.panelAction, (a) => deps.onAction(this, a));
  }

  /** The panel's title without the lock mark (tests and the Runs view find panels by it). */
  get title(): string {
    return this.baseTitle;
  }

  /** The slot a key belongs to: a later result of the same slot replaces this panel's. */
  get slot(): string {
    return slotOf(this.key);
  }

  get locked(): boolean {
    return this.lockedFlag;
  }

  set locked(v: boolean) {
    this.lockedFlag = v;
    this.showTitle();
    this.connection.pushRunId(this.runIdValue, v);
  }

  /** The run shown; the webview keeps it (setState) so that a window reload can reopen it. */
  get runId(): string | undefined {
    return this.runIdValue;
  }

  set runId(id: string | undefined) {
    this.runIdValue = id;
    this.connection.pushRunId(id, this.lockedFlag);
  }

  get active(): boolean {
    try {
      return !this.disposed && this.panel.active;
    } catch {
      return false;
    }
  }

  get column(): vscode.ViewColumn | undefined {
    try {
      return this.disposed ? undefined : this.panel.viewColumn;
    } catch {
      return undefined;
    }
  }

  /** Shows another result in this panel (a later result of its slot). */
  retarget(key: string, title: string): void {
    this.abort?.abort();
    this.key = key;
    this.baseTitle = title;
    this.runId = undefined;
    this.showTitle();
  }

  private showTitle(): void {
    if (this.disposed) return;
    this.panel.title = this.lockedFlag ? `🔒 ${this.baseTitle}` : this.baseTitle;
  }

  snapshot(): PanelSnapshot {
    let visible = false;
    try {
      visible = this.panel.visible;
    } catch {
      // The webview was disposed and our onDidDispose has not run yet: it is not visible.
    }
    const s: PanelSnapshot = { id: this.id, title: this.title, locked: this.lockedFlag, kind: this.state.kind, state: this.state, visible };
    const column = this.column;
    if (column !== undefined) s.column = column;
    if (this.runId) s.runId = this.runId;
    return s;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  reveal(): void {
    if (!this.disposed) this.panel.reveal(undefined, false);
  }

  /** Still computing: never taken over by another result. */
  get busy(): boolean {
    return this.abort !== undefined || this.state.kind === 'loading';
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

/** `inspect:…` -> inspect, `run:…` -> run, `experiment:…` -> experiment. */
export function slotOf(key: string): string {
  const i = key.indexOf(':');
  return i < 0 ? key : key.slice(0, i);
}

/** What a restored webview kept (see src/webview/app.ts): the run it showed. */
export interface RestoredPanel {
  runId?: string | null;
  locked?: boolean;
}

export class PanelManager implements vscode.Disposable {
  private readonly panels = new Set<MechLensPanel>();
  /** What a panel's action button runs (set by the commands); none: the button says so. */
  actionHandler: ((a: PanelActionParams) => Promise<void>) | undefined;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly log: vscode.LogOutputChannel,
    private readonly defaultFolder: () => vscode.Uri | undefined,
  ) {}

  /**
   * The panel for `key` (revealed); else the unlocked, idle panel of the key's slot, now showing
   * `key`; else a new panel in the results column. Every new panel starts in `initial`.
   */
  open(key: string, title: string, initial: PanelState): MechLensPanel {
    const live = [...this.panels].filter((p) => !p.isDisposed);
    const same = live.find((p) => p.key === key);
    if (same) {
      same.reveal();
      return same;
    }
    const slot = slotOf(key);
    const reusable = live.find((p) => p.slot === slot && !p.locked && !p.busy);
    if (reusable) {
      reusable.retarget(key, title);
      reusable.setState(initial);
      reusable.reveal();
      return reusable;
    }
    const panel = vscode.window.createWebviewPanel(PANEL_VIEW_TYPE, title, { viewColumn: this.column(live), preserveFocus: false }, {
      ...webviewOptions(this.extensionUri),
      // The webview pulls its complete state when it (re)loads, so it need not be kept alive hidden.
      retainContextWhenHidden: false,
    });
    return this.adopt(key, panel, initial);
  }

  /**
   * The column of the MechLens panels already shown (wherever the user moved them), else beside
   * the editor. Nothing is remembered past the last panel: after "Close All Editors" a remembered
   * column could be the editor's own, and results would open over the code.
   */
  private column(live: MechLensPanel[]): vscode.ViewColumn {
    return live.map((p) => p.column).find((c) => c !== undefined) ?? vscode.ViewColumn.Beside;
  }

  private adopt(key: string, panel: vscode.WebviewPanel, initial: PanelState): MechLensPanel {
    const p = new MechLensPanel(key, panel, initial, this.extensionUri, {
      log: this.log,
      defaultFolder: this.defaultFolder,
      onDispose: (x) => this.panels.delete(x),
      onViewState: () => this.updateLockContext(),
      onAction: async (_p, a) => {
        if (!this.actionHandler) throw new Error(`this panel cannot do ${a.action}`);
        await this.actionHandler(a);
      },
    });
    this.panels.add(p);
    this.updateLockContext();
    return p;
  }

  private updateLockContext(): void {
    void vscode.commands.executeCommand('setContext', 'mechlens.activePanelLocked', [...this.panels].some((x) => x.active && x.locked));
  }

  /**
   * A panel VS Code restores after a window reload: its run is read again (`read`), or, without
   * one (it was computing or unsaved), it says so instead of showing stale or empty figures.
   */
  async restore(panel: vscode.WebviewPanel, kept: RestoredPanel | undefined, read: (runId: string) => Promise<RunRecord>): Promise<void> {
    const title = panel.title;
    const runId = typeof kept?.runId === 'string' && /^[\w.-]+$/.test(kept.runId) ? kept.runId : undefined;
    if (runId) {
      try {
        const rec = await read(runId);
        const p = this.adopt(`run:${rec.id}`, panel, rec.state);
        p.runId = rec.id;
        if (kept?.locked === true) p.locked = true;
        return;
      } catch (e) {
        this.log.warn(`could not restore run ${runId}: ${errorMessage(e)}`);
        this.adopt(`restored:${runId}`, panel, errorState(title, `This panel showed run ${runId}, which can no longer be read (${errorMessage(e)}). Open a run from the Runs view, or run it again.`));
        return;
      }
    }
    this.adopt(`restored:${this.panels.size}`, panel, errorState(title, 'This panel was still computing (or its result was not saved) when the window reloaded. Run it again from its CodeLens or the command palette.'));
  }

  /**
   * Locks (or unlocks) the focused MechLens panel, else the only visible one. `id` picks one
   * (tests). Returns the panel, or undefined when none is focused.
   */
  setLock(lock: boolean, id?: number): MechLensPanel | undefined {
    const live = [...this.panels].filter((p) => !p.isDisposed);
    const visible = live.filter((p) => p.snapshot().visible);
    const p = id !== undefined ? live.find((x) => x.id === id) : (live.find((x) => x.active) ?? (visible.length === 1 ? visible[0] : undefined));
    if (!p) return undefined;
    p.locked = lock;
    this.updateLockContext();
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
