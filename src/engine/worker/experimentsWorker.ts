/**
 * The engine worker's side of experiment files: the handlers of engine/experiment/check, /run
 * and /progress (src/protocol/engine.ts). It lives with the extension's experiment feature but
 * runs only in the engine process (dist/engineWorker.js imports it; the extension bundle never
 * does, so the engine stays out of the extension host): no `vscode` here.
 *
 * An experiment names its own model, which may differ from the one the settings load: the worker
 * keeps experiment models in a small cache (reusing the settings' model when it is the same), so
 * checking a file on open and running it afterwards load the model once. A load is shared by
 * every request that waits for it and aborted when all of them are cancelled.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RpcEndpoint } from '../../protocol/rpc.js';
import { EngineNotifications, EngineRequests, type ExperimentCheckResult, type ExperimentDiagnostic, type ExperimentProgress, type ExperimentRunResult } from '../../protocol/engine.js';
import { LoadedEngine } from '../engine.js';
import { hfCacheSnapshot, hfRepoCacheDir, isHfModelId } from '../model/load.js';
import { isBuiltin } from '../model/builtin.js';
import { budgetBytes, budgetDiagnostics, describeEstimate, estimateExperiment, formatBytes } from '../experiments/estimate.js';
import { checkWithModel, hasErrors, parseExperiment, readExperiment, type Diagnostic, type ParseResult, type ResolvedExperiment } from '../experiments/parse.js';
import { runExperiment, type AnalysisResult } from '../experiments/run.js';
import { EXPERIMENT_COPY, existingRunDir, loadParts, partKey, prepareRunDir, readProgress, savePart, saveRun, startRun, toJson } from '../experiments/store.js';
import { RUN_FILE } from '../../protocol/runs.js';
import { limitState } from '../../protocol/experimentsState.js';

/** Experiment models kept loaded besides the settings' model (each GPT-2 small is ~0.5 GB). */
const MAX_IDLE_ENGINES = 1;
/** A finished run's progress stays readable this long (the client's last poll may come late). */
const PROGRESS_TTL_MS = 60_000;

interface CacheEntry {
  key: string;
  promise: Promise<LoadedEngine>;
  abort: AbortController;
  users: number;
  loaded: boolean;
  /** The load may download: then it is stopped when every caller has gone. */
  mayDownload: boolean;
  lastUsed: number;
}

/** What the worker's own (settings) model is, to reuse it when an experiment names the same one. */
export type MainEngine = () => LoadedEngine | null;

function engineKey(x: ResolvedExperiment): string {
  return JSON.stringify([x.model.spec, x.model.processing, x.model.device]);
}

function cancelled(): Error {
  return Object.assign(new Error('cancelled'), { code: 'cancelled' });
}

/** Experiment models by (spec, processing, device), reference-counted. */
export class ExperimentEngines {
  private readonly entries = new Map<string, CacheEntry>();

  constructor(private readonly main: MainEngine) {}

  /**
   * Runs `fn` with the experiment's model, loading it (shared) if needed. `signal` cancels this
   * caller's wait; the load itself stops when no caller waits for it any more.
   */
  async use<T>(x: ResolvedExperiment, opts: { allowDownload: boolean; signal: AbortSignal; onProgress?: (message: string, fraction?: number) => void }, fn: (e: LoadedEngine) => Promise<T>): Promise<T> {
    const m = this.main();
    // The settings' model, when it is the same model with the same processing (and a device the experiment accepts).
    if (m && m.spec === x.model.spec && m.model.processing === x.model.processing && (x.model.device === 'auto' || m.model.runtime.device === x.model.device)) return fn(m);
    const key = engineKey(x);
    let e = this.entries.get(key);
    if (!e) {
      const abort = new AbortController();
      const promise = LoadedEngine.load(x.model.spec, {
        processing: x.model.processing,
        device: x.model.device,
        allowDownload: opts.allowDownload,
        signal: abort.signal,
        onProgress: (p) => opts.onProgress?.(`downloading ${p.file}`, p.total ? p.loaded / p.total : undefined),
      });
      const entry: CacheEntry = { key, abort, users: 0, loaded: false, mayDownload: opts.allowDownload, lastUsed: Date.now(), promise };
      promise.then(
        () => (entry.loaded = true),
        () => this.entries.get(key) === entry && this.entries.delete(key),
      );
      this.entries.set(key, entry);
      e = entry;
    }
    const entry = e;
    entry.users++;
    entry.lastUsed = Date.now();
    try {
      const engine = await new Promise<LoadedEngine>((resolve, reject) => {
        if (opts.signal.aborted) return reject(cancelled());
        const onAbort = () => reject(cancelled());
        opts.signal.addEventListener('abort', onAbort, { once: true });
        entry.promise.then(resolve, reject).finally(() => opts.signal.removeEventListener('abort', onAbort));
      });
      return await fn(engine);
    } finally {
      entry.users--;
      entry.lastUsed = Date.now();
      // Nobody waits for a download any more (all cancelled): stop it. A load from disk goes on
      // (it cannot be interrupted anyway) and serves the next check or run.
      if (entry.users === 0 && !entry.loaded && entry.mayDownload) {
        entry.abort.abort();
        if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key);
      }
      this.evict();
    }
  }

  /** Disposes idle models beyond MAX_IDLE_ENGINES, least recently used first. */
  private evict(): void {
    const idle = [...this.entries.values()].filter((x) => x.users === 0 && x.loaded).sort((a, b) => b.lastUsed - a.lastUsed);
    for (const x of idle.slice(MAX_IDLE_ENGINES)) {
      this.entries.delete(x.key);
      void x.promise.then((eng) => eng.dispose()).catch(() => undefined);
    }
  }

  async dispose(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    for (const x of all) x.abort.abort();
    await Promise.all(all.map((x) => x.promise.then((eng) => eng.dispose()).catch(() => undefined)));
  }
}

function parse(file: string, text: string | undefined, root: string | undefined): ParseResult {
  // Files the experiment names stay inside its workspace folder (engine/experiments/files.ts).
  const opts = { root: root ?? path.dirname(file) };
  return text !== undefined ? parseExperiment(text, file, undefined, opts) : readExperiment(file, undefined, opts);
}

const plain = (d: Diagnostic): ExperimentDiagnostic => ({ file: d.file, range: d.range, severity: d.severity, message: d.message, code: d.code });

/**
 * Whether the model can be had without the network: builtin models and folders always (a missing
 * folder fails to load, which is reported as such); a Hugging Face id only when its snapshot is in
 * the local cache.
 */
function availableOffline(spec: string): { ok: true } | { ok: false; searched: string } {
  if (isBuiltin(spec) || path.isAbsolute(spec) || !isHfModelId(spec)) return { ok: true };
  if (hfCacheSnapshot(spec) !== null) return { ok: true };
  return { ok: false, searched: hfRepoCacheDir(spec) };
}

function modelDiagnostic(x: ResolvedExperiment, severity: 'error' | 'warning', message: string, code: string): ExperimentDiagnostic {
  return { ...x.model.at, severity, message, code };
}

/** The message for a model that failed to load, with what to do about it. */
function loadFailure(x: ResolvedExperiment, e: unknown, allowDownload: boolean): ExperimentDiagnostic {
  const reason = (e instanceof Error ? e.message : String(e)).split("\n")[0]!.replace(/\.+$/, "");
  const off = availableOffline(x.model.spec);
  const hint = !off.ok
    ? allowDownload && !x.model.offline
      ? ' Check the network (or HF_ENDPOINT), or put the model in the Hugging Face cache yourself (huggingface-cli download ' + x.model.spec + ' config.json model.safetensors), or point "model" at a local folder.'
      : ` It is not in the Hugging Face cache (${off.searched}) and downloading is off (${x.model.offline ? '"offline": true in this file' : 'the setting mechlens.allowDownload'}): download it once (huggingface-cli download ${x.model.spec} config.json model.safetensors) or point "model" at a local folder.`
    : '';
  return modelDiagnostic(x, 'error', `the model ${JSON.stringify(x.model.name)} cannot be loaded: ${reason}.${hint}`, 'model-load');
}

export function registerExperimentHandlers(rpc: RpcEndpoint, main: MainEngine): ExperimentEngines {
  const engines = new ExperimentEngines(main);
  const progress = new Map<string, ExperimentProgress>();

  rpc.onRequest(EngineRequests.experimentCheck, async (p, ctx): Promise<ExperimentCheckResult> => {
    const parsed = parse(p.file, p.text, p.root);
    const diagnostics = parsed.diagnostics.map(plain);
    const x = parsed.experiment;
    // A file with errors elsewhere is still checked against the model (every error in one pass).
    if (!x) return { diagnostics, modelChecked: false };
    const model = { name: x.model.name, spec: x.model.spec, processing: x.model.processing };
    if (!p.withModel) return { diagnostics, model, modelChecked: false };
    // Checking never downloads (it runs on every open and edit): a model that is not here yet is
    // a warning when a run may fetch it, an error when it may not.
    const off = availableOffline(x.model.spec);
    if (!off.ok) {
      const mayDownload = p.allowDownload && !x.model.offline;
      diagnostics.push(
        mayDownload
          ? modelDiagnostic(x, 'warning', `${x.model.name} is not in the local Hugging Face cache (${off.searched}): running this experiment downloads it first (GPT-2 small is about 550 MB); the token checks run once it is there.`, 'model-not-cached')
          : modelDiagnostic(x, 'error', `${x.model.name} is not available offline: it is not in the Hugging Face cache (${off.searched}) and downloading is off (${x.model.offline ? '"offline": true in this file' : 'the setting mechlens.allowDownload'}). Download it once (huggingface-cli download ${x.model.name} config.json model.safetensors) or point "model" at a local folder.`, 'model-unavailable'),
      );
      return { diagnostics, model, modelChecked: false };
    }
    try {
      return await engines.use(x, { allowDownload: false, signal: ctx.signal }, async (e) => {
        diagnostics.push(...checkWithModel(x, e.model.cfg, e.tokenizer).diagnostics.map(plain));
        return { diagnostics, model, modelChecked: true };
      });
    } catch (e) {
      if (ctx.signal.aborted) throw e;
      diagnostics.push(loadFailure(x, e, p.allowDownload));
      return { diagnostics, model, modelChecked: false };
    }
  });

  rpc.onRequest(EngineRequests.experimentRun, async (p, ctx): Promise<ExperimentRunResult> => {
    const token = p.token ?? `request-${ctx.requestId}`;
    const state: ExperimentProgress = { token, message: 'checking the experiment', done: 0, total: 0, finished: false };
    progress.set(token, state);
    const report = (message: string, done: number, total: number, fraction?: number) => {
      Object.assign(state, { message, done, total, fraction });
      rpc.notify(EngineNotifications.progress, { requestId: ctx.requestId, message, ...(fraction !== undefined ? { fraction } : {}) });
    };
    try {
      // Resuming: the experiment as it was run (the folder's copy) and the analyses it saved.
      const prog = p.resume !== undefined ? readProgress(p.resume) : undefined;
      const parsed = prog ? parseExperiment(fs.readFileSync(path.join(p.resume!, EXPERIMENT_COPY), 'utf8'), prog.experiment, undefined, { root: prog.root }) : parse(p.file, p.text, p.root ?? p.workspace);
      const parts = prog ? loadParts(p.resume!) : new Map<string, AnalysisResult>();
      const diagnostics = parsed.diagnostics.map(plain);
      const x = parsed.experiment;
      if (x && hasErrors(parsed.diagnostics) && availableOffline(x.model.spec).ok) {
        // Nothing runs; the model's checks add their errors so that the answer lists them all.
        try {
          await engines.use(x, { allowDownload: false, signal: ctx.signal }, async (e) => {
            diagnostics.push(...checkWithModel(x, e.model.cfg, e.tokenizer).diagnostics.map(plain));
          });
        } catch (e) {
          if (ctx.signal.aborted) throw e;
        }
        return { diagnostics };
      }
      if (!x || hasErrors(parsed.diagnostics)) return { diagnostics };
      const bad = (p.only ?? []).filter((i) => !Number.isInteger(i) || i < 0 || i >= x.analyses.length);
      if (bad.length) throw new Error(`analysis ${bad.join(', ')} does not exist: the file has ${x.analyses.length} analyses (0-based)`);
      const allowDownload = p.allowDownload && !x.model.offline;
      // A read-only or unusable workspace fails now, not after every analysis ran.
      const dest = prog ? existingRunDir(p.resume!) : prepareRunDir({ workspace: p.workspace });
      if (prog) Object.assign(x.model, { spec: prog.model.spec, processing: prog.model.processing, device: prog.model.device });
      else startRun(dest, x, p.text);
      let kept = false;
      report(`loading ${x.model.name}`, 0, 0);
      // Set once the model is loaded: an error before that is the model's, reported at "model".
      let loaded = false;
      try {
        return await engines.use(x, { allowDownload, signal: ctx.signal, onProgress: (m, f) => report(m, 0, 0, f) }, async (engine) => {
          loaded = true;
          const checked = checkWithModel(x, engine.model.cfg, engine.tokenizer);
          diagnostics.push(...checked.diagnostics.map(plain));
          if (hasErrors(checked.diagnostics)) return { diagnostics };
          if (p.only) {
            const keep = new Set(p.only);
            x.analyses = x.analyses.filter((a) => keep.has(a.index));
          }
          // The estimate comes first (shown in the progress notification); an analysis over the
          // budget stops the run before anything is allocated, with an error at that analysis.
          const budget = budgetBytes(p.memoryBudgetMB);
          const est = estimateExperiment(x, engine.model.cfg, checked.tokens);
          const over = budgetDiagnostics(x, est, budget, p.memoryBudgetMB ? 'the setting mechlens.memoryBudgetMB' : 'half the free memory; set it with mechlens.memoryBudgetMB');
          if (hasErrors(over)) return { diagnostics: [...diagnostics, ...over.map(plain)] };
          report(describeEstimate(x, est, budget)[0]!, 0, x.groups.length * x.analyses.length);
          const estimate = `estimate ~${formatBytes(est.peakBytes)}, ${est.forwards} forward passes`;
          const total = x.groups.length * x.analyses.length;
          const results = await runExperiment(x, engine.model, engine.tokenizer, checked.tokens, {
            signal: ctx.signal,
            onProgress: (pr) => {
              const within = pr.phase === 'progress' ? (pr.fraction ?? 0) : 0;
              report(`${Math.min(pr.done + 1, total)}/${total} ${pr.message} (${estimate})`, pr.done, total, total > 0 ? (pr.done + within) / total : undefined);
            },
            // Each finished analysis is on disk at once: if the engine dies, the run can be resumed.
            onResult: (g, r) => savePart(dest.dir, g, r),
            reuse: (g, i) => parts.get(partKey(g, i)),
            warnings: engine.warnings,
          });
          // Even a cancelled run is saved: the folder holds what was computed (partial sweeps as NaN).
          const saved = saveRun(x, results, { modelName: engine.model.cfg.model_name, into: dest });
          kept = true;
          // The copy of the file is what ran: the editor's buffer (or the in-memory experiment), not the disk version.
          if (p.text !== undefined) fs.writeFileSync(path.join(saved.dir, EXPERIMENT_COPY), p.text);
          // run.json is what the panel and the Runs view load: heatmaps too large for them stay in
          // results.json only, referenced (limitState). Rewritten atomically, like the store does.
          if (saved.record.state.kind === 'experiment') {
            const limited = limitState(saved.record.state);
            if (limited !== saved.record.state) {
              const file = path.join(saved.dir, RUN_FILE);
              fs.writeFileSync(`${file}.tmp-${process.pid}`, toJson({ ...saved.record, state: limited }));
              fs.renameSync(`${file}.tmp-${process.pid}`, file);
            }
          }
          const checks = results.results.flatMap((r) => r.checks ?? []);
          return {
            diagnostics,
            run: {
              id: saved.record.id,
              dir: saved.dir,
              cancelled: results.cancelled,
              checks: { met: checks.filter((c) => c.ok).length, total: checks.length },
              elapsedMs: results.elapsedMs,
              modelName: engine.model.cfg.model_name,
            },
          };
        });
      } catch (e) {
        if (ctx.signal.aborted || loaded) throw e;
        return { diagnostics: [...diagnostics, loadFailure(x, e, allowDownload)] };
      } finally {
        if (!kept) dest.abandon();
      }
    } finally {
      state.finished = true;
      const t = setTimeout(() => progress.get(token) === state && progress.delete(token), PROGRESS_TTL_MS);
      t.unref?.();
    }
  });

  rpc.onRequest(EngineRequests.experimentProgress, (p) => progress.get(p.token) ?? null);

  return engines;
}
