/**
 * The results store: one folder per run, `.mechlens/runs/<id>/`, holding
 *   run.json             the RunRecord shared with the extension (src/protocol/runs.ts): inputs,
 *                        model, engine version, created time, and the 'experiment' panel state
 *                        (every section and block), so the Runs view reopens it without recomputing;
 *   results.json         every number of every analysis (ExperimentResults, tensors excluded);
 *   tensors.safetensors  large tensors (attention patterns, composition scores), when any;
 *   experiment.json      a copy of the experiment file as it was run.
 * While a run is under way its folder holds instead
 *   progress.json        what is being run (the experiment's path, root and model), written first;
 *   experiment.json      the copy, written first too, so the run can be resumed from it;
 *   parts/<g>-<i>.json   each analysis (group g, analysis i) as soon as it finished, with its
 *   parts/<g>-<i>.safetensors  tensors, so a killed run keeps its finished work.
 * A folder with run.json is a complete run (run.json is written last, then parts/ and progress.json
 * are removed); one with progress.json but no run.json is an incomplete run that `mechlens run
 * --resume` finishes; one with neither is debris of a run killed at its very start.
 * Files are written atomically (temporary name, then rename).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { newRunId, RUN_FILE, RUNS_DIR, runRecordProblem, type RunRecord } from '../../protocol/runs.js';
import { checkRunFile } from '../../protocol/runFiles.js';
import type { ExperimentCheck, ExperimentSection, ExperimentState } from '../../protocol/webview.js';
import { readSafetensors, writeSafetensors } from '../model/safetensors.js';
import type { ResolvedExperiment } from './parse.js';
import { resultTensors, type AnalysisResult, type ExperimentResults } from './run.js';

export const RESULTS_FILE = 'results.json';
export const TENSORS_FILE = 'tensors.safetensors';
export const EXPERIMENT_COPY = 'experiment.json';
export const PROGRESS_FILE = 'progress.json';
export const PARTS_DIR = 'parts';

let cachedVersion: string | undefined;

/** The version in MechLens's package.json (found upward from this module), for run records. */
export function engineVersion(): string {
  if (cachedVersion) return cachedVersion;
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const p = path.join(dir, 'package.json');
    try {
      const j = JSON.parse(fs.readFileSync(p, 'utf8')) as { name?: string; version?: string };
      if (j.name === 'mechlens' && typeof j.version === 'string') return (cachedVersion = j.version);
    } catch { /* not here */ }
    dir = path.dirname(dir);
  }
  return (cachedVersion = '0.0.0');
}

/** JSON with NaN / ±Infinity written as null (JSON has no such numbers). */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 1) + '\n';
}

function writeAtomic(file: string, data: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

export interface SavedRun {
  dir: string;
  record: RunRecord;
}

export interface SaveOptions {
  /** The run folder itself; default <cwd>/.mechlens/runs/<id>. Must be empty or absent. */
  outDir?: string;
  /** Folder that holds .mechlens (default: process.cwd()). */
  workspace?: string;
  /** The model as loaded: cfg.model_name. */
  modelName: string;
  now?: Date;
}

/** A run folder made before any work, so that a bad destination fails at once, not after the run. */
export interface RunDestination {
  dir: string;
  id: string;
  now: Date;
  /** Removes the folder if the run ends without saving anything into it. */
  abandon(): void;
}

/**
 * Makes (and proves writable) the folder a run will be saved into, before anything is computed:
 * an `--out` that is a file, a non-empty `--out`, or a read-only workspace is an error now,
 * instead of after every analysis ran and its results were lost. The default folder
 * `<workspace>/.mechlens/runs/<id>` is created exclusively, so two runs started at once never
 * share one.
 */
export function prepareRunDir(opts: { outDir?: string; workspace?: string; now?: Date }): RunDestination {
  const now = opts.now ?? new Date();
  let id = newRunId('experiment', now);
  let dir: string;
  // The first folder this call created above the run folder (.mechlens, say), removed again with an abandoned run.
  let createdTop: string | undefined;
  const fail = (what: string, e?: unknown): never => {
    const code = (e as NodeJS.ErrnoException | undefined)?.code;
    const why = code === 'EROFS' ? 'the file system is read-only' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'ENOTDIR' ? 'a part of the path is a file, not a folder' : code ?? '';
    throw new Error(`cannot write the run to ${what}${why ? `: ${why}` : ''}; give a writable folder (--out DIR in the CLI)`);
  };
  if (opts.outDir !== undefined) {
    dir = path.resolve(opts.outDir);
    let st: fs.Stats | null = null;
    try {
      st = fs.statSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') fail(dir, e);
    }
    if (st && !st.isDirectory()) throw new Error(`the output ${dir} is a file, not a folder; give a new or empty folder`);
    if (st && fs.readdirSync(dir).length > 0) throw new Error(`output folder ${dir} is not empty; give a new or empty folder`);
    try {
      fs.mkdirSync(dir, { recursive: true });
    } catch (e) {
      fail(dir, e);
    }
  } else {
    const runs = path.join(path.resolve(opts.workspace ?? process.cwd()), RUNS_DIR);
    try {
      createdTop = fs.mkdirSync(runs, { recursive: true });
    } catch (e) {
      fail(runs, e);
    }
    for (let attempt = 0; ; attempt++) {
      dir = path.join(runs, id);
      try {
        fs.mkdirSync(dir);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 20) fail(dir, e);
        id = newRunId('experiment', now);
      }
    }
  }
  // mkdir can succeed where files cannot be written (quota, some mounts): prove it with a probe.
  const probe = path.join(dir, `.probe-${process.pid}`);
  try {
    fs.writeFileSync(probe, '');
    fs.rmSync(probe);
  } catch (e) {
    fail(dir, e);
  }
  const made = dir;
  return {
    dir: made,
    id,
    now,
    abandon: () => {
      try {
        // Nothing finished (no run.json, no saved analysis): the folder and its in-progress files go.
        if (fs.existsSync(path.join(made, RUN_FILE)) || fs.readdirSync(path.join(made, PARTS_DIR)).length > 0) return;
      } catch { /* no parts folder */ }
      try {
        for (const f of [PROGRESS_FILE, EXPERIMENT_COPY, PARTS_DIR]) fs.rmSync(path.join(made, f), { recursive: true, force: true });
        if (fs.readdirSync(made).length > 0) return;
        fs.rmdirSync(made);
        for (let d = path.dirname(made); createdTop && d.startsWith(createdTop) && fs.readdirSync(d).length === 0; d = path.dirname(d)) fs.rmdirSync(d);
      } catch { /* already gone, or filled by another run */ }
    },
  };
}

export function saveRun(x: ResolvedExperiment, res: ExperimentResults, opts: SaveOptions & { into?: RunDestination }): SavedRun {
  const dest = opts.into ?? prepareRunDir({ outDir: opts.outDir, workspace: opts.workspace, now: opts.now });
  const { dir, id, now } = dest;
  const first = x.groups[0]!;
  const state = experimentState(x, res, { id, dir, createdAt: now.toISOString() });
  const record: RunRecord = {
    id,
    kind: 'experiment',
    title: x.title,
    createdAt: now.toISOString(),
    model: { spec: x.model.spec, name: opts.modelName, processing: x.model.processing },
    engineVersion: engineVersion(),
    inputs: {
      prompts: first.prompts.map((p) => p.prompt),
      ...(first.prompts.every((p) => p.corrupted !== undefined) ? { corrupted: first.prompts.map((p) => p.corrupted!) } : {}),
      experiment: x.file,
      groups: x.groups.map((g) => ({ name: g.name, prompts: g.prompts.map((p) => ({ prompt: p.prompt, corrupted: p.corrupted, answer: p.answer, wrong: p.wrong })) })),
      metric: x.metric,
      normalize: x.normalize,
      prependBos: x.prependBos,
      analyses: x.analyses.map((a) => a.spec),
      cancelled: res.cancelled,
    },
    state,
  };
  const problem = runRecordProblem(JSON.parse(toJson(record)));
  if (problem) throw new Error(`internal: the run record is invalid: ${problem}`);
  const tensors = resultTensors(res.results);
  if (tensors.size > 0) writeSafetensors(path.join(dir, TENSORS_FILE), tensors, { run: id });
  const plain = { ...res, results: res.results.map(({ tensors: t, ...r }) => ({ ...r, tensors: t ? Object.fromEntries(Object.entries(t).map(([k, v]) => [k, { dims: v.dims, file: TENSORS_FILE, key: `${r.index}/${r.group ?? '_'}/${k}` }])) : undefined })) };
  writeAtomic(path.join(dir, RESULTS_FILE), toJson(plain));
  try {
    fs.copyFileSync(x.file, path.join(dir, EXPERIMENT_COPY));
  } catch { /* parsed from an unsaved buffer: nothing to copy */ }
  // run.json last: a folder with run.json is a complete run. Then the in-progress files go.
  writeAtomic(path.join(dir, RUN_FILE), toJson(record));
  fs.rmSync(path.join(dir, PARTS_DIR), { recursive: true, force: true });
  fs.rmSync(path.join(dir, PROGRESS_FILE), { force: true });
  return { dir, record };
}

/** progress.json: what an unfinished run was running, enough to resume it. */
export interface RunProgressRecord {
  version: 1;
  /** The experiment file as it was given (named files resolve against its folder). */
  experiment: string;
  root: string;
  model: { spec: string; processing: string; device: string };
  startedAt: string;
  /** groups × analyses */
  total: number;
}

/** Marks the folder as a run under way and keeps a copy of the experiment (text as run). */
export function startRun(dest: RunDestination, x: ResolvedExperiment, text?: string): void {
  const copy = path.join(dest.dir, EXPERIMENT_COPY);
  if (text !== undefined) writeAtomic(copy, text);
  else if (!fs.existsSync(copy)) {
    try {
      writeAtomic(copy, fs.readFileSync(x.file, 'utf8'));
    } catch { /* an in-memory experiment: nothing to copy */ }
  }
  const rec: RunProgressRecord = {
    version: 1,
    experiment: x.file,
    root: x.root,
    model: { spec: x.model.spec, processing: x.model.processing, device: x.model.device },
    startedAt: dest.now.toISOString(),
    total: x.groups.length * x.analyses.length,
  };
  writeAtomic(path.join(dest.dir, PROGRESS_FILE), toJson(rec));
}

const partName = (group: number, index: number) => `${group}-${index}`;

/** Writes one finished analysis into parts/ (tensors first, the JSON last: the JSON marks it done). */
export function savePart(dir: string, group: number, r: AnalysisResult): void {
  const parts = path.join(dir, PARTS_DIR);
  fs.mkdirSync(parts, { recursive: true });
  const name = partName(group, r.index);
  const { tensors, ...plain } = r;
  if (tensors && Object.keys(tensors).length) {
    const tmp = path.join(parts, `${name}.safetensors.tmp-${process.pid}`);
    writeSafetensors(tmp, tensors);
    fs.renameSync(tmp, path.join(parts, `${name}.safetensors`));
  }
  writeAtomic(path.join(parts, `${name}.json`), toJson(plain));
}

/** The analyses an interrupted run finished, by "group-index" (a damaged part is computed again). */
export function loadParts(dir: string): Map<string, AnalysisResult> {
  const out = new Map<string, AnalysisResult>();
  const parts = path.join(dir, PARTS_DIR);
  let names: string[];
  try {
    names = fs.readdirSync(parts);
  } catch {
    return out;
  }
  for (const n of names) {
    const m = /^(\d+)-(\d+)\.json$/.exec(n);
    if (!m) continue;
    try {
      const r = JSON.parse(fs.readFileSync(path.join(parts, n), 'utf8')) as AnalysisResult;
      const tf = path.join(parts, `${m[1]}-${m[2]}.safetensors`);
      if (fs.existsSync(tf)) r.tensors = Object.fromEntries(readSafetensors(tf));
      out.set(`${m[1]}-${m[2]}`, r);
    } catch { /* half-written or damaged: computed again */ }
  }
  return out;
}

export function partKey(group: number, index: number): string {
  return partName(group, index);
}

/** Reads an incomplete run's progress.json; a clear error when the folder is not one. */
export function readProgress(dir: string): RunProgressRecord {
  const d = path.resolve(dir);
  if (fs.existsSync(path.join(d, RUN_FILE))) throw new Error(`${d} is a complete run: there is nothing to resume`);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(path.join(d, PROGRESS_FILE), 'utf8'));
  } catch (e) {
    throw new Error(`${d} is not an incomplete MechLens run (${(e as NodeJS.ErrnoException).code === 'ENOENT' ? `no ${PROGRESS_FILE}` : `${PROGRESS_FILE} is damaged`}): run the experiment again instead`);
  }
  const r = raw as Partial<RunProgressRecord>;
  if (r.version !== 1 || typeof r.experiment !== 'string' || typeof r.root !== 'string' || typeof r.model?.spec !== 'string') throw new Error(`${path.join(d, PROGRESS_FILE)} is damaged: expected experiment, root and model; run the experiment again instead`);
  return r as RunProgressRecord;
}

/** An existing incomplete run folder as the destination of its resumed run. */
export function existingRunDir(dir: string): RunDestination {
  const d = path.resolve(dir);
  const id = path.basename(d);
  return { dir: d, id, now: new Date(), abandon: () => undefined };
}

/** What the patching numbers mean, for the panel and the report. */
export function metricDescription(x: ResolvedExperiment): string {
  const base = x.metric === 'logit_diff' ? 'logit difference logit(answer) − logit(wrong) at the last position, mean over prompts' : x.metric === 'answer_prob' ? "the answer's probability at the last position, mean over prompts" : "the answer's log-probability at the last position, mean over prompts";
  return `${base}${x.normalize ? '; patching normalised: (patched − corrupted) / (clean − corrupted), raw (and labelled so) where clean and corrupted are equal' : ''}`;
}

/** The run as the experiment panel's state (what run.json holds; NaN becomes null in JSON). */
export function experimentState(x: ResolvedExperiment, res: ExperimentResults, run: { id: string; dir: string; createdAt: string }): ExperimentState {
  const sections: ExperimentSection[] = res.results.map((r) => {
    const sec: ExperimentSection = { index: r.index, kind: r.kind, group: r.group, title: r.title, elapsedMs: r.elapsedMs, blocks: r.blocks };
    if (r.partial) sec.partial = true;
    if (r.checks) sec.checks = r.checks.map((c): ExperimentCheck => ({ ...c, actual: Number.isFinite(c.actual) ? c.actual : null }));
    if (r.notes) sec.notes = r.notes;
    return sec;
  });
  return {
    kind: 'experiment',
    title: x.title,
    model: x.model.name,
    description: [...(res.warnings ?? []).map((w) => `Warning: ${w}`), x.spec.description ?? '', res.cancelled ? 'Cancelled: partial results.' : ''].filter(Boolean).join('\n'),
    metric: metricDescription(x),
    file: x.file,
    run: { id: run.id, dir: run.dir, createdAt: run.createdAt, elapsedMs: res.elapsedMs, cancelled: res.cancelled },
    sections,
  };
}

export interface LoadedRun {
  dir: string;
  /** run.json, with the blocks that cannot be shown taken out (see `skipped`). */
  record: RunRecord;
  /** results.json, read on first use (the report does not need it, so a damaged one does not stop it). */
  readonly results: ExperimentResults | null;
  /** "run.json: state.sections[1].blocks[0]: …" for every block left out, to be said, not hidden. */
  skipped: string[];
}

/** Reads a run folder (or its run.json), validating run.json with located messages (protocol/runFiles.ts). */
export function loadRun(dirOrFile: string): LoadedRun {
  const p = path.resolve(dirOrFile);
  const dir = fs.existsSync(p) && fs.statSync(p).isDirectory() ? p : path.dirname(p);
  const runFile = path.join(dir, RUN_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(runFile, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${dir} is not a complete MechLens run: it has no ${RUN_FILE}` : `cannot read ${runFile}: ${code ?? (e as Error).message}`);
  }
  const check = checkRunFile(raw);
  if (check.errors.length) throw new Error(`${runFile} is not a valid MechLens run: ${check.errors.join('; ')}`);
  const record = raw as RunRecord;
  if (record.state.kind === 'experiment' && check.skip.size) {
    const st = record.state;
    st.sections = st.sections.map((sec, i) => {
      const keep = sec.blocks.filter((_b, j) => !check.skip.has(`${i}/${j}`));
      if (keep.length === sec.blocks.length) return sec;
      const n = sec.blocks.length - keep.length;
      return { ...sec, blocks: keep, notes: [...(sec.notes ?? []), `${n} figure${n === 1 ? '' : 's'} of this section could not be shown (damaged or from a newer MechLens) and ${n === 1 ? 'was' : 'were'} skipped.`] };
    });
  }
  let results: ExperimentResults | null | undefined;
  const rf = path.join(dir, RESULTS_FILE);
  return {
    dir,
    record,
    skipped: check.skipped.map((s) => `${RUN_FILE}: ${s}`),
    get results(): ExperimentResults | null {
      if (results !== undefined) return results;
      if (!fs.existsSync(rf)) return (results = null);
      try {
        return (results = JSON.parse(fs.readFileSync(rf, 'utf8')) as ExperimentResults);
      } catch (e) {
        throw new Error(`${rf} is damaged (${(e as Error).message}); run the experiment again to recreate it`);
      }
    },
  };
}
