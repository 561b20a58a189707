/**
 * Training toy transformers from `"kind": "train"` experiment files, in the editor:
 *
 *  - commands Train, Resume Training, Stop Training, Analyse Trained Model and Show Training
 *    (the CodeLenses of trainingLens.ts pass the file; from the palette they act on the active
 *    editor's file);
 *  - training runs in an engine worker of its own (the worker bundle, dist/engineWorker.js, with
 *    the engine/training/* requests), so a long run neither blocks the extension host nor the
 *    model the other panels use, and a crash of either leaves the other alone. Progress arrives
 *    per step; Stop cancels the request and the worker checkpoints the step it finished;
 *  - the training panel (TrainingState, src/webview/views/training.ts) with Stop / Resume /
 *    Analyse buttons, and the analysis panel (the experiment results view); both end as runs
 *    under .mechlens/runs/ that the Runs view re-opens.
 *
 * `mechlens.training.snapshot` (not in the palette) returns the panels' states for the tests.
 */
import { trustedToRun } from './workspaceRoot.js';
import * as vscode from 'vscode';
import * as path from 'node:path';
import { EngineClient } from '../engine/worker/client.js';
import { EngineRequests, type TrainConfigPayload } from '../protocol/engine.js';
import { newRunId } from '../protocol/runs.js';
import type { ExperimentState, PanelActionParams, PanelState, TrainingState } from '../protocol/webview.js';
import { defaultCheckpointDir, type ResolvedTrainExperiment } from '../engine/experiments/trainParse.js';
import { RunStore } from './runStore.js';
import { errorMessage, isCancellation } from './latest.js';
import { notifyError, registerReportingCommand } from './notify.js';
import { TrainingPanel } from './trainingPanel.js';
import { TRAIN_SELECTOR, TrainCodeLenses, TrainDiagnostics, isTrainLensArg, parseTrainText, type TrainLensStatus } from './trainingLens.js';
import { TrainingTracker, analysisRunRecord, analysisState, describeModel, latestCheckpoint, trainingRunRecord } from './trainingStates.js';

export interface TrainingServices {
  context: vscode.ExtensionContext;
  log: vscode.LogOutputChannel;
  version: string;
  /** <workspace>/.mechlens/runs, or undefined without a workspace (runs are then not saved). */
  runsDir: () => string | undefined;
}

/** Options a command argument may carry besides the file (tests, scripts). */
export interface TrainCommandArg {
  uri: string;
  /** Train from scratch without asking, even when checkpoints exist. */
  fresh?: boolean;
  /** Stop (with a checkpoint) after this many completed steps. */
  untilStep?: number;
  /** onnxruntime threads of the training worker. */
  threads?: number;
}

export interface TrainingSnapshot {
  training: { file: string; title: string; panelOpen: boolean; state: TrainingState }[];
  analyses: { file: string; title: string; state: PanelState }[];
}

interface Session {
  file: string;
  x: ResolvedTrainExperiment;
  checkpointDir: string;
  tracker: TrainingTracker;
  panel: TrainingPanel | undefined;
  abort: AbortController | undefined;
}

/** The training worker: started on first use, restarted after it dies, terminated on dispose. */
class TrainingEngine implements vscode.Disposable {
  private client: EngineClient | undefined;
  constructor(private readonly workerPath: string, private readonly log: vscode.LogOutputChannel) {}

  get(): EngineClient {
    if (this.client?.alive) return this.client;
    const c = new EngineClient({ workerPath: this.workerPath });
    c.onDidExit((reason) => this.log.error(`training worker stopped: ${reason}`));
    this.log.info('training worker started');
    return (this.client = c);
  }

  dispose(): void {
    void this.client?.dispose();
    this.client = undefined;
  }
}

export class TrainingController implements vscode.Disposable {
  private readonly sessions = new Map<string, Session>();
  private readonly analysisPanels = new Map<string, { panel: TrainingPanel; abort: AbortController }>();
  private readonly engine: TrainingEngine;
  readonly diagnostics = new TrainDiagnostics();
  readonly lenses: TrainCodeLenses;
  private lensTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly s: TrainingServices) {
    this.engine = new TrainingEngine(path.join(s.context.extensionPath, 'dist', 'engineWorker.js'), s.log);
    this.lenses = new TrainCodeLenses((f) => this.lensStatus(f), (uri) => vscode.workspace.getWorkspaceFolder(uri)?.uri.fsPath);
  }

  private lensStatus(file: string): TrainLensStatus | undefined {
    const x = this.sessions.get(file);
    if (!x) return undefined;
    const st = x.tracker.currentStatus;
    return { running: x.abort !== undefined, stopping: st === 'stopping', step: x.tracker.step, maxSteps: x.x.config.max_steps };
  }

  /** Lenses show the step: refreshed at most once a second while training. */
  private refreshLensesSoon(): void {
    this.lensTimer ??= setTimeout(() => {
      this.lensTimer = undefined;
      this.lenses.refresh();
    }, 1000);
  }

  private defaultFolder(): vscode.Uri | undefined {
    const d = this.s.runsDir();
    return d ? vscode.Uri.file(d) : vscode.workspace.workspaceFolders?.[0]?.uri;
  }

  /** The train experiment a command acts on, or undefined after telling the user why not. */
  private async target(arg: unknown): Promise<{ file: string; x: ResolvedTrainExperiment; checkpointDir: string } | undefined> {
    let uri: vscode.Uri | undefined;
    if (isTrainLensArg(arg)) uri = vscode.Uri.parse(arg.uri);
    else if (arg instanceof vscode.Uri) uri = arg;
    else uri = vscode.window.activeTextEditor?.document.uri;
    if (!uri) {
      void vscode.window.showWarningMessage('MechLens: open a training experiment ("kind": "train" in an *.experiment.json file) first.');
      return undefined;
    }
    const doc = await vscode.workspace.openTextDocument(uri);
    const r = parseTrainText(doc.getText(), uri.fsPath);
    if (!r) {
      void vscode.window.showWarningMessage(`MechLens: ${vscode.workspace.asRelativePath(uri)} is not a training experiment (it needs "kind": "train").`);
      return undefined;
    }
    this.diagnostics.check(doc);
    const errors = r.diagnostics.filter((d) => d.severity === 'error');
    if (!r.train || errors.length) {
      const first = errors[0];
      void vscode.window.showErrorMessage(`MechLens: ${errors.length} error${errors.length === 1 ? '' : 's'} in ${vscode.workspace.asRelativePath(uri)}${first ? ` — line ${first.range.start.line + 1}, column ${first.range.start.character + 1}: ${first.message}` : ''}`);
      return undefined;
    }
    const x = r.train;
    const ws = vscode.workspace.getWorkspaceFolder(uri)?.uri.fsPath;
    const checkpointDir = x.checkpoints.explicit ? x.checkpoints.dir : defaultCheckpointDir(ws ?? x.dir, x.name);
    return { file: uri.fsPath, x, checkpointDir };
  }

  private runningSession(): Session | undefined {
    return [...this.sessions.values()].find((x) => x.abort !== undefined);
  }

  async train(arg: unknown, resume: boolean): Promise<TrainingState | undefined> {
    const t = await this.target(arg);
    if (!t) return undefined;
    const opts = isTrainLensArg(arg) ? (arg as TrainCommandArg) : undefined;
    const busy = this.runningSession();
    if (busy) {
      if (busy.file === t.file) busy.panel?.reveal();
      void vscode.window.showWarningMessage(`MechLens: ${busy.file === t.file ? 'this experiment is' : `${vscode.workspace.asRelativePath(busy.file)} is`} training already; stop it first.`);
      return undefined;
    }
    const ckpt = latestCheckpoint(t.checkpointDir);
    if (resume && !ckpt) {
      void vscode.window.showWarningMessage(`MechLens: no checkpoint to resume in ${t.checkpointDir}; use Train.`);
      return undefined;
    }
    if (!resume && ckpt && !opts?.fresh) {
      const pick = await vscode.window.showWarningMessage(
        `${t.checkpointDir} has checkpoints of an earlier run (newest at step ${ckpt.step}). Training from scratch replaces them.`,
        { modal: true },
        'Train from Scratch',
        'Resume',
      );
      if (!pick) return undefined;
      resume = pick === 'Resume';
    }
    return this.run(t, resume, opts);
  }

  private panelFor(sess: Session, initial: PanelState): TrainingPanel {
    if (sess.panel && !sess.panel.isDisposed) {
      sess.panel.setState(initial);
      sess.panel.reveal();
      return sess.panel;
    }
    const panel = TrainingPanel.create(`train:${sess.file}`, `MechLens: Train — ${sess.x.title}`, initial, this.s.context.extensionUri, {
      log: this.s.log,
      defaultFolder: () => this.defaultFolder(),
      onAction: (a) => this.onAction(sess.file, a),
      onDispose: () => {
        if (sess.panel === panel) sess.panel = undefined;
      },
    });
    sess.panel = panel;
    return panel;
  }

  private async onAction(file: string, action: PanelActionParams['action']): Promise<void> {
    const arg = { uri: vscode.Uri.file(file).toString() };
    switch (action) {
      case 'training.stop':
        this.stop(arg);
        return;
      case 'training.resume':
        // The button answers when training starts; the panel shows the rest.
        void this.train({ ...arg, fresh: true }, true).catch((e: unknown) => notifyError('MechLens: Resume Training', e, this.s.log));
        return;
      case 'training.analyse':
        void this.analyse(arg).catch((e: unknown) => notifyError('MechLens: Analyse', e, this.s.log));
        return;
      case 'training.revealCheckpoint': {
        const c = this.sessions.get(file)?.tracker.checkpointPath;
        if (c) await vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(c));
        return;
      }
    }
  }

  private async run(t: { file: string; x: ResolvedTrainExperiment; checkpointDir: string }, resume: boolean, opts: TrainCommandArg | undefined): Promise<TrainingState> {
    const { file, x, checkpointDir } = t;
    const tracker = new TrainingTracker({ title: x.title, file, model: describeModel(x.config), checkpointDir, maxSteps: x.config.max_steps });
    const prev = this.sessions.get(file);
    const sess: Session = { file, x, checkpointDir, tracker, panel: prev?.panel, abort: new AbortController() };
    this.sessions.set(file, sess);
    if (resume) tracker.setCheckpoint(latestCheckpoint(checkpointDir)?.path ?? null);
    const panel = this.panelFor(sess, tracker.state());
    const push = (now: boolean) => {
      const st = tracker.state();
      if (now) sess.panel?.setState(st);
      else sess.panel?.setStateSoon(st);
    };
    this.lenses.refresh();
    this.s.log.info(`${resume ? 'resuming' : 'training'} ${file} (checkpoints in ${checkpointDir})`);
    let lastStatus = tracker.currentStatus;
    try {
      const config: TrainConfigPayload = x.config;
      const r = await this.engine.get().requestWithProgress(
        EngineRequests.trainStart,
        { config, saveDir: checkpointDir, resume, ...(opts?.untilStep !== undefined ? { untilStep: opts.untilStep } : {}), ...(opts?.threads !== undefined ? { threads: opts.threads } : {}) },
        (p) => {
          if (!p.training) return;
          tracker.progress(p.training);
          const changed = tracker.currentStatus !== lastStatus;
          lastStatus = tracker.currentStatus;
          push(changed || p.training.kind !== 'step');
          this.refreshLensesSoon();
        },
        sess.abort!.signal,
      );
      tracker.finish(r);
      this.s.log.info(`training of ${file} ${r.status} at step ${r.step}/${r.maxSteps}; checkpoint ${r.checkpoint ?? '(none)'}`);
    } catch (e) {
      // Stop never lands here (the worker answers it with status 'stopped'); this is a failure:
      // NaN loss, an unwritable checkpoint folder, the worker dying.
      const message = isCancellation(e) ? 'Cancelled.' : errorMessage(e);
      tracker.fail(message);
      this.s.log.error(`training of ${file} failed: ${message}`);
      if (!isCancellation(e)) void vscode.window.showErrorMessage(`MechLens: training ${path.basename(file)} failed: ${message}`, 'Show Log').then((c) => c === 'Show Log' && this.s.log.show());
    } finally {
      sess.abort = undefined;
    }
    if (tracker.checkpointPath === null) tracker.setCheckpoint(latestCheckpoint(checkpointDir)?.path ?? null);
    const final = tracker.state();
    if (panel.isDisposed) sess.panel = undefined;
    sess.panel?.setState(final);
    this.lenses.refresh();
    await this.saveRun(() => trainingRunRecord({ id: newRunId('training'), createdAt: new Date(), version: this.s.version, config: x.config, file, state: final }));
    return final;
  }

  stop(arg: unknown): void {
    const file = isTrainLensArg(arg) ? vscode.Uri.parse(arg.uri).fsPath : arg instanceof vscode.Uri ? arg.fsPath : (vscode.window.activeTextEditor?.document.uri.fsPath ?? this.runningSession()?.file);
    const sess = file !== undefined ? this.sessions.get(file) : undefined;
    if (!sess?.abort) {
      void vscode.window.showInformationMessage('MechLens: nothing is training.');
      return;
    }
    // The worker finishes the step it is on, checkpoints, and answers with status 'stopped'.
    sess.tracker.stopping();
    sess.abort.abort();
    sess.panel?.setState(sess.tracker.state());
    this.lenses.refresh();
  }

  async show(arg: unknown): Promise<void> {
    const t = isTrainLensArg(arg) ? vscode.Uri.parse(arg.uri).fsPath : undefined;
    const sess = t ? this.sessions.get(t) : this.runningSession();
    if (sess) this.panelFor(sess, sess.tracker.state());
  }

  async analyse(arg: unknown): Promise<ExperimentState | undefined> {
    const t = await this.target(arg);
    if (!t) return undefined;
    const { file, x, checkpointDir } = t;
    const ckpt = latestCheckpoint(checkpointDir);
    if (!ckpt) {
      void vscode.window.showWarningMessage(`MechLens: no checkpoint in ${checkpointDir} yet: train first.`);
      return undefined;
    }
    if (x.analyses.length === 0) {
      void vscode.window.showWarningMessage(`MechLens: ${path.basename(file)} lists no "analyses" to run.`);
      return undefined;
    }
    const title = `MechLens: Analyse — ${x.title}`;
    this.analysisPanels.get(file)?.abort.abort();
    const abort = new AbortController();
    const loading = (message: string): PanelState => ({ kind: 'loading', title, message });
    let entry = this.analysisPanels.get(file);
    if (entry && !entry.panel.isDisposed) {
      entry.abort = abort;
      entry.panel.setState(loading('Starting…'));
      entry.panel.reveal();
    } else {
      const panel = TrainingPanel.create(`analyse:${file}`, title, loading('Starting…'), this.s.context.extensionUri, {
        log: this.s.log,
        defaultFolder: () => this.defaultFolder(),
        onDispose: () => {
          // Closing the panel cancels its analyses.
          const e = this.analysisPanels.get(file);
          if (e?.panel === panel) {
            e.abort.abort();
            this.analysisPanels.delete(file);
          }
        },
      });
      entry = { panel, abort };
      this.analysisPanels.set(file, entry);
    }
    const panel = entry.panel;
    try {
      const r = await this.engine.get().requestWithProgress(
        EngineRequests.trainAnalyse,
        { checkpoint: ckpt.path, task: x.config.task, analyses: x.analyses.map((a) => a.spec), seed: x.analysisSeed },
        (p) => panel.setStateSoon(loading(`Step ${ckpt.step} checkpoint: ${p.message}${p.fraction !== undefined ? ` (${Math.round(p.fraction * 100)} %)` : ''}`)),
        abort.signal,
      );
      if (abort.signal.aborted) return undefined;
      const state = analysisState({ title: x.title, file, ...(x.spec.description ? { description: x.spec.description } : {}) }, r);
      panel.setState(state);
      await this.saveRun(() => analysisRunRecord({ id: newRunId('training-analysis'), createdAt: new Date(), version: this.s.version, file, result: r, state }));
      return state;
    } catch (e) {
      if (abort.signal.aborted || isCancellation(e)) return undefined;
      panel.setState({ kind: 'error', title, message: errorMessage(e) });
      notifyError('MechLens: Analyse', e, this.s.log);
      return undefined;
    }
  }

  private async saveRun(make: () => Parameters<RunStore['save']>[0]): Promise<void> {
    const dir = this.s.runsDir();
    if (!dir) return;
    try {
      const rec = make();
      await new RunStore(dir).save(rec);
      this.s.log.info(`saved run ${rec.id}`);
    } catch (e) {
      // The panel is what the user asked for; a run that cannot be saved is only logged.
      this.s.log.warn(`could not save the run: ${errorMessage(e)}`);
    }
  }

  snapshot(): TrainingSnapshot {
    return {
      training: [...this.sessions.values()].map((x) => {
        const st = x.panel && !x.panel.isDisposed ? x.panel.state : x.tracker.state();
        return { file: x.file, title: x.x.title, panelOpen: !!x.panel && !x.panel.isDisposed, state: st as TrainingState };
      }),
      analyses: [...this.analysisPanels].filter(([, e]) => !e.panel.isDisposed).map(([file, e]) => ({ file, title: e.panel.title, state: e.panel.state })),
    };
  }

  dispose(): void {
    if (this.lensTimer) clearTimeout(this.lensTimer);
    for (const x of this.sessions.values()) {
      x.abort?.abort();
      x.panel?.dispose();
    }
    for (const e of this.analysisPanels.values()) {
      e.abort.abort();
      e.panel.dispose();
    }
    this.sessions.clear();
    this.analysisPanels.clear();
    this.engine.dispose();
    this.diagnostics.dispose();
    this.lenses.dispose();
  }
}

/** Registers the training feature; the one call extension.ts makes. */
export function registerTraining(s: TrainingServices): vscode.Disposable {
  const c = new TrainingController(s);
  const reg = (id: string, fn: (...args: unknown[]) => unknown): vscode.Disposable => registerReportingCommand(id, fn, s.log);
  return vscode.Disposable.from(
    c,
    vscode.languages.registerCodeLensProvider(TRAIN_SELECTOR, c.lenses),
    reg('mechlens.train', (arg) => (trustedToRun() ? c.train(arg, false) : undefined)),
    reg('mechlens.resumeTraining', (arg) => (trustedToRun() ? c.train(arg, true) : undefined)),
    reg('mechlens.stopTraining', (arg) => c.stop(arg)),
    reg('mechlens.analyseTraining', (arg) => (trustedToRun() ? c.analyse(arg) : undefined)),
    reg('mechlens.showTraining', (arg) => c.show(arg)),
    reg('mechlens.training.snapshot', () => c.snapshot()),
  );
}
