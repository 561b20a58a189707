/**
 * Training toy transformers on the CPU (or wherever onnxruntime runs), TransformerLens-style.
 *
 *   const t = await Trainer.create(noPositionConfig({ max_steps: 4000 }), { saveDir: 'runs/no-pos' });
 *   const r = await t.run({ onProgress: (p) => ..., signal });
 *   // r.checkpoint is a model folder: loadModel(r.checkpoint) -> HookedTransformer
 *
 * Each step is one onnxruntime run of the graph from stepGraph.ts (forward, loss, backward,
 * clipping, AdamW). The trainer keeps the flat parameter / moment vectors, the data RNG and the
 * loss history; a checkpoint stores all of them, so Trainer.resume continues the very same curve.
 *
 * Settings use TransformerLens's names: the model part is a HookedTransformerConfig, the rest
 * follows HookedTransformerTrainConfig (batch_size, lr, weight_decay, max_grad_norm,
 * warmup_steps, max_steps, seed, save_every) plus torch.optim.AdamW's betas and eps.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { OnnxRuntime, ortF32, ortI64, type CompiledSession } from '../backends/onnx/runtime.js';
import { makeConfig, type ConfigInput, type HookedTransformerConfig } from '../model/config.js';
import type { Params } from '../model/params.js';
import { SafetensorsFile, writeSafetensors } from '../model/safetensors.js';
import { f32 } from '../tensor/tensor.js';
import { flatten, initParams, makeLayout, paramSpecs, unflatten, type ParamLayout } from './model.js';
import { Rng, type RngState } from './rng.js';
import { buildTrainStepGraph, stepHyper, STEP_IO } from './stepGraph.js';
import { makeTask, type Task, type TaskSpec } from './tasks.js';
import { readTransformerLensFolder, writeFileAtomic, writeTransformerLensFolder } from '../model/tlFormat.js';

export interface TrainConfig {
  /** The model, in HookedTransformerConfig field names (defaults as makeConfig's). */
  model: ConfigInput;
  task: TaskSpec;
  /**
   * Zero W_pos and never update it (the original notebook's deactivate_position: W_pos.data[:] = 0,
   * requires_grad = False). The checkpoint keeps positional_embedding_type 'standard' with W_pos = 0.
   */
  zero_pos_embed: boolean;
  max_steps: number;
  batch_size: number;
  lr: number;
  betas: [number, number];
  eps: number;
  weight_decay: number;
  /** Which parameters AdamW decays: 'all' = torch.optim.AdamW(model.parameters()) as in the seed and TransformerLens's train(); 'matrices' = W_* only. */
  decay_params: 'all' | 'matrices';
  /** torch.nn.utils.clip_grad_norm_ max norm, or null for no clipping. */
  max_grad_norm: number | null;
  /** lr multiplier min(step / warmup_steps, 1) (torch LambdaLR, step counted from 0); 0 = none. */
  warmup_steps: number;
  seed: number;
  /** Checkpoint every this many steps (and at the end); null = only at the end. */
  save_every: number | null;
  /** How many step-N checkpoints to keep in saveDir (oldest removed first). */
  keep_checkpoints: number;
}

/** The no-positional-embedding experiment: 2 layers, d_model 64, 1 head, relu, LN, no positional information. */
export function noPositionConfig(overrides: Partial<TrainConfig> = {}): TrainConfig {
  return {
    model: { n_layers: 2, d_model: 64, d_head: 64, n_heads: 1, d_mlp: 256, d_vocab: 300, n_ctx: 50, act_fn: 'relu', normalization_type: 'LN', bos_token_id: 0, model_name: 'no-pos-prev-token' },
    task: { kind: 'previous_token' },
    zero_pos_embed: true,
    max_steps: 4000,
    batch_size: 256,
    lr: 1e-4,
    betas: [0.9, 0.95],
    eps: 1e-8,
    weight_decay: 0.1,
    decay_params: 'all',
    max_grad_norm: 1.0,
    warmup_steps: 100,
    seed: 123,
    save_every: null,
    keep_checkpoints: 3,
    ...overrides,
  };
}

export interface StepInfo {
  /** Completed steps after this one (1-based). */
  step: number;
  maxSteps: number;
  loss: number;
  /** Mean loss at each position over the batch, [pos] (0 where the task scores nothing). */
  posLoss: Float32Array;
  /** Per-token loss [batch, pos] (row-major; 0 where unscored). */
  tokenLoss: Float32Array;
  gradNorm: number;
  lr: number;
  /** Wall time of this step (data + run + bookkeeping). */
  stepMs: number;
  tokensPerSec: number;
  /** Seconds to max_steps at the recent pace. */
  etaSec: number;
}

export interface TrainerOptions {
  /** Folder for checkpoints (step-000100/, ... and a `latest` pointer). */
  saveDir?: string;
  /** onnxruntime intra-op threads (default: onnxruntime's choice, all cores). */
  threads?: number;
  /** Start from these parameters instead of the seeded initialisation (fine-tuning, tests). */
  initialParams?: Params;
}

export interface RunOptions {
  onProgress?: (p: StepInfo) => void;
  signal?: AbortSignal;
  /** Stop after this many completed steps (default max_steps). */
  untilStep?: number;
  /** Save a checkpoint when cancelled (default true when there is a saveDir). */
  saveOnAbort?: boolean;
}

export interface RunResult {
  status: 'completed' | 'aborted';
  step: number;
  losses: number[];
  /** The last checkpoint written, if any. */
  checkpoint: string | null;
}

export class TrainingError extends Error {
  override name = 'TrainingError';
  constructor(message: string, readonly code: 'NAN_LOSS' | 'CHECKPOINT' | 'CONFIG' | 'RESUME') {
    super(message);
  }
}

const TRAINER_STATE = 'trainer_state.json';
const OPTIMIZER = 'optimizer.safetensors';
const LATEST = 'latest';
const STATE_VERSION = 1;

interface TrainerStateJson {
  version: number;
  step: number;
  rng: { s: RngState; spare: number | null };
  losses: number[];
  train_config: TrainConfig;
}

function validate(c: TrainConfig): void {
  const bad = (msg: string): never => { throw new TrainingError(`training config: ${msg}`, 'CONFIG'); };
  const posInt = (k: 'max_steps' | 'batch_size' | 'keep_checkpoints') => {
    if (!Number.isInteger(c[k]) || c[k] <= 0) bad(`${k} must be a positive integer, got ${JSON.stringify(c[k])}`);
  };
  posInt('max_steps');
  posInt('batch_size');
  posInt('keep_checkpoints');
  if (!(c.lr >= 0) || !Number.isFinite(c.lr)) bad(`lr must be a finite number >= 0, got ${c.lr}`);
  if (!(c.weight_decay >= 0)) bad(`weight_decay must be >= 0, got ${c.weight_decay}`);
  if (c.betas.length !== 2 || c.betas.some((b) => !(b >= 0 && b < 1))) bad(`betas must be two numbers in [0, 1), got ${JSON.stringify(c.betas)}`);
  if (!(c.eps > 0)) bad(`eps must be > 0, got ${c.eps}`);
  if (c.max_grad_norm !== null && !(c.max_grad_norm > 0)) bad(`max_grad_norm must be > 0 or null, got ${c.max_grad_norm}`);
  if (!(c.warmup_steps >= 0)) bad(`warmup_steps must be >= 0, got ${c.warmup_steps}`);
  if (c.save_every !== null && !(Number.isInteger(c.save_every) && c.save_every > 0)) bad(`save_every must be a positive integer or null, got ${c.save_every}`);
  if (!Number.isInteger(c.seed)) bad(`seed must be an integer, got ${c.seed}`);
}

/** The model config a training config implies (vocabulary from the task's tokenizer if it has one). */
function modelConfigFor(c: TrainConfig, task: Task): HookedTransformerConfig {
  const m: ConfigInput = { ...c.model };
  if (task.vocabSize !== null) {
    // A text model's vocabulary is its tokenizer's: d_vocab 0 means "take it from the tokenizer".
    if (m.d_vocab !== 0 && m.d_vocab !== task.vocabSize) {
      throw new TrainingError(`training config: d_vocab is ${m.d_vocab} but the ${task.tokenizer?.kind} tokenizer of ${(c.task as { file: string }).file} has ${task.vocabSize} tokens; set d_vocab to ${task.vocabSize} or 0`, 'CONFIG');
    }
    m.d_vocab = task.vocabSize;
    m.d_vocab_out = task.vocabSize;
    m.bos_token_id = task.tokenizer?.bosTokenId ?? null;
  }
  if (m.act_fn === 'solu_ln') throw new TrainingError('training config: act_fn solu_ln is not supported for training', 'CONFIG');
  try {
    return makeConfig(m);
  } catch (e) {
    throw new TrainingError(`training config: ${(e as Error).message}`, 'CONFIG');
  }
}

/** The trainable parameters: all of the model's, except W_pos when it is zeroed and frozen. */
function layoutFor(cfg: HookedTransformerConfig, c: TrainConfig): ParamLayout {
  return makeLayout(paramSpecs(cfg, { includePos: cfg.positional_embedding_type === 'standard' && !c.zero_pos_embed }));
}

/** Fills a BigInt64Array from int32 values without creating BigInts (low word = value, high word = sign). */
function toInt64(src: Int32Array, dst: BigInt64Array): void {
  const w = new Int32Array(dst.buffer, dst.byteOffset, dst.length * 2);
  for (let i = 0; i < src.length; i++) {
    const x = src[i]!;
    w[2 * i] = x;
    w[2 * i + 1] = x < 0 ? -1 : 0;
  }
}

export class Trainer {
  readonly cfg: HookedTransformerConfig;
  readonly layout: ParamLayout;
  /** Completed steps. */
  step = 0;
  readonly losses: number[] = [];
  private flat: Float32Array;
  private m: Float32Array;
  private v: Float32Array;
  private rng: Rng;
  private session: CompiledSession | null = null;
  private readonly runtime: OnnxRuntime;
  private readonly batch: { tokens: Int32Array; targets: Int32Array };
  private readonly feedTokens: BigInt64Array;
  private readonly feedTargets: BigInt64Array;
  private lastCheckpoint: string | null = null;
  private disposed = false;

  private constructor(readonly config: TrainConfig, readonly task: Task, readonly opts: TrainerOptions, init: { cfg: HookedTransformerConfig; params: Params; m?: Float32Array; v?: Float32Array; rng: Rng; step: number; losses: number[] }) {
    this.cfg = init.cfg;
    this.layout = layoutFor(this.cfg, config);
    this.flat = flatten(this.layout, init.params);
    this.m = init.m ?? new Float32Array(this.layout.total);
    this.v = init.v ?? new Float32Array(this.layout.total);
    this.rng = init.rng;
    this.step = init.step;
    this.losses.push(...init.losses);
    this.runtime = new OnnxRuntime({ device: 'cpu', ...(opts.threads !== undefined ? { threads: opts.threads } : {}) });
    const n = config.batch_size * this.cfg.n_ctx;
    this.batch = { tokens: new Int32Array(n), targets: new Int32Array(n) };
    this.feedTokens = new BigInt64Array(n);
    this.feedTargets = new BigInt64Array(n);
  }

  /** A fresh run: seeded TransformerLens initialisation (or opts.initialParams). */
  static async create(config: TrainConfig, opts: TrainerOptions = {}): Promise<Trainer> {
    validate(config);
    const task = makeTask(config.task);
    const cfg = modelConfigFor(config, task);
    const params = opts.initialParams ?? initParams(cfg, new Rng(config.seed, 0), { zeroPos: config.zero_pos_embed });
    const t = new Trainer(config, task, opts, { cfg, params, rng: new Rng(config.seed, 1), step: 0, losses: [] });
    if (opts.saveDir) t.checkWritable(opts.saveDir);
    await t.compile();
    return t;
  }

  /**
   * Continues a run from a checkpoint: `from` is a step-N folder or a saveDir (its `latest`).
   * `overrides` may change max_steps / save_every / keep_checkpoints (not the maths).
   */
  static async resume(from: string, opts: TrainerOptions = {}, overrides: Partial<Pick<TrainConfig, 'max_steps' | 'save_every' | 'keep_checkpoints'>> = {}): Promise<Trainer> {
    const dir = resolveCheckpoint(from);
    let state: TrainerStateJson;
    try {
      state = JSON.parse(fs.readFileSync(path.join(dir, TRAINER_STATE), 'utf8')) as TrainerStateJson;
    } catch (e) {
      throw new TrainingError(`cannot resume from ${dir}: ${TRAINER_STATE} is unreadable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); only folders written by the trainer can be resumed`, 'RESUME');
    }
    if (state.version !== STATE_VERSION) throw new TrainingError(`cannot resume from ${dir}: trainer state version ${state.version} (expected ${STATE_VERSION})`, 'RESUME');
    const config: TrainConfig = { ...state.train_config, ...overrides };
    validate(config);
    const task = makeTask(config.task);
    const cfgJson = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const { cfg, params } = readTransformerLensFolder(dir, cfgJson, typeof cfgJson['model_name'] === 'string' ? cfgJson['model_name'] : undefined);
    const opt = SafetensorsFile.open(path.join(dir, OPTIMIZER));
    let mFlat: Float32Array, vFlat: Float32Array;
    try {
      const steps = [opt.metadata['step'], state.step.toString()];
      if (steps[0] !== steps[1]) throw new TrainingError(`cannot resume from ${dir}: ${OPTIMIZER} is from step ${steps[0]} but ${TRAINER_STATE} from step ${steps[1]}`, 'RESUME');
      const read = (prefix: string) => {
        const p: Params = new Map();
        for (const name of opt.names()) if (name.startsWith(prefix)) p.set(name.slice(prefix.length), opt.readF32(name));
        return p;
      };
      const layout = layoutFor(cfg, config);
      mFlat = flatten(layout, read('exp_avg.'));
      vFlat = flatten(layout, read('exp_avg_sq.'));
    } finally {
      opt.close();
    }
    const t = new Trainer(config, task, opts, { cfg, params, m: mFlat, v: vFlat, rng: Rng.fromState(state.rng), step: state.step, losses: state.losses });
    t.lastCheckpoint = dir;
    if (opts.saveDir) t.checkWritable(opts.saveDir);
    await t.compile();
    return t;
  }

  private async compile(): Promise<void> {
    const decay = this.layout.specs.map((s) => this.config.decay_params === 'all' || s.isMatrix);
    const graph = buildTrainStepGraph(this.cfg, this.layout, { betas: this.config.betas, eps: this.config.eps, decay, maxGradNorm: this.config.max_grad_norm }, this.config.batch_size, this.cfg.n_ctx, this.layout.specs.some((s) => s.name === 'pos_embed.W_pos'));
    this.session = await this.runtime.compile(graph, { arena: true }); // one session, run every step: reuse its buffers
  }

  /** The learning rate used by step i (0-based): lr * min(i / warmup_steps, 1). */
  lrAt(i: number): number {
    const w = this.config.warmup_steps;
    return w > 0 ? this.config.lr * Math.min(i / w, 1) : this.config.lr;
  }

  /** Current parameters (copies), including a zero W_pos when it is frozen. */
  params(): Params {
    const p = unflatten(this.layout, this.flat);
    if (this.cfg.positional_embedding_type === 'standard' && !p.has('pos_embed.W_pos')) {
      p.set('pos_embed.W_pos', f32([this.cfg.n_ctx, this.cfg.d_model], undefined, ['n_ctx', 'd_model']));
    }
    // Keep TransformerLens state-dict order for readability of saved files.
    const ordered: Params = new Map();
    for (const s of paramSpecs(this.cfg, { includePos: this.cfg.positional_embedding_type === 'standard' })) ordered.set(s.name, p.get(s.name)!);
    return ordered;
  }

  /** One optimizer step. Throws TrainingError('NAN_LOSS') without changing any state when the loss or gradient is not finite. */
  async trainStep(): Promise<StepInfo> {
    if (this.disposed || !this.session) throw new Error('the trainer was disposed');
    const t0 = performance.now();
    const c = this.config;
    const B = c.batch_size, P = this.cfg.n_ctx, N = this.layout.total;
    const rngBefore = this.rng.state();
    this.task.fill(this.rng, B, P, this.cfg.d_vocab, this.batch);
    toInt64(this.batch.tokens, this.feedTokens);
    toInt64(this.batch.targets, this.feedTargets);
    const lr = this.lrAt(this.step);
    const out = await this.runtime.run(this.session, {
      [STEP_IO.tokens]: ortI64(this.feedTokens, [B, P]),
      [STEP_IO.targets]: ortI64(this.feedTargets, [B, P]),
      [STEP_IO.params]: ortF32({ dims: [N], data: this.flat }),
      [STEP_IO.m]: ortF32({ dims: [N], data: this.m }),
      [STEP_IO.v]: ortF32({ dims: [N], data: this.v }),
      [STEP_IO.hyper]: ortF32({ dims: [4], data: stepHyper(lr, c.weight_decay, c.betas, this.step + 1) }),
    }, [STEP_IO.loss, STEP_IO.gradNorm, STEP_IO.posLoss, STEP_IO.tokenLoss, STEP_IO.paramsOut, STEP_IO.mOut, STEP_IO.vOut]);
    const loss = out[STEP_IO.loss]!.data[0]!;
    const gradNorm = out[STEP_IO.gradNorm]!.data[0]!;
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      // Leave the model at the last good step; rewind the data stream so a retry sees this batch.
      this.rng = Rng.fromState(rngBefore);
      const last = this.losses.length ? `; the last finite loss was ${this.losses[this.losses.length - 1]!.toFixed(4)} at step ${this.step}` : '';
      throw new TrainingError(
        `training stopped at step ${this.step + 1}: the ${Number.isFinite(loss) ? 'gradient norm' : 'loss'} is ${Number.isFinite(loss) ? gradNorm : loss}${last}. ` +
          'The parameters were left at the last good step. Lower lr, keep max_grad_norm set, or check the data and initial weights.',
        'NAN_LOSS',
      );
    }
    this.flat = out[STEP_IO.paramsOut]!.data;
    this.m = out[STEP_IO.mOut]!.data;
    this.v = out[STEP_IO.vOut]!.data;
    this.step += 1;
    this.losses.push(loss);
    const stepMs = performance.now() - t0;
    return {
      step: this.step, maxSteps: c.max_steps, loss, gradNorm, lr,
      posLoss: out[STEP_IO.posLoss]!.data, tokenLoss: out[STEP_IO.tokenLoss]!.data,
      stepMs, tokensPerSec: (B * P) / (stepMs / 1000), etaSec: 0,
    };
  }

  /** Trains until max_steps (or untilStep), reporting every step; honours the AbortSignal between steps. */
  async run(opts: RunOptions = {}): Promise<RunResult> {
    const until = Math.min(opts.untilStep ?? this.config.max_steps, this.config.max_steps);
    const saveDir = this.opts.saveDir;
    const every = this.config.save_every;
    let emaMs: number | null = null;
    while (this.step < until) {
      if (opts.signal?.aborted) {
        if (saveDir && (opts.saveOnAbort ?? true)) this.saveCheckpoint();
        return { status: 'aborted', step: this.step, losses: [...this.losses], checkpoint: this.lastCheckpoint };
      }
      const info = await this.trainStep();
      // ETA from a moving average of step times (the first steps include warm-up costs).
      emaMs = emaMs === null ? info.stepMs : 0.9 * emaMs + 0.1 * info.stepMs;
      info.etaSec = ((until - this.step) * emaMs) / 1000;
      info.tokensPerSec = (this.config.batch_size * this.cfg.n_ctx) / (emaMs / 1000);
      opts.onProgress?.(info);
      if (saveDir && every !== null && this.step % every === 0 && this.step < until) this.saveCheckpoint();
    }
    if (saveDir) this.saveCheckpoint();
    return { status: 'completed', step: this.step, losses: [...this.losses], checkpoint: this.lastCheckpoint };
  }

  private checkWritable(dir: string): void {
    const probe = path.join(dir, `.write-test-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(probe, 'ok');
      fs.unlinkSync(probe);
    } catch (e) {
      throw new TrainingError(`the checkpoint folder ${dir} is not writable: ${describeFsError(e)}`, 'CHECKPOINT');
    }
  }

  /**
   * Writes a checkpoint: a complete model folder (loadable with loadModel) plus optimizer and
   * trainer state. Into `<saveDir>/step-NNNNNN` by default, built in a temporary folder and
   * renamed into place, then `<saveDir>/latest` is updated; a failure (disk full, permissions)
   * leaves earlier checkpoints untouched and throws TrainingError('CHECKPOINT').
   */
  saveCheckpoint(dir?: string): string {
    const saveDir = dir ?? this.opts.saveDir;
    if (!saveDir) throw new TrainingError('no checkpoint folder: pass saveDir to the trainer or a folder to saveCheckpoint', 'CHECKPOINT');
    const name = `step-${String(this.step).padStart(6, '0')}`;
    const final = path.join(saveDir, name);
    const tmp = path.join(saveDir, `.tmp-${name}-${process.pid}-${randomBytes(4).toString('hex')}`);
    let created = false;
    try {
      fs.mkdirSync(saveDir, { recursive: true });
      fs.mkdirSync(tmp);
      this.writeState(tmp);
      if (fs.existsSync(final)) {
        // Re-saving a step (e.g. after resuming): swap, so the old copy survives a failed rename.
        const old = `${tmp}-old`;
        fs.renameSync(final, old);
        fs.renameSync(tmp, final);
        fs.rmSync(old, { recursive: true, force: true });
      } else {
        fs.renameSync(tmp, final);
        created = true;
      }
      writeFileAtomic(path.join(saveDir, LATEST), `${name}\n`);
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      // A folder that `latest` could not be pointed at is withdrawn: resume must not find it.
      if (created) fs.rmSync(final, { recursive: true, force: true });
      const prev = this.lastCheckpoint ? ` The previous checkpoint ${this.lastCheckpoint} is intact.` : '';
      throw new TrainingError(`could not save the checkpoint for step ${this.step} in ${saveDir}: ${describeFsError(e)}.${prev}`, 'CHECKPOINT');
    }
    this.lastCheckpoint = final;
    this.prune(saveDir);
    return final;
  }

  private writeState(dir: string): void {
    const meta = { step: String(this.step) };
    writeTransformerLensFolder(dir, this.cfg, this.params(), { chars: this.task.chars, metadata: meta });
    // Optimizer moments under torch's state names (exp_avg, exp_avg_sq), per parameter.
    const opt = new Map<string, { dtype: 'float32'; dims: readonly number[]; data: Float32Array }>();
    const m = unflatten(this.layout, this.m), v = unflatten(this.layout, this.v);
    for (const s of this.layout.specs) {
      opt.set(`exp_avg.${s.name}`, m.get(s.name)!);
      opt.set(`exp_avg_sq.${s.name}`, v.get(s.name)!);
    }
    writeSafetensors(path.join(dir, OPTIMIZER), opt, meta);
    const state: TrainerStateJson = { version: STATE_VERSION, step: this.step, rng: this.rng.state(), losses: this.losses, train_config: this.config };
    writeFileAtomic(path.join(dir, TRAINER_STATE), JSON.stringify(state));
  }

  private prune(saveDir: string): void {
    let names: string[];
    try {
      names = fs.readdirSync(saveDir).filter((n) => /^step-\d{6,}$/.test(n)).sort();
    } catch {
      return;
    }
    for (const n of names.slice(0, Math.max(0, names.length - this.config.keep_checkpoints))) {
      fs.rmSync(path.join(saveDir, n), { recursive: true, force: true });
    }
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    const s = this.session;
    this.session = null;
    await s?.session.release();
  }
}

/** A step folder, or a saveDir whose `latest` names one. */
export function resolveCheckpoint(from: string): string {
  const abs = path.resolve(from);
  if (fs.existsSync(path.join(abs, TRAINER_STATE))) return abs;
  const latest = path.join(abs, LATEST);
  if (fs.existsSync(latest)) {
    const name = fs.readFileSync(latest, 'utf8').trim();
    if (!/^step-\d+$/.test(name)) throw new TrainingError(`${latest} does not name a checkpoint (got ${JSON.stringify(name)})`, 'RESUME');
    return path.join(abs, name);
  }
  throw new TrainingError(`${abs} is not a training checkpoint: it has neither ${TRAINER_STATE} nor a ${LATEST} file`, 'RESUME');
}

function describeFsError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const hints: Record<string, string> = {
    ENOSPC: 'no space left on the device',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    EROFS: 'read-only file system',
    ENOTDIR: 'a part of the path is a file, not a folder',
    EDQUOT: 'disk quota exceeded',
  };
  const code = err?.code;
  return code ? `${code} (${hints[code] ?? err.message})` : String(err?.message ?? e);
}

/** Convenience: a whole run. */
export async function train(config: TrainConfig, opts: TrainerOptions & RunOptions = {}): Promise<RunResult & { params: Params; cfg: HookedTransformerConfig }> {
  const t = await Trainer.create(config, opts);
  try {
    const r = await t.run(opts);
    return { ...r, params: t.params(), cfg: t.cfg };
  } finally {
    await t.dispose();
  }
}
