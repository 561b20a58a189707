/**
 * `mechlens run` and `mechlens report`: an experiment file run headless, exactly as the editor
 * runs it, and a run turned into a self-contained HTML report.
 *
 *   mechlens run FILE.experiment.json [--out DIR] [--model M] [--processing P] [--device D] [--offline] [--strict]
 *   mechlens report RUN_DIR|run.json|FILE.experiment.json --out report.html
 *
 * `run` prints every diagnostic as file:line:col and runs nothing when there is an error; it
 * prints the run folder on stdout, progress and expectation checks on stderr. --strict makes a
 * failed expectation an error (exit status 3).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LoadedEngine } from '../engine.js';
import type { Processing } from '../model/params.js';
import type { Device } from '../backends/onnx/runtime.js';
import { EXPERIMENT_LIMITS, checkWithModel, formatDiagnostic, hasErrors, parseExperiment, readExperiment, type Diagnostic, type ResolvedExperiment } from './parse.js';
import { runExperiment, type AnalysisResult, type ExperimentResults } from './run.js';
import { EXPERIMENT_COPY, existingRunDir, loadParts, loadRun, partKey, prepareRunDir, readProgress, savePart, saveRun, startRun, type RunDestination, type SavedRun } from './store.js';
import { renderReport } from './report.js';
import { budgetBytes, budgetDiagnostics, describeEstimate, estimateExperiment } from './estimate.js';

export class DiagnosticsError extends Error {
  constructor(readonly diagnostics: Diagnostic[]) {
    const n = diagnostics.filter((d) => d.severity === 'error').length;
    super(`${n} error${n === 1 ? '' : 's'} in the experiment; nothing was run`);
  }
}

export class ExpectationsError extends Error {}
/** A run stopped by the user (Ctrl-C) and left incomplete, to be resumed. */
export class InterruptedError extends Error {}

export interface RunCommandOptions {
  out?: string;
  /** On cancel (Ctrl-C), keep the run incomplete and resumable instead of saving partial results. */
  keepIncomplete?: boolean;
  /** The folder the files an experiment names must stay inside (default: the experiment's folder). */
  root?: string;
  /** Overrides the experiment's model (e.g. a local folder for a quick check). */
  model?: string;
  processing?: Processing;
  device?: Device;
  offline?: boolean;
  strict?: boolean;
  /** Memory an analysis may use, in MB (absent or 0: half the memory free when the run starts). */
  memoryBudgetMB?: number;
  signal?: AbortSignal;
  /** Where progress and diagnostics go (default stderr). */
  log?: (line: string) => void;
}

export interface RunCommandResult {
  experiment: ResolvedExperiment;
  results: ExperimentResults;
  saved: SavedRun;
  failedChecks: number;
}

/** Parses, checks (with the model), runs and saves an experiment; throws DiagnosticsError when it has errors. */
/** Whether the file is valid JSON whose top-level "kind" is "train" (mechlens run does not train). */
function isTrainFile(file: string): boolean {
  try {
    // Only a file the parser accepted the size of is parsed again.
    if (fs.statSync(file).size > 4 * EXPERIMENT_LIMITS.fileChars) return false;
    const j = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    return typeof j === 'object' && j !== null && (j as { kind?: unknown }).kind === 'train';
  } catch {
    return false;
  }
}

export async function runExperimentFile(file: string, opts: RunCommandOptions = {}): Promise<RunCommandResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const parsed = readExperiment(file, undefined, opts.root !== undefined ? { root: opts.root } : {});
  if (isTrainFile(file)) {
    throw new Error(`${file} is a training experiment ("kind": "train"): train it with its Train lens in VS Code, or run \`node --import tsx scripts/train-experiment.ts ${file}\``);
  }
  if (parsed.experiment && hasErrors(parsed.diagnostics)) {
    // Nothing runs, but the model's checks (tokens, layers, hooks) add their errors now rather
    // than after the file's are fixed: every problem in one pass, in file order. Never downloads.
    const all = [...parsed.diagnostics, ...(await modelChecks(parsed.experiment, opts))];
    all.sort((a, b) => a.file.localeCompare(b.file) || a.range.start.line - b.range.start.line || a.range.start.character - b.range.start.character);
    for (const d of all) log(formatDiagnostic(d));
    throw new DiagnosticsError(all);
  }
  for (const d of parsed.diagnostics) log(formatDiagnostic(d));
  if (!parsed.experiment || hasErrors(parsed.diagnostics)) throw new DiagnosticsError(parsed.diagnostics);
  const x = parsed.experiment;
  if (opts.model) x.model.spec = fs.existsSync(path.resolve(opts.model)) ? path.resolve(opts.model) : opts.model;
  if (opts.processing) x.model.processing = opts.processing;
  if (opts.device) x.model.device = opts.device;
  // Where the run goes is checked (and the folder made) before the model loads or anything runs;
  // progress.json and the experiment's copy go in first, so a run killed from here on can be resumed.
  const dest = prepareRunDir({ outDir: opts.out });
  startRun(dest, x);
  return runInto(x, dest, opts, log, new Map());
}

/**
 * Finishes an incomplete run folder (killed, crashed or interrupted): the experiment is read from
 * the folder's copy, the analyses it saved are kept, and only the missing ones are computed.
 */
export async function resumeRun(dir: string, opts: RunCommandOptions = {}): Promise<RunCommandResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const prog = readProgress(dir);
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, EXPERIMENT_COPY), 'utf8');
  } catch {
    throw new Error(`${path.resolve(dir)} has no ${EXPERIMENT_COPY}: it cannot be resumed; run the experiment again instead`);
  }
  const parsed = parseExperiment(text, prog.experiment, undefined, { root: prog.root });
  for (const d of parsed.diagnostics) log(formatDiagnostic(d));
  if (!parsed.experiment || hasErrors(parsed.diagnostics)) throw new DiagnosticsError(parsed.diagnostics);
  const x = parsed.experiment;
  x.model.spec = prog.model.spec;
  x.model.processing = prog.model.processing as typeof x.model.processing;
  x.model.device = prog.model.device as typeof x.model.device;
  const parts = loadParts(dir);
  log(`resuming ${path.resolve(dir)}: ${parts.size} of ${prog.total} analyses were saved`);
  return runInto(x, existingRunDir(dir), opts, log, parts);
}

/** The model-dependent errors of an experiment that will not run; none when its model is not at hand. */
async function modelChecks(x: ResolvedExperiment, opts: RunCommandOptions): Promise<Diagnostic[]> {
  let engine: LoadedEngine;
  try {
    engine = await LoadedEngine.load(opts.model ?? x.model.spec, { processing: x.model.processing, device: x.model.device, allowDownload: false, signal: opts.signal });
  } catch {
    return [];
  }
  try {
    return checkWithModel(x, engine.model.cfg, engine.tokenizer).diagnostics;
  } finally {
    await engine.dispose();
  }
}

async function runInto(x: ResolvedExperiment, dest: RunDestination, opts: RunCommandOptions, log: (l: string) => void, parts: Map<string, AnalysisResult>): Promise<RunCommandResult> {
  let engine: LoadedEngine;
  try {
    engine = await LoadedEngine.load(x.model.spec, { processing: x.model.processing, device: x.model.device, allowDownload: !(opts.offline || x.model.offline), signal: opts.signal });
  } catch (e) {
    const d: Diagnostic = { ...x.model.at, severity: 'error', message: `the model ${JSON.stringify(x.model.spec)} cannot be loaded: ${(e as Error).message.split('\n')[0]}`, code: 'model-load' };
    log(formatDiagnostic(d));
    dest.abandon();
    throw new DiagnosticsError([d]);
  }
  let saved: SavedRun | undefined;
  for (const w of engine.warnings) log(`warning: ${w}`);
  try {
    const checked = checkWithModel(x, engine.model.cfg, engine.tokenizer);
    for (const d of checked.diagnostics) log(formatDiagnostic(d));
    if (hasErrors(checked.diagnostics)) throw new DiagnosticsError(checked.diagnostics);
    // The estimate comes first: an analysis over the budget stops the run before anything is allocated.
    const budget = budgetBytes(opts.memoryBudgetMB);
    const est = estimateExperiment(x, engine.model.cfg, checked.tokens);
    for (const l of describeEstimate(x, est, budget)) log(l);
    const over = budgetDiagnostics(x, est, budget, opts.memoryBudgetMB ? '--memory-budget' : 'half the free memory; set it with --memory-budget MB');
    for (const d of over) log(formatDiagnostic(d));
    if (hasErrors(over)) throw new DiagnosticsError(over);
    const results = await runExperiment(x, engine.model, engine.tokenizer, checked.tokens, {
      signal: opts.signal,
      onProgress: (p) => {
        if (p.phase === 'start') log(`[${p.done + 1}/${p.total}] ${p.message}`);
      },
      onResult: (g, r) => savePart(dest.dir, g, r),
      reuse: (g, i) => parts.get(partKey(g, i)),
      warnings: engine.warnings,
    });
    for (const n of new Set(results.results.flatMap((r) => (r.notes ?? []).filter((t) => t.startsWith('Not finite'))))) log(n);
    if (results.cancelled && opts.keepIncomplete) {
      const n = results.results.filter((r) => !r.partial).length;
      throw new InterruptedError(`interrupted: ${n} of ${x.groups.length * x.analyses.length} analyses are saved in ${dest.dir}; finish it with: mechlens run --resume ${dest.dir}`);
    }
    const run = saveRun(x, results, { modelName: engine.model.cfg.model_name, into: dest });
    saved = run;
    const checks = results.results.flatMap((r) => (r.checks ?? []).map((c) => ({ r, c })));
    for (const { r, c } of checks) log(`${c.ok ? 'ok  ' : 'FAIL'} ${r.title}: ${c.what}: expected ${c.expected}, got ${Number.isFinite(c.actual) ? c.actual.toFixed(6) : 'n/a'} (tolerance ${c.tolerance})`);
    const failed = checks.filter(({ c }) => !c.ok).length;
    if (checks.length) log(`expectations: ${checks.length - failed} of ${checks.length} met`);
    if (results.cancelled) log('cancelled: the run folder holds the partial results');
    return { experiment: x, results, saved: run, failedChecks: failed };
  } finally {
    if (!saved) dest.abandon();
    await engine.dispose();
  }
}

/** Runs an experiment file; returns the run folder. */
export async function cmdRun(file: string | undefined, opts: RunCommandOptions & { resume?: string }): Promise<string> {
  // Ctrl-C stops the run within an analysis (sweeps check the signal between batches) and leaves
  // it incomplete and resumable; a second Ctrl-C ends the process at once (finished analyses stay).
  const ac = new AbortController();
  const onInt = () => {
    process.stderr.write('mechlens: stopping (Ctrl-C again to quit at once)\n');
    ac.abort();
  };
  process.once('SIGINT', onInt);
  let r: RunCommandResult;
  try {
    const o = { ...opts, signal: ac.signal, keepIncomplete: true };
    if (opts.resume !== undefined) r = await resumeRun(opts.resume, o);
    else if (file !== undefined) r = await runExperimentFile(file, o);
    else throw new Error('missing the experiment file: mechlens run FILE.experiment.json (or --resume RUN_DIR)');
  } finally {
    process.removeListener('SIGINT', onInt);
  }
  if (opts.strict && r.failedChecks > 0) throw new ExpectationsError(`${r.failedChecks} expectation${r.failedChecks === 1 ? '' : 's'} not met (--strict); the run is in ${r.saved.dir}`);
  return r.saved.dir;
}

/** Writes the report of a run folder / run.json, or of a fresh run of an experiment file. */
export async function cmdReport(input: string, out: string, opts: RunCommandOptions = {}): Promise<void> {
  const dir = path.dirname(path.resolve(out));
  if (!fs.existsSync(dir)) throw new Error(`output folder ${dir} does not exist`);
  let runDir = input;
  if (/\.experiment\.json$/.test(input)) runDir = (await runExperimentFile(input, opts)).saved.dir;
  const run = loadRun(runDir);
  for (const s of run.skipped) process.stderr.write(`mechlens: skipped ${s}\n`);
  const html = renderReport(run.record);
  const tmp = `${out}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, html);
  fs.renameSync(tmp, out);
}
