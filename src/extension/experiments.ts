/**
 * Experiment files (*.experiment.json) in the editor: diagnostics from the engine's own parser at
 * their line and column (the JSON schema's completion and validation come from VS Code's JSON
 * support through package.json's jsonValidation), CodeLenses (Run · Run one analysis · Open last
 * result at the top, Run this analysis above each analysis), the commands Run Experiment, Run
 * Analysis… (an analysis of the file, or of the prompt under the cursor in a .prompts file),
 * Open Last Result, Export Report (HTML) and Cancel Experiment, and the results panel.
 *
 * Everything heavy runs in the engine worker (engine/experiment/* requests, handled by
 * experimentsWorker.ts): parsing, the model-aware checks, the run itself (progress, Cancel keeps
 * the partial results) and saving under .mechlens/runs/<id>/. The extension reads the saved run
 * back (run.json holds the panel's ExperimentState), so a result shown now and one re-opened from
 * the Runs view later are the same snapshot.
 *
 * "kind": "train" experiment files belong to the training feature: no lenses or
 * diagnostics from here.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineRequests, type ExperimentDiagnostic, type ExperimentRunResult } from '../protocol/engine.js';
import { RUN_FILE, RUNS_DIR, runRecordProblem, type RunRecord } from '../protocol/runs.js';
import type { ExperimentState } from '../protocol/webview.js';
import { renderReport } from '../engine/experiments/report.js';
import type { EngineHost } from './engineHost.js';
import type { PanelManager } from './panels.js';
import { RunStore } from './runStore.js';
import type { RunsTree } from './treeViews.js';
import type { PromptsDocuments } from './promptsLanguage.js';
import { promptsFromSelection } from './promptTarget.js';
import { Debouncer, LatestOnly, errorMessage, isCancellation } from './latest.js';
import { notifyError, registerReportingCommand } from './notify.js';
import { errorState, loadingState, shortText } from './states.js';
import { experimentRoot, trustedToRun } from './workspaceRoot.js';
import {
  PROMPT_ANALYSES, analysisLabel, errorsMessage, experimentOutline, isExperimentFile, lastRunOf, modelProblem, parseHeads, parseNeuron, promptExperiment,
  promptExperimentPath, whyNot, diagnosticWhere, type ExperimentOutline, type PromptAnalysisChoice,
} from './experimentsModel.js';
import { RUN_RESULTS_FILE, checkTotals, expandRefs, experimentStateOf } from '../protocol/experimentsState.js';

const TYPING_DEBOUNCE_MS = 400;
const PROGRESS_POLL_MS = 300;

export interface ExperimentServices {
  host: EngineHost;
  panels: PanelManager;
  docs: PromptsDocuments;
  runsTree: RunsTree;
  log: vscode.LogOutputChannel;
  extensionUri: vscode.Uri;
  prependBos: () => boolean;
}

/** What the Run commands resolve to (the integration tests read it from executeCommand). */
export interface ExperimentRunOutcome {
  ran: boolean;
  diagnostics: ExperimentDiagnostic[];
  runId?: string;
  runDir?: string;
  cancelled?: boolean;
  checks?: { met: number; total: number };
  /** Why nothing ran, as told to the user. */
  message?: string;
}

/** The argument the lenses pass: the document, and for "Run this analysis" the analysis. */
export interface ExperimentLensArg {
  uri: string;
  index?: number;
}

function uriOf(arg: unknown): vscode.Uri | undefined {
  if (arg instanceof vscode.Uri) return arg;
  if (typeof arg === 'string') return /^[a-z][a-z0-9+.-]+:\/\//i.test(arg) ? vscode.Uri.parse(arg) : vscode.Uri.file(arg);
  if (typeof arg === 'object' && arg !== null && typeof (arg as ExperimentLensArg).uri === 'string') return uriOf((arg as ExperimentLensArg).uri);
  return undefined;
}

const isExperimentDoc = (doc: vscode.TextDocument): boolean => doc.uri.scheme === 'file' && isExperimentFile(doc.uri.fsPath);

/** Where runs of `file` are saved: under the first workspace folder (the Runs view's), else next to the file. */
function runsRoot(file: string): string {
  return vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? path.dirname(file);
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

function readRecord(dir: string): RunRecord {
  const raw = readJson(path.join(dir, RUN_FILE));
  const problem = runRecordProblem(raw);
  if (problem) throw new Error(`${path.join(dir, RUN_FILE)} is not a MechLens run: ${problem}`);
  return raw as RunRecord;
}

function toRange(r: ExperimentDiagnostic['range']): vscode.Range {
  return new vscode.Range(r.start.line, r.start.character, r.end.line, r.end.character);
}

// ---------------------------------------------------------------------------------------------
// Diagnostics

/**
 * Problems of open experiment files: the engine's static checks at once, then (without
 * downloading anything) the checks that need the experiment's model and tokenizer. Problems found
 * in a .prompts file the experiment reads are shown in that file too, and summarised at the
 * experiment's "prompts" with a link.
 */
const codeOf = (d: vscode.Diagnostic): string => (typeof d.code === 'object' ? String(d.code.value) : String(d.code ?? ''));

export class ExperimentDiagnostics implements vscode.Disposable {
  readonly collection = vscode.languages.createDiagnosticCollection('mechlens-experiments');
  /** experiment uri -> (file uri -> diagnostics that experiment puts there). */
  private readonly byExperiment = new Map<string, Map<string, vscode.Diagnostic[]>>();
  private readonly pending = new Map<string, { debouncer: Debouncer; latest: LatestOnly }>();
  private readonly subscriptions: vscode.Disposable[] = [];
  private readonly docsUri: vscode.Uri;

  constructor(private readonly s: ExperimentServices) {
    this.docsUri = vscode.Uri.joinPath(s.extensionUri, 'docs', 'experiments.md');
    this.subscriptions.push(
      this.collection,
      vscode.workspace.onDidOpenTextDocument((d) => this.schedule(d, 0)),
      vscode.workspace.onDidChangeTextDocument((e) => this.schedule(e.document, TYPING_DEBOUNCE_MS)),
      vscode.workspace.onDidCloseTextDocument((d) => this.clear(d.uri)),
      // An experiment reads its prompts file from disk: a saved .prompts file can change its problems.
      vscode.workspace.onDidSaveTextDocument((d) => {
        if (d.uri.fsPath.endsWith('.prompts')) this.recheckAll();
      }),
      vscode.workspace.onDidChangeConfiguration((e) => e.affectsConfiguration('mechlens.allowDownload') && this.recheckAll()),
      // VS Code's JSON validator (the experiment schema) reports some of the same problems: when
      // its diagnostics for a file change, ours are re-filtered so that each problem shows once.
      vscode.languages.onDidChangeDiagnostics((e) => {
        for (const uri of e.uris) if ([...this.byExperiment.values()].some((m) => m.has(uri.toString()))) this.flush(uri.toString(), false);
      }),
      // A restarted worker has lost its models; a newly loaded settings model may serve experiments.
      s.host.onDidChangeState((st) => (st.kind === 'ready' || st.kind === 'idle') && this.recheckAll()),
    );
    this.recheckAll();
  }

  recheckAll(): void {
    for (const d of vscode.workspace.textDocuments) this.schedule(d, 0);
  }

  private schedule(doc: vscode.TextDocument, delay: number): void {
    if (!isExperimentDoc(doc)) return;
    const key = doc.uri.toString();
    let p = this.pending.get(key);
    if (!p) {
      const latest = new LatestOnly();
      p = { latest, debouncer: new Debouncer(TYPING_DEBOUNCE_MS, () => void this.check(doc, latest)) };
      this.pending.set(key, p);
    }
    if (delay === 0) {
      p.debouncer.dispose();
      void this.check(doc, p.latest);
    } else {
      p.debouncer.trigger();
    }
  }

  /** Checks `doc` now; resolves with the diagnostics published (tests and Run use it). */
  async check(doc: vscode.TextDocument, latest: LatestOnly = this.pending.get(doc.uri.toString())?.latest ?? new LatestOnly()): Promise<ExperimentDiagnostic[] | undefined> {
    const signal = latest.next();
    if (doc.isClosed) return undefined;
    const text = doc.getText();
    const version = doc.version;
    const outline = experimentOutline(text);
    if (outline.kind === 'train') {
      this.publish(doc.uri, [], outline);
      return [];
    }
    const base = { file: doc.uri.fsPath, text, root: experimentRoot(doc.uri.fsPath), allowDownload: this.s.host.settings.allowDownload };
    const stale = () => !latest.isLatest(signal) || doc.isClosed || doc.version !== version;
    try {
      const fast = await this.s.host.request(EngineRequests.experimentCheck, { ...base, withModel: false }, signal);
      if (stale()) return undefined;
      this.publish(doc.uri, fast.diagnostics, outline);
      // The model's checks run even when the file has other errors, so that every problem shows
      // at once (fix one, and no new one appears that was there all along).
      if (!fast.model) return fast.diagnostics;
      const full = await this.s.host.request(EngineRequests.experimentCheck, { ...base, withModel: true }, signal);
      if (stale()) return undefined;
      this.publish(doc.uri, full.diagnostics, outline);
      return full.diagnostics;
    } catch (e) {
      if (!isCancellation(e)) this.s.log.warn(`checking ${doc.uri.fsPath} failed: ${errorMessage(e)}`);
      return undefined;
    }
  }

  private toDiagnostic(d: ExperimentDiagnostic, message = d.message): vscode.Diagnostic {
    const v = new vscode.Diagnostic(toRange(d.range), message, d.severity === 'error' ? vscode.DiagnosticSeverity.Error : vscode.DiagnosticSeverity.Warning);
    v.source = 'MechLens';
    // The code links to docs/experiments.md, which explains every check.
    v.code = { value: d.code, target: this.docsUri };
    return v;
  }

  /** Replaces what experiment `uri` reports (in itself and in the files it reads). */
  publish(uri: vscode.Uri, diagnostics: readonly ExperimentDiagnostic[], outline: ExperimentOutline): void {
    const own = uri.fsPath;
    const name = path.basename(own);
    const next = new Map<string, vscode.Diagnostic[]>();
    const add = (target: vscode.Uri, d: vscode.Diagnostic) => next.set(target.toString(), [...(next.get(target.toString()) ?? []), d]);
    for (const d of diagnostics) {
      if (path.resolve(d.file) === path.resolve(own)) {
        add(uri, this.toDiagnostic(d));
        continue;
      }
      const other = vscode.Uri.file(d.file);
      // A prompts file's own syntax problems are already shown there by the .prompts support;
      // the rest (token counts for this experiment's model) are this experiment's to show.
      if (!d.code.startsWith('prompts-')) add(other, this.toDiagnostic(d, `${d.message} (in ${name})`));
      const summary = this.toDiagnostic({ ...d, file: own, range: outline.prompts }, `${diagnosticWhere(d)}: ${d.message}`);
      summary.relatedInformation = [new vscode.DiagnosticRelatedInformation(new vscode.Location(other, toRange(d.range)), d.message)];
      add(uri, summary);
    }
    const old = this.byExperiment.get(uri.toString());
    this.byExperiment.set(uri.toString(), next);
    const touched = new Set([...(old?.keys() ?? []), ...next.keys(), uri.toString()]);
    for (const t of touched) this.flush(t);
  }

  /** What other sources (VS Code's JSON validator) last reported for a file, as a signature. */
  private readonly foreignSeen = new Map<string, string>();

  /**
   * Sets a file's diagnostics to the union of every experiment's, leaving out a schema problem
   * that another source (VS Code's JSON validator, from the same schema) already reports at the
   * same place: the Problems view lists each problem once.
   */
  private flush(target: string, force = true): void {
    const uri = vscode.Uri.parse(target);
    const foreign = vscode.languages.getDiagnostics(uri).filter((d) => d.source !== 'MechLens');
    const signature = foreign.map((d) => `${d.range.start.line}:${d.range.start.character}-${d.range.end.line}:${d.range.end.character}`).join(',');
    // Our own collection changing also fires onDidChangeDiagnostics: nothing to redo then.
    if (!force && this.foreignSeen.get(target) === signature) return;
    this.foreignSeen.set(target, signature);
    const all = [...this.byExperiment.values()].flatMap((m) => m.get(target) ?? []);
    const shown = all.filter((d) => !(codeOf(d) === 'schema' && foreign.some((f) => f.range.intersection(d.range) !== undefined && f.range.start.line === d.range.start.line)));
    this.collection.set(uri, shown);
  }

  private clear(uri: vscode.Uri): void {
    const key = uri.toString();
    const p = this.pending.get(key);
    p?.debouncer.dispose();
    p?.latest.cancel();
    this.pending.delete(key);
    const old = this.byExperiment.get(key);
    if (!old) return;
    this.byExperiment.delete(key);
    for (const t of new Set([...old.keys(), key])) this.flush(t);
  }

  dispose(): void {
    for (const p of this.pending.values()) {
      p.debouncer.dispose();
      p.latest.cancel();
    }
    this.pending.clear();
    for (const d of this.subscriptions) d.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// CodeLens

export class ExperimentCodeLenses implements vscode.CodeLensProvider, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<void>();
  readonly onDidChangeCodeLenses = this.emitter.event;

  provideCodeLenses(doc: vscode.TextDocument): vscode.CodeLens[] {
    if (!isExperimentFile(doc.uri.fsPath)) return [];
    const o = experimentOutline(doc.getText());
    if (o.kind === 'train' || o.kind === 'train_sae') return [];
    const uri = doc.uri.toString();
    const top = new vscode.Range(o.top.start.line, o.top.start.character, o.top.start.line, o.top.start.character);
    const lenses = [
      new vscode.CodeLens(top, { title: 'Run', command: 'mechlens.runExperiment', arguments: [{ uri } satisfies ExperimentLensArg], tooltip: 'Run every analysis of this experiment (results under .mechlens/runs/)' }),
      new vscode.CodeLens(top, { title: 'Run one analysis', command: 'mechlens.runAnalysis', arguments: [{ uri } satisfies ExperimentLensArg], tooltip: 'Pick one analysis of this file and run it alone' }),
      new vscode.CodeLens(top, { title: 'Open last result', command: 'mechlens.openLastResult', arguments: [{ uri } satisfies ExperimentLensArg], tooltip: 'Show the newest saved run of this file without recomputing' }),
    ];
    for (const a of o.analyses) {
      const r = new vscode.Range(a.range.start.line, a.range.start.character, a.range.start.line, a.range.start.character);
      lenses.push(new vscode.CodeLens(r, { title: 'Run this analysis', command: 'mechlens.runAnalysis', arguments: [{ uri, index: a.index } satisfies ExperimentLensArg], tooltip: `Run analysis #${a.index}${a.kind ? ` (${a.kind})` : ''} alone` }));
    }
    return lenses;
  }

  dispose(): void {
    this.emitter.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Running

interface RunRequest {
  /** The experiment's path (a real file, or where an in-memory experiment of a .prompts file lives). */
  file: string;
  text: string;
  only?: number[];
  /** Shown in the panel title and messages. */
  title: string;
  panelKey: string;
  /** A real file: its diagnostics are updated with the run's. */
  doc?: vscode.TextDocument;
  /** An incomplete run folder to finish (only its missing analyses run). */
  resume?: string;
}

export class ExperimentRunner implements vscode.Disposable {
  private readonly running = new Map<string, { abort: AbortController; title: string; message: string }>();
  private readonly status = vscode.window.createStatusBarItem('mechlens.experiment', vscode.StatusBarAlignment.Left, 40);
  private seq = 0;

  constructor(private readonly s: ExperimentServices, private readonly diagnostics: ExperimentDiagnostics) {
    this.status.name = 'MechLens experiment';
    this.status.command = 'mechlens.cancelExperiment';
  }

  get isRunning(): boolean {
    return this.running.size > 0;
  }

  private showStatus(): void {
    const first = [...this.running.values()][0];
    if (!first) {
      this.status.hide();
      void vscode.commands.executeCommand('setContext', 'mechlens.experimentRunning', false);
      return;
    }
    this.status.text = `$(loading~spin) ${shortText(first.title, 32)}: ${shortText(first.message, 48)}${this.running.size > 1 ? ` (+${this.running.size - 1})` : ''}`;
    this.status.tooltip = 'MechLens is running an experiment. Click to cancel it (the results computed so far are kept).';
    this.status.show();
    void vscode.commands.executeCommand('setContext', 'mechlens.experimentRunning', true);
  }

  /** Cancels every running experiment (each saves what it has computed). */
  cancelAll(): number {
    const n = this.running.size;
    for (const r of this.running.values()) r.abort.abort();
    return n;
  }

  async run(req: RunRequest): Promise<ExperimentRunOutcome> {
    const s = this.s;
    if (this.running.has(req.panelKey)) {
      const message = `${req.title} is already running`;
      void vscode.window.showInformationMessage(`MechLens: ${message}.`, 'Cancel It').then((c) => c === 'Cancel It' && this.running.get(req.panelKey)?.abort.abort());
      return { ran: false, diagnostics: [], message };
    }
    const abort = new AbortController();
    const entry = { abort, title: req.title, message: 'starting' };
    this.running.set(req.panelKey, entry);
    this.showStatus();
    const panelTitle = `MechLens: ${shortText(req.title, 60)}`;
    const panel = s.panels.open(req.panelKey, panelTitle, loadingState(req.title, 'Starting…'));
    panel.setState(loadingState(req.title, 'Starting…'));
    const token = `run-${process.pid}-${++this.seq}-${Date.now()}`;
    const workspace = runsRoot(req.file);
    let result: ExperimentRunResult;
    try {
      result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `MechLens: ${shortText(req.title, 50)}`, cancellable: true },
        async (progress, cancel) => {
          const sub = cancel.onCancellationRequested(() => abort.abort());
          let shown = 0;
          let last = '';
          const poll = setInterval(() => {
            void s.host.request(EngineRequests.experimentProgress, { token }).then(
              (p) => {
                if (!p || p.finished) return;
                const pct = p.fraction !== undefined ? Math.round(p.fraction * 100) : undefined;
                const inc = pct !== undefined && pct > shown ? pct - shown : undefined;
                if (inc !== undefined) shown += inc;
                if (p.message === last && inc === undefined) return;
                last = p.message;
                entry.message = p.message;
                progress.report({ message: p.message, ...(inc !== undefined ? { increment: inc } : {}) });
                panel.setState(loadingState(req.title, `${p.message}${pct !== undefined ? ` (${pct}%)` : ''}. Cancel in the notification or the status bar keeps what is done.`));
                this.showStatus();
              },
              () => undefined,
            );
          }, PROGRESS_POLL_MS);
          try {
            return await s.host.request(
              EngineRequests.experimentRun,
              { file: req.file, text: req.text, workspace, root: experimentRoot(req.file), allowDownload: s.host.settings.allowDownload, token, memoryBudgetMB: vscode.workspace.getConfiguration('mechlens').get<number>('memoryBudgetMB') ?? 0, ...(req.only ? { only: req.only } : {}), ...(req.resume ? { resume: req.resume } : {}) },
              abort.signal,
            );
          } finally {
            clearInterval(poll);
            sub.dispose();
          }
        },
      );
    } catch (e) {
      this.running.delete(req.panelKey);
      this.showStatus();
      if (isCancellation(e)) {
        // Cancelled before anything ran (while the model loaded): nothing to keep.
        s.panels.open(req.panelKey, panelTitle, errorState(req.title, 'Cancelled before any analysis ran.')).setState(errorState(req.title, 'Cancelled before any analysis ran.'));
        return { ran: false, diagnostics: [], cancelled: true, message: 'cancelled' };
      }
      s.panels.open(req.panelKey, panelTitle, errorState(req.title, errorMessage(e))).setState(errorState(req.title, errorMessage(e)));
      notifyError(`MechLens: ${req.title}`, e, s.log);
      return { ran: false, diagnostics: [], message: errorMessage(e) };
    }
    this.running.delete(req.panelKey);
    this.showStatus();
    if (req.doc && !req.doc.isClosed) this.diagnostics.publish(req.doc.uri, result.diagnostics, experimentOutline(req.text));
    if (!result.run) return this.notRun(req, panelTitle, result.diagnostics, workspace);

    const run = result.run;
    let state: ExperimentState | null;
    try {
      state = experimentStateOf(readRecord(run.dir), run.dir);
      if (!state) throw new Error(`${run.dir} holds no experiment results`);
    } catch (e) {
      notifyError(`MechLens: ${req.title}`, e, s.log);
      return { ran: true, diagnostics: result.diagnostics, runId: run.id, runDir: run.dir, cancelled: run.cancelled, checks: run.checks, message: errorMessage(e) };
    }
    // The panel may have been closed meanwhile: the result opens it again.
    const p = s.panels.open(req.panelKey, panelTitle, state);
    p.setState(state);
    p.runId = run.id;
    s.runsTree.refresh();
    s.log.info(`experiment ${req.file}: run ${run.id} in ${(run.elapsedMs / 1000).toFixed(1)} s${run.cancelled ? ' (cancelled)' : ''}; checks ${run.checks.met}/${run.checks.total}`);
    const rel = vscode.workspace.asRelativePath(run.dir);
    if (run.cancelled) {
      void vscode.window.showInformationMessage(`MechLens: ${req.title} was cancelled; the ${state.sections.length} analyses done are saved in ${rel}.`);
    } else if (run.checks.total > run.checks.met) {
      void vscode.window.showWarningMessage(`MechLens: ${req.title}: ${run.checks.met} of ${run.checks.total} expectations met (see the ✗ rows in the panel).`);
    } else {
      vscode.window.setStatusBarMessage(`$(check) MechLens: ${shortText(req.title, 40)} done in ${(run.elapsedMs / 1000).toFixed(1)} s${run.checks.total ? `, ${run.checks.total} expectations met` : ''}`, 8000);
    }
    return { ran: true, diagnostics: result.diagnostics, runId: run.id, runDir: run.dir, cancelled: run.cancelled, checks: checkTotals(state) };
  }

  /** Nothing ran: the errors, in the panel and a notification. */
  private notRun(req: RunRequest, panelTitle: string, diagnostics: ExperimentDiagnostic[], base: string): ExperimentRunOutcome {
    const model = modelProblem(diagnostics);
    const name = req.doc ? path.basename(req.file) : req.title;
    const message = model ? `${name} was not run: ${model.message}` : errorsMessage(name, diagnostics, base);
    const lines = diagnostics.filter((d) => d.severity === 'error').map((d) => `${req.doc ? `${diagnosticWhere(d, base)}: ` : ''}${d.message}`);
    const st = errorState(req.title, `Nothing was run.\n\n${lines.join('\n')}`);
    this.s.panels.open(req.panelKey, panelTitle, st).setState(st);
    const actions = req.doc ? ['Show Problems'] : [];
    void vscode.window.showErrorMessage(`MechLens: ${message}`, ...actions).then((c) => c === 'Show Problems' && vscode.commands.executeCommand('workbench.actions.view.problems'));
    return { ran: false, diagnostics, message };
  }

  dispose(): void {
    this.cancelAll();
    this.status.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Commands

/** The experiment file a command acts on: its argument, the active editor, or one picked. */
async function experimentDoc(arg: unknown): Promise<vscode.TextDocument | undefined> {
  const uri = uriOf(arg) ?? (vscode.window.activeTextEditor && isExperimentFile(vscode.window.activeTextEditor.document.uri.fsPath) ? vscode.window.activeTextEditor.document.uri : undefined);
  if (uri) return vscode.workspace.openTextDocument(uri);
  const files = (await vscode.workspace.findFiles('**/*.experiment.json', '**/node_modules/**', 200)).sort((a, b) => a.fsPath.localeCompare(b.fsPath));
  if (files.length === 0) {
    void vscode.window.showWarningMessage('MechLens: open an *.experiment.json file (docs/experiments.md describes the format; samples/ has examples).');
    return undefined;
  }
  const pick = await vscode.window.showQuickPick(files.map((f) => ({ label: path.basename(f.fsPath), description: vscode.workspace.asRelativePath(f), uri: f })), { title: 'MechLens: which experiment?' });
  return pick ? vscode.workspace.openTextDocument(pick.uri) : undefined;
}

function titleOf(doc: vscode.TextDocument, o: ExperimentOutline): string {
  return o.title ?? path.basename(doc.uri.fsPath).replace(/\.experiment\.json$/, '');
}

/**
 * Finishes an incomplete run (the Runs view's Resume): the worker reads the experiment from the
 * run folder's copy and computes only the analyses the killed run had not saved.
 */
export async function resumeRunFolder(runner: ExperimentRunner, dir: string, experiment: string): Promise<ExperimentRunOutcome> {
  const title = `${path.basename(experiment).replace(/\.experiment\.json$/, '')} (resumed)`;
  return runner.run({ file: experiment, text: '', title, panelKey: `experiment:${experiment}`, resume: dir });
}

async function runFile(runner: ExperimentRunner, doc: vscode.TextDocument, only?: number[]): Promise<ExperimentRunOutcome> {
  const text = doc.getText();
  const o = experimentOutline(text);
  if (o.kind === 'train' || o.kind === 'train_sae') {
    const message = o.kind === 'train' ? 'this is a training experiment ("kind": "train"): run it with the training commands' : 'this is an SAE training experiment ("kind": "train_sae"): run it with MechLens: Train SAE';
    void vscode.window.showInformationMessage(`MechLens: ${message}.`);
    return { ran: false, diagnostics: [], message };
  }
  const title = titleOf(doc, o);
  const one = only?.length === 1 ? o.analyses.find((a) => a.index === only[0]) : undefined;
  return runner.run({
    file: doc.uri.fsPath,
    text,
    title: one ? `${title} — #${one.index} ${one.kind ?? ''}`.trim() : title,
    panelKey: `experiment:${doc.uri.fsPath}${only ? `#${only.join(',')}` : ''}`,
    doc,
    ...(only ? { only } : {}),
  });
}

/** "Run Analysis…" in an experiment file: the analysis of a lens, or one picked. */
async function runOneOfFile(runner: ExperimentRunner, doc: vscode.TextDocument, index: number | undefined): Promise<ExperimentRunOutcome | undefined> {
  if (index !== undefined) return runFile(runner, doc, [index]);
  const o = experimentOutline(doc.getText());
  if (o.syntaxError || o.analyses.length === 0) return runFile(runner, doc); // Run reports the problem
  let specs: Record<string, unknown>[] = [];
  try {
    const v = JSON.parse(doc.getText()) as { analyses?: unknown };
    if (Array.isArray(v.analyses)) specs = v.analyses as Record<string, unknown>[];
  } catch { /* outline parsed it: cannot happen */ }
  const pick = await vscode.window.showQuickPick(
    o.analyses.map((a) => ({ ...analysisLabel(a, specs[a.index]), index: a.index })),
    { title: `MechLens: run one analysis of ${path.basename(doc.uri.fsPath)}`, matchOnDescription: true },
  );
  return pick ? runFile(runner, doc, [pick.index]) : undefined;
}

/** "Run Analysis…" on a .prompts line or selection (or selected text elsewhere). */
async function runOnPrompt(runner: ExperimentRunner, s: ExperimentServices, editor: vscode.TextEditor): Promise<ExperimentRunOutcome | undefined> {
  const doc = editor.document;
  const target = promptsFromSelection({ languageId: doc.languageId, text: doc.getText() }, editor.selection, s.docs.parsedIfPrompts(doc));
  if (!target.ok) {
    void vscode.window.showWarningMessage(`MechLens: ${target.message}`);
    return undefined;
  }
  const prompts = target.prompts;
  const items = PROMPT_ANALYSES.map((c) => {
    const why = whyNot(c, prompts);
    return { label: `${why ? '$(circle-slash) ' : ''}${c.label}`, detail: c.detail, description: why ?? '', choice: c, why };
  });
  const pick = await vscode.window.showQuickPick(items, { title: `MechLens: analyse ${prompts.length === 1 ? `"${shortText(prompts[0]!.prompt, 40)}"` : `${prompts.length} prompts`}`, matchOnDetail: true });
  if (!pick) return undefined;
  if (pick.why) {
    void vscode.window.showWarningMessage(`MechLens: ${pick.choice.label} ${pick.why}.`);
    return undefined;
  }
  const input = await askInput(pick.choice, prompts);
  if (input === null) return undefined;
  const st = s.host.settings;
  // The model's shape decides which sweeps exist (no mlp_out in an attention-only model); a model
  // that fails to load is reported by the run itself.
  const info = s.host.model ?? (await s.host.ensureModel({ interactive: true }).catch(() => undefined));
  let json: Record<string, unknown>;
  try {
    json = promptExperiment(pick.choice, prompts, { name: st.resolvedModel, processing: st.processing, device: st.device, offline: !st.allowDownload }, {
      prependBos: s.prependBos(),
      ...(info?.cfg.attn_only ? { attnOnly: true } : {}),
      ...(input !== undefined ? { input } : {}),
      source: `${vscode.workspace.asRelativePath(doc.uri)}:${prompts[0]!.line + 1}`,
    });
  } catch (e) {
    void vscode.window.showWarningMessage(`MechLens: ${errorMessage(e)}`);
    return undefined;
  }
  const where = doc.uri.scheme === 'file' ? doc.uri.fsPath : path.join(vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? process.cwd(), 'untitled.prompts');
  return runner.run({ file: promptExperimentPath(where), text: JSON.stringify(json, null, 2), title: String(json['title']), panelKey: `prompt-analysis:${pick.choice.id}:${JSON.stringify(prompts.map((p) => [p.prompt, p.corrupted, p.answer, p.wrong]))}` });
}

/** The head / neuron / subject a choice needs; undefined: none needed; null: the user cancelled. */
async function askInput(c: PromptAnalysisChoice, prompts: readonly { prompt: string; answer?: string; wrong?: string }[]): Promise<string | undefined | null> {
  const answers = prompts.every((p) => p.answer !== undefined && p.wrong !== undefined);
  const kind = c.input ?? (c.id === 'attention' && !answers ? 'heads' : undefined);
  if (!kind) return undefined;
  const ask = (prompt: string, value: string, check: (v: string) => string | undefined) => vscode.window.showInputBox({ title: `MechLens: ${c.label}`, prompt, value, validateInput: check });
  let v: string | undefined;
  if (kind === 'head' || kind === 'heads') {
    v = await ask(kind === 'head' ? 'Which head? L{layer}H{head}, e.g. L1H0 (several: comma-separated)' : 'Which heads? e.g. L0H1, L1H3 (the prompt has no answers to pick the top-DLA heads by)', 'L0H0', (x) => {
      const r = parseHeads(x);
      return Array.isArray(r) ? undefined : r.error;
    });
  } else if (kind === 'neuron') {
    v = await ask('Which neuron? L{layer}N{neuron}, e.g. L0N7', 'L0N0', (x) => {
      const r = parseNeuron(x);
      return 'error' in r ? r.error : undefined;
    });
  } else {
    const firstWord = /\S+/.exec(prompts[0]?.prompt ?? '')?.[0] ?? '';
    v = await ask('The subject whose tokens are noised: words of the prompt, as written in it', firstWord, (x) => (x.trim() === '' ? 'name words of the prompt' : prompts.every((p) => p.prompt.includes(x)) ? undefined : 'not found in the prompt'));
  }
  return v === undefined ? null : v;
}

async function openLastResult(s: ExperimentServices, arg: unknown): Promise<string | undefined> {
  const doc = await experimentDoc(arg);
  if (!doc) return undefined;
  const store = new RunStore(path.join(runsRoot(doc.uri.fsPath), ...RUNS_DIR.split('/')));
  const last = lastRunOf(await store.list(), doc.uri.fsPath);
  if (!last?.record) {
    const c = await vscode.window.showInformationMessage(`MechLens: ${path.basename(doc.uri.fsPath)} has no saved run yet.`, 'Run');
    if (c === 'Run') await vscode.commands.executeCommand('mechlens.runExperiment', { uri: doc.uri.toString() });
    return undefined;
  }
  const dir = path.dirname(last.file);
  const st = experimentStateOf(last.record, dir);
  if (!st) throw new Error(`${last.file} holds no experiment results`);
  // Keyed like the Runs view's panels, so re-opening the same run from either place reuses one panel.
  const p = s.panels.open(`run:${last.record.id}`, last.record.title, st);
  p.setState(st);
  p.runId = last.record.id;
  return last.record.id;
}

/** The run a report is of: `{ runDir }`, the last run of an experiment file, or one picked. */
async function reportRun(arg: unknown): Promise<string | undefined> {
  const a = (typeof arg === 'object' && arg !== null ? arg : {}) as { runDir?: unknown };
  if (typeof a.runDir === 'string') return a.runDir;
  const uri = uriOf(arg) ?? (vscode.window.activeTextEditor && isExperimentFile(vscode.window.activeTextEditor.document.uri.fsPath) ? vscode.window.activeTextEditor.document.uri : undefined);
  const root = runsRoot(uri?.fsPath ?? '.');
  const runs = (await new RunStore(path.join(root, ...RUNS_DIR.split('/'))).list()).filter((r) => r.record?.kind === 'experiment');
  if (uri) {
    const last = lastRunOf(runs, uri.fsPath);
    if (last) return path.dirname(last.file);
    void vscode.window.showInformationMessage(`MechLens: ${path.basename(uri.fsPath)} has no saved run to report; run it first.`);
    return undefined;
  }
  if (runs.length === 0) {
    void vscode.window.showInformationMessage('MechLens: there are no experiment runs to report yet.');
    return undefined;
  }
  const pick = await vscode.window.showQuickPick(runs.map((r) => ({ label: r.record!.title, description: `${r.record!.model.name} · ${new Date(r.record!.createdAt).toLocaleString()}`, dir: path.dirname(r.file) })), { title: 'MechLens: report of which run?' });
  return pick?.dir;
}

async function exportReport(s: ExperimentServices, arg: unknown): Promise<string | undefined> {
  const dir = await reportRun(arg);
  if (!dir) return undefined;
  const rec = readRecord(dir);
  // run.json may reference large heatmaps kept in results.json: the report draws them all.
  const full = rec.state.kind === 'experiment' ? { ...rec, state: expandRefs(rec.state, readJson(path.join(dir, RUN_RESULTS_FILE))) } : rec;
  const html = renderReport(full);
  const wanted = (typeof arg === 'object' && arg !== null ? (arg as { out?: unknown }).out : undefined);
  let out: string | undefined = typeof wanted === 'string' ? wanted : undefined;
  if (!out) {
    const target = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.file(path.join(dir, 'report.html')), filters: { HTML: ['html'] }, title: `Save the report of ${rec.title}` });
    out = target?.fsPath;
  }
  if (!out) return undefined;
  const tmp = `${out}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, html);
  fs.renameSync(tmp, out);
  s.log.info(`report of ${rec.id} written to ${out} (${html.length} bytes)`);
  if (typeof wanted !== 'string') {
    void vscode.window.showInformationMessage(`MechLens: saved ${vscode.workspace.asRelativePath(out)}.`, 'Open in Browser').then((c) => c === 'Open in Browser' && vscode.env.openExternal(vscode.Uri.file(out!)));
  }
  return out;
}

/**
 * Registers the experiments feature: diagnostics, CodeLenses, commands and the runner. Returns
 * every disposable (extension.ts adds them to context.subscriptions).
 */
export function registerExperiments(s: ExperimentServices): vscode.Disposable[] {
  const diagnostics = new ExperimentDiagnostics(s);
  const lenses = new ExperimentCodeLenses();
  const runner = new ExperimentRunner(s, diagnostics);
  const reg = (id: string, fn: (...args: unknown[]) => unknown): vscode.Disposable => registerReportingCommand(id, fn, s.log);
  const selector: vscode.DocumentSelector = [{ scheme: 'file', pattern: '**/*.experiment.json' }];
  return [
    diagnostics,
    lenses,
    runner,
    vscode.languages.registerCodeLensProvider(selector, lenses),
    reg('mechlens.runExperiment', async (arg) => {
      if (!trustedToRun()) return undefined;
      const doc = await experimentDoc(arg);
      return doc ? runFile(runner, doc) : undefined;
    }),
    reg('mechlens.runAnalysis', async (arg) => {
      if (!trustedToRun()) return undefined;
      const index = typeof arg === 'object' && arg !== null && typeof (arg as ExperimentLensArg).index === 'number' ? (arg as ExperimentLensArg).index : undefined;
      const editor = vscode.window.activeTextEditor;
      // From a lens or an experiment editor: that file's analyses; elsewhere: the prompt at the cursor.
      if (uriOf(arg) || (editor && isExperimentFile(editor.document.uri.fsPath))) {
        const doc = await experimentDoc(arg);
        return doc ? runOneOfFile(runner, doc, index) : undefined;
      }
      if (!editor) {
        void vscode.window.showWarningMessage('MechLens: open an experiment file, or put the cursor on a prompt of a .prompts file.');
        return undefined;
      }
      return runOnPrompt(runner, s, editor);
    }),
    reg('mechlens.openLastResult', (arg) => openLastResult(s, arg)),
    reg('mechlens.resumeRun', async (arg) => {
      if (!trustedToRun()) return undefined;
      const id = typeof arg === 'string' ? arg : typeof (arg as { id?: unknown } | undefined)?.id === 'string' ? String((arg as { id: string }).id).replace(/^run:/, '') : undefined;
      const runs = vscode.workspace.workspaceFolders?.[0] ? path.join(vscode.workspace.workspaceFolders[0].uri.fsPath, RUNS_DIR) : undefined;
      if (!id || !runs) return undefined;
      const dir = path.join(runs, id);
      let experiment: string;
      try {
        experiment = String((JSON.parse(fs.readFileSync(path.join(dir, 'progress.json'), 'utf8')) as { experiment?: unknown }).experiment ?? '');
      } catch {
        void vscode.window.showErrorMessage(`MechLens: ${id} is not an incomplete run (no progress.json): run the experiment again instead.`);
        return undefined;
      }
      return resumeRunFolder(runner, dir, experiment);
    }),
    reg('mechlens.exportReport', (arg) => exportReport(s, arg)),
    reg('mechlens.cancelExperiment', () => {
      if (runner.cancelAll() === 0) void vscode.window.showInformationMessage('MechLens: no experiment is running.');
    }),
  ];
}
