/**
 * The editor side of `"kind": "train"` experiment files: diagnostics from the engine's parser
 * (parse.ts -> trainParse.ts, the same line-accurate checks as analysis experiments), and the
 * CodeLens row at the file's "kind": Train · Resume (when a checkpoint exists) · Analyse, or
 * while training: the step · Stop. Analysis experiment files are the experiments feature's
 * (experiments.ts); neither feature shows anything on the other's files.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import type { Diagnostic as EngineDiagnostic } from '../engine/experiments/parse.js';
import { parseJsonWithPositions, LineIndex, type JsonNode } from '../engine/experiments/json.js';
import { confinedReader } from '../engine/experiments/files.js';
import { experimentRoot } from './workspaceRoot.js';
import { defaultCheckpointDir, experimentName, isTrainRoot, resolveTrainExperiment, type ResolvedTrainExperiment } from '../engine/experiments/trainParse.js';
import { Debouncer } from './latest.js';
import { latestCheckpoint } from './trainingStates.js';

export const TRAIN_SELECTOR: vscode.DocumentSelector = [{ scheme: 'file', pattern: '**/*.experiment.json' }];

/** What a training lens passes to its command. */
export interface TrainLensArg {
  uri: string;
}

export function isTrainLensArg(x: unknown): x is TrainLensArg {
  return typeof x === 'object' && x !== null && typeof (x as { uri?: unknown }).uri === 'string';
}

/** The root of a train experiment's text and where its "kind" is, or null for other files. */
export function trainOutline(text: string): { root: JsonNode; lines: LineIndex; kindRange: vscode.Range } | null {
  let root: JsonNode;
  try {
    root = parseJsonWithPositions(text);
  } catch {
    // Not JSON yet: the experiments feature and VS Code's JSON support report the syntax error.
    return null;
  }
  if (!isTrainRoot(root) || root.type !== 'object') return null;
  const prop = root.properties.find((p) => p.key === 'kind')!;
  const lines = new LineIndex(text);
  const pos = lines.position(prop.keyNode.offset);
  return { root, lines, kindRange: new vscode.Range(pos.line, pos.character, pos.line, pos.character) };
}

/**
 * Parses a train file's text with the engine's train checks (trainParse.ts directly, not
 * parse.ts: that one also brings the GPT-2 tokenizer, which the extension host does not need).
 */
export function parseTrainText(text: string, file: string): { train?: ResolvedTrainExperiment; diagnostics: EngineDiagnostic[] } | undefined {
  const o = trainOutline(text);
  if (!o) return undefined;
  const abs = path.resolve(file);
  const root = experimentRoot(abs);
  return resolveTrainExperiment(o.root, o.lines, abs, { root, dir: path.dirname(abs), reader: confinedReader(root) });
}

/**
 * Where a train file's checkpoints go: its "checkpoints" (relative to the file), else
 * .mechlens/train/<name>/ in the file's workspace folder (its own folder outside a workspace).
 * Read from the raw JSON so a file with errors still finds its checkpoints.
 */
export function checkpointDirOf(file: string, root: JsonNode, workspaceRoot: string | undefined): string {
  if (root.type === 'object') {
    const c = root.properties.find((p) => p.key === 'checkpoints')?.value;
    if (c?.type === 'string' && c.value.length > 0) return path.resolve(path.dirname(file), c.value);
  }
  return defaultCheckpointDir(workspaceRoot ?? path.dirname(file), experimentName(file));
}

/** training.max_steps of the raw JSON, if it is a number. */
function maxStepsOf(root: JsonNode): number | undefined {
  if (root.type !== 'object') return undefined;
  const t = root.properties.find((p) => p.key === 'training')?.value;
  const m = t?.type === 'object' ? t.properties.find((p) => p.key === 'max_steps')?.value : undefined;
  return m?.type === 'number' ? m.value : undefined;
}

/** The status of a file's training, as the lenses show it. */
export interface TrainLensStatus {
  running: boolean;
  stopping: boolean;
  step: number;
  maxSteps: number;
}

export class TrainCodeLenses implements vscode.CodeLensProvider, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<void>();
  readonly onDidChangeCodeLenses = this.emitter.event;

  constructor(private readonly status: (file: string) => TrainLensStatus | undefined, private readonly workspaceRoot: (uri: vscode.Uri) => string | undefined) {}

  refresh(): void {
    this.emitter.fire();
  }

  provideCodeLenses(doc: vscode.TextDocument): vscode.CodeLens[] {
    const o = trainOutline(doc.getText());
    if (!o) return [];
    const arg: TrainLensArg = { uri: doc.uri.toString() };
    const at = o.kindRange;
    const lens = (title: string, command: string, tooltip: string) => new vscode.CodeLens(at, { title, command, arguments: [arg], tooltip });
    const st = this.status(doc.uri.fsPath);
    if (st?.running) {
      return [
        lens(st.stopping ? `Stopping at step ${st.step}…` : `Training: step ${st.step} / ${st.maxSteps}`, 'mechlens.showTraining', 'Show the training panel'),
        ...(st.stopping ? [] : [lens('Stop', 'mechlens.stopTraining', 'Stop after the current step and save a checkpoint')]),
      ];
    }
    const ckpt = latestCheckpoint(checkpointDirOf(doc.uri.fsPath, o.root, this.workspaceRoot(doc.uri)));
    const lenses = [lens('Train', 'mechlens.train', ckpt ? `Train from scratch (replaces the checkpoints, newest at step ${ckpt.step})` : 'Train this model from scratch')];
    if (ckpt) {
      // Resume while there are steps left (a larger max_steps extends a finished run).
      const max = maxStepsOf(o.root);
      if (max === undefined || ckpt.step < max) lenses.push(lens('Resume', 'mechlens.resumeTraining', `Continue from the checkpoint at step ${ckpt.step} (${ckpt.path})`));
      lenses.push(lens('Analyse', 'mechlens.analyseTraining', `Run the analyses on the checkpoint at step ${ckpt.step}`));
    } else {
      lenses.push(lens('Analyse', 'mechlens.analyseTraining', 'Run the analyses on the latest checkpoint (train first)'));
    }
    return lenses;
  }

  dispose(): void {
    this.emitter.dispose();
  }
}

/** Maps an engine diagnostic (0-based line/column) to VS Code's. */
export function toVscodeDiagnostic(d: EngineDiagnostic): vscode.Diagnostic {
  const r = d.range;
  const v = new vscode.Diagnostic(new vscode.Range(r.start.line, r.start.character, r.end.line, r.end.character), d.message, d.severity === 'error' ? vscode.DiagnosticSeverity.Error : vscode.DiagnosticSeverity.Warning);
  v.source = 'MechLens';
  v.code = d.code;
  return v;
}

/**
 * Diagnostics of open train files, re-checked (debounced) as they are edited. Parsing is pure and
 * takes milliseconds, so it runs in the extension host; nothing is loaded.
 */
export class TrainDiagnostics implements vscode.Disposable {
  readonly collection = vscode.languages.createDiagnosticCollection('mechlens-train');
  private readonly pending = new Map<string, Debouncer>();
  /** Files other than the experiment that got diagnostics from it (a text task's file). */
  private readonly extra = new Map<string, string[]>();
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor() {
    this.subscriptions.push(
      vscode.workspace.onDidOpenTextDocument((d) => this.check(d)),
      vscode.workspace.onDidChangeTextDocument((e) => this.schedule(e.document)),
      vscode.workspace.onDidCloseTextDocument((d) => this.clear(d.uri)),
    );
    for (const d of vscode.workspace.textDocuments) this.check(d);
  }

  private schedule(doc: vscode.TextDocument): void {
    const key = doc.uri.toString();
    let d = this.pending.get(key);
    if (!d) {
      d = new Debouncer(300, () => this.check(doc));
      this.pending.set(key, d);
    }
    d.trigger();
  }

  /** Parses `doc` now and publishes its diagnostics; returns the parse (undefined for other files). */
  check(doc: vscode.TextDocument): ReturnType<typeof parseTrainText> {
    if (doc.uri.scheme !== 'file' || !doc.uri.fsPath.endsWith('.experiment.json') || doc.isClosed) return undefined;
    const r = parseTrainText(doc.getText(), doc.uri.fsPath);
    if (!r) {
      this.clear(doc.uri);
      return undefined;
    }
    const byFile = new Map<string, vscode.Diagnostic[]>();
    for (const d of r.diagnostics) byFile.set(d.file, [...(byFile.get(d.file) ?? []), toVscodeDiagnostic(d)]);
    this.collection.set(doc.uri, byFile.get(doc.uri.fsPath) ?? []);
    for (const f of this.extra.get(doc.uri.toString()) ?? []) if (!byFile.has(f)) this.collection.delete(vscode.Uri.file(f));
    const others = [...byFile.keys()].filter((f) => f !== doc.uri.fsPath);
    for (const f of others) this.collection.set(vscode.Uri.file(f), byFile.get(f)!);
    this.extra.set(doc.uri.toString(), others);
    return r;
  }

  private clear(uri: vscode.Uri): void {
    this.collection.delete(uri);
    for (const f of this.extra.get(uri.toString()) ?? []) this.collection.delete(vscode.Uri.file(f));
    this.extra.delete(uri.toString());
    this.pending.get(uri.toString())?.dispose();
    this.pending.delete(uri.toString());
  }

  dispose(): void {
    for (const d of this.pending.values()) d.dispose();
    this.pending.clear();
    for (const s of this.subscriptions) s.dispose();
    this.collection.dispose();
  }
}
