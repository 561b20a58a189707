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
import { checkWithModel, formatDiagnostic, hasErrors, readExperiment, type Diagnostic, type ResolvedExperiment } from './parse.js';
import { runExperiment, type ExperimentResults } from './run.js';
import { loadRun, prepareRunDir, saveRun, type SavedRun } from './store.js';
import { renderReport } from './report.js';

export class DiagnosticsError extends Error {
  constructor(readonly diagnostics: Diagnostic[]) {
    const n = diagnostics.filter((d) => d.severity === 'error').length;
    super(`${n} error${n === 1 ? '' : 's'} in the experiment; nothing was run`);
  }
}

export class ExpectationsError extends Error {}

export interface RunCommandOptions {
  out?: string;
  /** The folder the files an experiment names must stay inside (default: the experiment's folder). */
  root?: string;
  /** Overrides the experiment's model (e.g. a local folder for a quick check). */
  model?: string;
  processing?: Processing;
  device?: Device;
  offline?: boolean;
  strict?: boolean;
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
  for (const d of parsed.diagnostics) log(formatDiagnostic(d));
  if (!parsed.experiment || hasErrors(parsed.diagnostics)) throw new DiagnosticsError(parsed.diagnostics);
  const x = parsed.experiment;
  if (opts.model) x.model.spec = fs.existsSync(path.resolve(opts.model)) ? path.resolve(opts.model) : opts.model;
  if (opts.processing) x.model.processing = opts.processing;
  if (opts.device) x.model.device = opts.device;
  // Where the run goes is checked (and the folder made) before the model loads or anything runs.
  const dest = prepareRunDir({ outDir: opts.out });
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
  try {
    const checked = checkWithModel(x, engine.model.cfg, engine.tokenizer);
    for (const d of checked.diagnostics) log(formatDiagnostic(d));
    if (hasErrors(checked.diagnostics)) throw new DiagnosticsError(checked.diagnostics);
    const results = await runExperiment(x, engine.model, engine.tokenizer, checked.tokens, {
      signal: opts.signal,
      onProgress: (p) => {
        if (p.phase === 'start') log(`[${p.done + 1}/${p.total}] ${p.message}`);
      },
    });
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
export async function cmdRun(file: string, opts: RunCommandOptions): Promise<string> {
  const r = await runExperimentFile(file, opts);
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
