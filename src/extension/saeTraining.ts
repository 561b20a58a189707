/**
 * Training SAEs from `"kind": "train_sae"` experiment files, in the editor:
 *
 *  - the CodeLens row at the file's "kind": Train SAE, or while training: the step · Stop; the
 *    same as commands MechLens: Train SAE / Stop SAE Training (the active editor's file);
 *  - the run goes to an engine worker of its own (engine/sae/train: model, corpus, activations,
 *    training, save, held-out measurement), so the editor and the other panels stay responsive;
 *  - the training panel (the toy-transformer training panel, with an SAE metrics section: MSE,
 *    L0, explained variance, dead features per snapshot) with Stop, saved as a run at the end.
 *
 * Diagnostics of these files come from the experiments feature (the worker's experiment check
 * parses every *.experiment.json with parse.ts, which reads train_sae files with saeTrainParse.ts).
 * `mechlens.saeTraining.snapshot` (not in the palette) returns the panels' states for tests.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineClient } from '../engine/worker/client.js';
import { EngineRequests } from '../protocol/engine.js';
import { newRunId } from '../protocol/runs.js';
import type { PanelActionParams, TrainingState } from '../protocol/webview.js';
import { parseJsonWithPositions, LineIndex, type JsonNode } from '../engine/experiments/json.js';
import { confinedReader } from '../engine/experiments/files.js';
import { defaultSaeDir, isSaeTrainRoot, resolveSaeTrainExperiment, type ResolvedSaeTrainExperiment } from '../engine/experiments/saeTrainParse.js';
import { experimentRoot, trustedToRun } from './workspaceRoot.js';
import { RunStore } from './runStore.js';
import { errorMessage, isCancellation } from './latest.js';
import { registerReportingCommand } from './notify.js';
import { TrainingPanel } from './trainingPanel.js';
import { TRAIN_SELECTOR, isTrainLensArg, type TrainLensArg } from './trainingLens.js';
import { SaeTrainingTracker, saeTrainingRunRecord } from './saeTrainingStates.js';

export interface SaeTrainingServices {
  context: vscode.ExtensionContext;
  log: vscode.LogOutputChannel;
  version: string;
  runsDir: () => string | undefined;
}

interface Session {
  file: string;
  x: ResolvedSaeTrainExperiment;
  tracker: SaeTrainingTracker;
  panel: TrainingPanel | undefined;
  abort: AbortController | undefined;
}

/** A train_sae file's root and where its "kind" is, or null for other files. */
function saeOutline(text: string): { root: JsonNode; lines: LineIndex; kindRange: vscode.Range } | null {
  let root: JsonNode;
  try {
    root = parseJsonWithPositions(text);
  } catch {
    return null;
  }
  if (!isSaeTrainRoot(root) || root.type !== 'object') return null;
  const prop = root.properties.find((p) => p.key === 'kind')!;
  const lines = new LineIndex(text);
  const pos = lines.position(prop.keyNode.offset);
  return { root, lines, kindRange: new vscode.Range(pos.line, pos.character, pos.line, pos.character) };
}

class SaeTrainLenses implements vscode.CodeLensProvider, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<void>();
  readonly onDidChangeCodeLenses = this.emitter.event;
  constructor(private readonly status: (file: string) => { running: boolean; stopping: boolean; step: number; steps: number } | undefined) {}
  refresh(): void {
    this.emitter.fire();
  }
  provideCodeLenses(doc: vscode.TextDocument): vscode.CodeLens[] {
    const o = saeOutline(doc.getText());
    if (!o) return [];
    const arg: TrainLensArg = { uri: doc.uri.toString() };
    const lens = (title: string, command: string, tooltip: string) => new vscode.CodeLens(o.kindRange, { title, command, arguments: [arg], tooltip });
    const st = this.status(doc.uri.fsPath);
    if (st?.running) {
      return [
        lens(st.stopping ? `Stopping at step ${st.step}…` : `Training SAE: step ${st.step} / ${st.steps}`, 'mechlens.showSaeTraining', 'Show the training panel'),
        ...(st.stopping ? [] : [lens('Stop', 'mechlens.stopSaeTraining', 'Stop after the current step and save the SAE')]),
      ];
    }
    return [lens('Train SAE', 'mechlens.trainSae', "Train this SAE on the hook's activations and save it in SAELens's format")];
  }
  dispose(): void {
    this.emitter.dispose();
  }
}

export class SaeTrainingController implements vscode.Disposable {
  private readonly sessions = new Map<string, Session>();
  private client: EngineClient | undefined;
  readonly lenses: SaeTrainLenses;
  private lensTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly s: SaeTrainingServices) {
    this.lenses = new SaeTrainLenses((f) => {
      const x = this.sessions.get(f);
      return x ? { running: x.abort !== undefined, stopping: x.tracker.currentStatus === 'stopping', step: x.tracker.step, steps: x.x.payload.steps } : undefined;
    });
  }

  private engine(): EngineClient {
    if (this.client?.alive) return this.client;
    const c = new EngineClient({ workerPath: path.join(this.s.context.extensionPath, 'dist', 'engineWorker.js') });
    c.onDidExit((reason) => this.s.log.error(`SAE training worker stopped: ${reason}`));
    return (this.client = c);
  }

  private async target(arg: unknown): Promise<ResolvedSaeTrainExperiment | undefined> {
    const uri = isTrainLensArg(arg) ? vscode.Uri.parse(arg.uri) : arg instanceof vscode.Uri ? arg : vscode.window.activeTextEditor?.document.uri;
    if (!uri) {
      void vscode.window.showWarningMessage('MechLens: open an SAE training experiment ("kind": "train_sae" in an *.experiment.json file) first.');
      return undefined;
    }
    const doc = await vscode.workspace.openTextDocument(uri);
    const o = saeOutline(doc.getText());
    if (!o) {
      void vscode.window.showWarningMessage(`MechLens: ${vscode.workspace.asRelativePath(uri)} is not an SAE training experiment (it needs "kind": "train_sae").`);
      return undefined;
    }
    const root = experimentRoot(uri.fsPath);
    let r = resolveSaeTrainExperiment(o.root, o.lines, uri.fsPath, { root, dir: path.dirname(uri.fsPath), reader: confinedReader(root) });
    const errors = r.diagnostics.filter((d) => d.severity === 'error');
    if (!r.trainSae || errors.length) {
      const first = errors[0];
      void vscode.window.showErrorMessage(`MechLens: ${errors.length} error${errors.length === 1 ? '' : 's'} in ${vscode.workspace.asRelativePath(uri)}${first ? ` — line ${first.range.start.line + 1}, column ${first.range.start.character + 1}: ${first.message}` : ''}`);
      return undefined;
    }
    // Without "output", the SAE goes to .mechlens/saes/<name>/ in the workspace folder.
    const ws = vscode.workspace.getWorkspaceFolder(uri)?.uri.fsPath;
    if (!r.trainSae.output.explicit && ws) {
      const dir = defaultSaeDir(ws, r.trainSae.name);
      r = { ...r, trainSae: { ...r.trainSae, output: { dir, explicit: false }, payload: { ...r.trainSae.payload, output: dir } } };
    }
    return r.trainSae;
  }

  private refreshLensesSoon(): void {
    this.lensTimer ??= setTimeout(() => {
      this.lensTimer = undefined;
      this.lenses.refresh();
    }, 1000);
  }

  async train(arg: unknown): Promise<TrainingState | undefined> {
    const x = await this.target(arg);
    if (!x) return undefined;
    const busy = [...this.sessions.values()].find((v) => v.abort !== undefined);
    if (busy) {
      busy.panel?.reveal();
      void vscode.window.showWarningMessage(`MechLens: ${vscode.workspace.asRelativePath(busy.file)} is training an SAE already; stop it first.`);
      return undefined;
    }
    const out = x.payload.output;
    const threads = isTrainLensArg(arg) ? (arg as { threads?: number }).threads : undefined;
    const fresh = isTrainLensArg(arg) && (arg as { fresh?: boolean }).fresh === true;
    if (fs.existsSync(path.join(out, 'cfg.json')) && !fresh) {
      const pick = await vscode.window.showWarningMessage(`${out} holds an SAE already. Training replaces it when it finishes (or is stopped).`, { modal: true }, 'Train and Replace');
      if (pick !== 'Train and Replace') return undefined;
    }
    const file = x.file;
    const tracker = new SaeTrainingTracker({ title: x.title, file, payload: x.payload });
    const prev = this.sessions.get(file);
    const sess: Session = { file, x, tracker, panel: prev?.panel, abort: new AbortController() };
    this.sessions.set(file, sess);
    this.panelFor(sess);
    this.lenses.refresh();
    this.s.log.info(`training the SAE of ${file} into ${out}`);
    let lastStatus = tracker.currentStatus;
    try {
      const r = await this.engine().requestWithProgress(
        EngineRequests.saeTrain,
        { config: x.payload, ...(threads !== undefined ? { threads } : {}) },
        (p) => {
          if (!p.saeTraining) return;
          tracker.progress(p.saeTraining);
          const changed = tracker.currentStatus !== lastStatus;
          lastStatus = tracker.currentStatus;
          const st = tracker.state();
          if (changed) sess.panel?.setState(st);
          else sess.panel?.setStateSoon(st);
          this.refreshLensesSoon();
        },
        sess.abort!.signal,
      );
      tracker.finish(r);
      this.s.log.info(`SAE training of ${file} ${r.status} at step ${r.step}/${r.steps}; held-out explained variance ${r.evaluation.explainedVariance.toFixed(4)}, L0 ${r.evaluation.l0.toFixed(2)}; saved ${r.output}`);
    } catch (e) {
      const message = isCancellation(e) ? 'Cancelled before training started; nothing was saved.' : errorMessage(e);
      tracker.fail(message);
      this.s.log.error(`SAE training of ${file} failed: ${message}`);
      if (!isCancellation(e)) void vscode.window.showErrorMessage(`MechLens: training the SAE of ${path.basename(file)} failed: ${message}`);
    } finally {
      sess.abort = undefined;
    }
    const final = tracker.state();
    sess.panel?.setState(final);
    this.lenses.refresh();
    const dir = this.s.runsDir();
    if (dir) {
      try {
        await new RunStore(dir).save(saeTrainingRunRecord({ id: newRunId('training'), createdAt: new Date(), version: this.s.version, payload: x.payload, file, state: final }));
      } catch (e) {
        this.s.log.warn(`could not save the run: ${errorMessage(e)}`);
      }
    }
    return final;
  }

  private panelFor(sess: Session): TrainingPanel {
    const st = sess.tracker.state();
    if (sess.panel && !sess.panel.isDisposed) {
      sess.panel.setState(st);
      sess.panel.reveal();
      return sess.panel;
    }
    const panel = TrainingPanel.create(`train-sae:${sess.file}`, `MechLens: Train SAE — ${sess.x.title}`, st, this.s.context.extensionUri, {
      log: this.s.log,
      defaultFolder: () => vscode.workspace.workspaceFolders?.[0]?.uri,
      onAction: (a) => this.onAction(sess.file, a),
      onDispose: () => {
        if (sess.panel === panel) sess.panel = undefined;
      },
    });
    sess.panel = panel;
    return panel;
  }

  private async onAction(file: string, action: PanelActionParams['action']): Promise<void> {
    if (action === 'training.stop') this.stop({ uri: vscode.Uri.file(file).toString() });
    else if (action === 'training.revealCheckpoint') {
      const out = this.sessions.get(file)?.x.payload.output;
      if (out) await vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(out));
    } else throw new Error(`an SAE training panel has no ${action}`);
  }

  stop(arg: unknown): void {
    const file = isTrainLensArg(arg) ? vscode.Uri.parse(arg.uri).fsPath : (vscode.window.activeTextEditor?.document.uri.fsPath ?? [...this.sessions.values()].find((v) => v.abort)?.file);
    const sess = file !== undefined ? this.sessions.get(file) : undefined;
    if (!sess?.abort) {
      void vscode.window.showInformationMessage('MechLens: no SAE is training.');
      return;
    }
    // The worker finishes its step, saves the SAE at that step, measures it and answers 'stopped'.
    sess.tracker.stopping();
    sess.abort.abort();
    sess.panel?.setState(sess.tracker.state());
    this.lenses.refresh();
  }

  show(arg: unknown): void {
    const f = isTrainLensArg(arg) ? vscode.Uri.parse(arg.uri).fsPath : undefined;
    const sess = f ? this.sessions.get(f) : [...this.sessions.values()].find((v) => v.abort);
    if (sess) this.panelFor(sess);
  }

  snapshot(): { file: string; panelOpen: boolean; state: TrainingState }[] {
    return [...this.sessions.values()].map((x) => ({ file: x.file, panelOpen: !!x.panel && !x.panel.isDisposed, state: (x.panel && !x.panel.isDisposed ? x.panel.state : x.tracker.state()) as TrainingState }));
  }

  dispose(): void {
    for (const x of this.sessions.values()) x.abort?.abort();
    if (this.lensTimer) clearTimeout(this.lensTimer);
    void this.client?.dispose();
    this.lenses.dispose();
  }
}

export function registerSaeTraining(s: SaeTrainingServices): vscode.Disposable {
  const c = new SaeTrainingController(s);
  const reg = (id: string, fn: (...args: unknown[]) => unknown): vscode.Disposable => registerReportingCommand(id, fn, s.log);
  return vscode.Disposable.from(
    c,
    vscode.languages.registerCodeLensProvider(TRAIN_SELECTOR, c.lenses),
    reg('mechlens.trainSae', (arg) => (trustedToRun() ? c.train(arg) : undefined)),
    reg('mechlens.stopSaeTraining', (arg) => c.stop(arg)),
    reg('mechlens.showSaeTraining', (arg) => c.show(arg)),
    reg('mechlens.saeTraining.snapshot', () => c.snapshot()),
  );
}
