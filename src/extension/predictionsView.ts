/**
 * The "Predictions" webview view: the top-k next tokens of the prompt under the cursor, live.
 * Editor events are debounced (300 ms) and each request aborts the one it supersedes, so typing
 * never queues work in the engine. It only computes while the view is visible.
 */
import * as vscode from 'vscode';
import { EngineRequests, type TestPromptResult } from '../protocol/engine.js';
import type { TopKViewState } from '../protocol/webview.js';
import type { EngineHost } from './engineHost.js';
import { connectWebview, webviewHtml, webviewOptions, type WebviewConnection } from './webviewHost.js';
import { predictionPromptAt } from './promptTarget.js';
import { modelLabel, topKState } from './states.js';
import { Debouncer, LatestOnly, errorMessage, isCancellation } from './latest.js';
import type { PromptsDocuments } from './promptsLanguage.js';

export const PREDICTIONS_VIEW_ID = 'mechlens.predictions';
const DEBOUNCE_MS = 300;

export class PredictionsViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  private view: vscode.WebviewView | undefined;
  private connection: WebviewConnection | undefined;
  private state: TopKViewState = topKState(null, null, null, 'Put the cursor on a prompt to see what the model predicts next.');
  private readonly latest = new LatestOnly();
  private readonly debouncer = new Debouncer(DEBOUNCE_MS, () => void this.update());
  private readonly subscriptions: vscode.Disposable[] = [];
  private lastEditor: vscode.TextEditor | undefined;
  /** Requests answered so far (tests check that superseded ones were cancelled, not answered). */
  updates = 0;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly host: EngineHost,
    private readonly docs: PromptsDocuments,
    private readonly log: vscode.LogOutputChannel,
    private readonly topK: () => number,
    private readonly prependBos: () => boolean,
  ) {
    const trigger = () => {
      if (this.view?.visible) this.debouncer.trigger();
    };
    this.lastEditor = vscode.window.activeTextEditor;
    this.subscriptions.push(
      vscode.window.onDidChangeTextEditorSelection((e) => e.textEditor === this.editor() && trigger()),
      vscode.window.onDidChangeActiveTextEditor((e) => {
        // Focus moving to a panel or the side bar leaves no active text editor: keep following the last one.
        if (e) this.lastEditor = e;
        trigger();
      }),
      vscode.workspace.onDidChangeTextDocument((e) => e.document === this.editor()?.document && trigger()),
      host.onDidChangeState((s) => (s.kind === 'ready' || s.kind === 'error') && trigger()),
    );
  }

  /** The editor whose cursor the view follows: the active one, else the last one still visible. */
  private editor(): vscode.TextEditor | undefined {
    const active = vscode.window.activeTextEditor;
    if (active) return active;
    const last = this.lastEditor;
    return last && vscode.window.visibleTextEditors.includes(last) ? last : undefined;
  }

  get currentState(): TopKViewState {
    return this.state;
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.connection?.dispose();
    this.view = view;
    view.webview.options = webviewOptions(this.extensionUri);
    this.connection = connectWebview(view.webview, () => this.state, {
      defaultFolder: () => vscode.workspace.workspaceFolders?.[0]?.uri,
      log: this.log,
    });
    view.webview.html = webviewHtml(view.webview, this.extensionUri, { title: 'MechLens Predictions', view: 'predictions' });
    const subs = [
      view.onDidChangeVisibility(() => {
        if (view.visible) this.debouncer.trigger();
        else this.latest.cancel();
      }),
      view.onDidDispose(() => {
        this.latest.cancel();
        this.connection?.dispose();
        this.connection = undefined;
        this.view = undefined;
        for (const s of subs) s.dispose();
      }),
    ];
    this.debouncer.trigger();
  }

  private setState(s: TopKViewState): void {
    this.state = s;
    this.connection?.push(s);
  }

  /** Computes the predictions for the active editor's cursor now (also used by tests). */
  async update(): Promise<void> {
    const editor = this.editor();
    const signal = this.latest.next();
    const modelName = this.host.model ? modelLabel(this.host.model) : null;
    if (!editor) {
      this.setState(topKState(modelName, null, null, 'Open a file and put the cursor on a prompt.'));
      return;
    }
    const doc = editor.document;
    const target = predictionPromptAt({ languageId: doc.languageId, text: doc.getText() }, editor.selection, this.docs.parsedIfPrompts(doc));
    if (!target) {
      this.setState(topKState(modelName, null, null, 'No prompt under the cursor: put it on a prompt line (or on text to continue).'));
      return;
    }
    try {
      const info = await this.host.ensureModel({ interactive: false });
      if (!this.latest.isLatest(signal)) return;
      const params = { prompt: target.prompt, k: this.topK(), prependBos: this.prependBos() };
      let result: TestPromptResult;
      try {
        result = await this.host.request(EngineRequests.testPrompt, target.answer !== undefined ? { ...params, answer: target.answer } : params, signal);
      } catch (e) {
        // A multi-token answer must not hide the predictions: retry without it.
        if (target.answer === undefined || isCancellation(e)) throw e;
        result = await this.host.request(EngineRequests.testPrompt, params, signal);
      }
      if (!this.latest.isLatest(signal)) return;
      this.updates++;
      this.setState(topKState(modelLabel(info), target.prompt, result));
    } catch (e) {
      if (isCancellation(e) || !this.latest.isLatest(signal)) return;
      this.setState(topKState(modelName, target.prompt, null, errorMessage(e)));
    }
  }

  dispose(): void {
    this.latest.cancel();
    this.debouncer.dispose();
    this.connection?.dispose();
    for (const s of this.subscriptions) s.dispose();
  }
}
