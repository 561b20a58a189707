/**
 * MechLens's entry point in VS Code: wires the engine host (engine process), the `.prompts`
 * language support, panels, side views, status bar and commands. Every disposable is registered
 * in context.subscriptions, so deactivation stops the worker and releases everything.
 *
 * activate() returns an API for the integration tests: raw engine requests, the open panels'
 * snapshots, and where runs are saved.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ModelInfo } from '../protocol/engine.js';
import type { ParamsOf, RequestType, ResultOf } from '../protocol/ipc.js';
import { RUNS_DIR } from '../protocol/runs.js';
import type { TopKViewState } from '../protocol/webview.js';
import { EngineHost, type EngineHostState } from './engineHost.js';
import { PANEL_VIEW_TYPE, PanelManager, type PanelSnapshot, type RestoredPanel } from './panels.js';
import { PromptsCodeActions, PromptsCodeLensProvider, PromptsDiagnostics, PromptsDocuments } from './promptsLanguage.js';
import { PredictionsViewProvider, PREDICTIONS_VIEW_ID } from './predictionsView.js';
import { HooksTree, ModelTree, RunsTree } from './treeViews.js';
import { ModelStatusBar } from './statusBar.js';
import { RunStore } from './runStore.js';
import { readSettings } from './settings.js';
import { registerCommands } from './commands.js';
import { PROMPTS_LANGUAGE_ID } from './promptTarget.js';
import { notifyError } from './notify.js';
import { registerExperiments } from './experiments.js';
import { registerTraining } from './training.js';
import { registerSaeTraining } from './saeTraining.js';

export interface MechLensApi {
  engine: {
    /** A typed request to the engine worker (no model is loaded for it). */
    request<T extends RequestType<unknown, unknown>>(type: T, params: ParamsOf<T>, signal?: AbortSignal): Promise<ResultOf<T>>;
    /** Loads the configured model if needed. */
    ensureModel(): Promise<ModelInfo>;
    readonly state: EngineHostState;
    /** Engine process deaths since activation. */
    readonly crashes: number;
    /** The engine process's id while it runs. */
    readonly pid: number | undefined;
  };
  /** Snapshots of the open panels (title, kind, complete state). */
  readonly panels: PanelSnapshot[];
  /** The Predictions view's current state. */
  readonly predictions: TopKViewState;
  /** Where runs are saved (<workspace>/.mechlens/runs), or undefined without a workspace. */
  readonly runsDir: string | undefined;
}

export function activate(context: vscode.ExtensionContext): MechLensApi {
  const log = vscode.window.createOutputChannel('MechLens', { log: true });
  context.subscriptions.push(log);
  const version = String((context.extension.packageJSON as { version?: unknown }).version ?? '0.0.0');

  const workspaceFolder = (): string | undefined => vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const config = () => vscode.workspace.getConfiguration('mechlens');
  const settings = () => readSettings((k) => config().get(k), workspaceFolder(), os.homedir(), (p) => fs.existsSync(p));
  const options = () => ({
    prependBos: config().get<boolean>('prependBos') ?? true,
    topK: Math.max(1, Math.min(100, Math.round(config().get<number>('predictions.topK') ?? 10))),
  });

  const host = new EngineHost({ workerPath: path.join(context.extensionPath, 'dist', 'engineWorker.js'), settings, log });
  context.subscriptions.push(host);

  const runsDir = (): string | undefined => {
    const ws = workspaceFolder();
    return ws ? path.join(ws, ...RUNS_DIR.split('/')) : undefined;
  };
  const runStore = (): RunStore | undefined => {
    const dir = runsDir();
    return dir ? new RunStore(dir) : undefined;
  };

  const docs = new PromptsDocuments();
  const codeLenses = new PromptsCodeLensProvider(docs);
  const diagnostics = new PromptsDiagnostics(docs, host, context.extensionUri, log);
  const selector: vscode.DocumentSelector = [
    { language: PROMPTS_LANGUAGE_ID, scheme: 'file' },
    { language: PROMPTS_LANGUAGE_ID, scheme: 'untitled' },
  ];
  context.subscriptions.push(
    codeLenses,
    diagnostics,
    vscode.languages.registerCodeLensProvider(selector, codeLenses),
    vscode.languages.registerCodeActionsProvider(selector, new PromptsCodeActions(diagnostics), { providedCodeActionKinds: PromptsCodeActions.kinds }),
  );

  // Exported figures and data go where the researcher works (the save dialog starts in the
  // workspace folder), not into the hidden runs folder.
  const panels = new PanelManager(context.extensionUri, log, () => vscode.workspace.workspaceFolders?.[0]?.uri);
  context.subscriptions.push(
    panels,
    // After a window reload VS Code hands back the panels it had; each reopens the run it showed.
    vscode.window.registerWebviewPanelSerializer(PANEL_VIEW_TYPE, {
      deserializeWebviewPanel: async (panel, kept: unknown) => {
        const store = runStore();
        await panels.restore(panel, (typeof kept === 'object' && kept !== null ? kept : undefined) as RestoredPanel | undefined, async (id) => {
          if (!store) throw new Error('no workspace folder is open');
          return store.read(id);
        });
      },
    }),
  );

  const modelTree = new ModelTree(host);
  const hooksTree = new HooksTree(host);
  const runsTree = new RunsTree(runStore);
  context.subscriptions.push(
    modelTree,
    hooksTree,
    runsTree,
    vscode.window.createTreeView('mechlens.model', { treeDataProvider: modelTree }),
    vscode.window.createTreeView('mechlens.hooks', { treeDataProvider: hooksTree, showCollapseAll: true }),
    vscode.window.createTreeView('mechlens.runs', { treeDataProvider: runsTree }),
    host.onDidChangeState(() => {
      modelTree.refresh();
      hooksTree.refresh();
    }),
  );
  // Runs written by anything (this window, experiment runners, the CLI) show up in the view.
  const ws = vscode.workspace.workspaceFolders?.[0];
  if (ws) {
    const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(ws, `${RUNS_DIR}/*/run.json`));
    context.subscriptions.push(watcher, watcher.onDidCreate(() => runsTree.refresh()), watcher.onDidChange(() => runsTree.refresh()), watcher.onDidDelete(() => runsTree.refresh()));
  }

  const predictions = new PredictionsViewProvider(context.extensionUri, host, docs, log, () => options().topK, () => options().prependBos);
  context.subscriptions.push(predictions, vscode.window.registerWebviewViewProvider(PREDICTIONS_VIEW_ID, predictions));

  context.subscriptions.push(new ModelStatusBar(host));
  context.subscriptions.push(...registerCommands({ host, panels, docs, runStore, runsTree, log, options, version }));
  context.subscriptions.push(...registerExperiments({ host, panels, docs, runsTree, log, extensionUri: context.extensionUri, prependBos: () => options().prependBos }));
  context.subscriptions.push(registerTraining({ context, log, version, runsDir }));
  context.subscriptions.push(registerSaeTraining({ context, log, version, runsDir }));

  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (['mechlens.model', 'mechlens.processing', 'mechlens.device'].some((k) => e.affectsConfiguration(k))) {
        log.info(`settings changed: model ${settings().model}, processing ${settings().processing}, device ${settings().device}`);
        host.onSettingsChanged()?.catch((err: unknown) => notifyError('MechLens: loading the model', err, log));
      }
      if (e.affectsConfiguration('mechlens.prependBos')) void predictions.update();
    }),
    vscode.workspace.onDidChangeWorkspaceFolders(() => runsTree.refresh()),
  );

  log.info(`MechLens ${version} activated; model setting: ${settings().model}`);

  return {
    engine: {
      request: (type, params, signal) => host.request(type, params, signal),
      ensureModel: () => host.ensureModel({ interactive: true }),
      get state() {
        return host.state;
      },
      get pid() {
        return host.pid;
      },
      get crashes() {
        return host.crashes;
      },
    },
    get panels() {
      return panels.list();
    },
    get predictions() {
      return predictions.currentState;
    },
    get runsDir() {
      return runsDir();
    },
  };
}

export function deactivate(): void {
  // Everything is in context.subscriptions; VS Code disposes them (the worker is terminated).
}
