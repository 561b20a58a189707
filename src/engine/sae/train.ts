/**
 * Training a sparse autoencoder on a model hook's activations, with the project's own trainer
 * machinery: each step is one onnxruntime run of trainGraph.ts's graph (encoder, TopK or ReLU,
 * decoder, SAELens's loss, autodiff gradients, clipping, Adam on a flat vector).
 *
 *   const acts = await collectActivations(model, 'blocks.1.hook_resid_post', rows);
 *   const t = await SaeTrainer.create(config, { d_in: 128, model_name, hook }, acts);
 *   await t.run({ onSnapshot: (s) => ..., signal });
 *   t.save('saes/blocks.1.hook_resid_post');       // SAELens's folder: cfg.json + sae_weights.safetensors
 *
 * What follows SAELens 6's trainer (SAETrainer, StandardTrainingSAE, TopKTrainingSAE):
 * initialisation (W_dec rows kaiming-uniform then scaled to decoder_init_norm 0.1, W_enc = W_decᵀ,
 * biases 0), the losses (trainGraph.ts), Adam (no weight decay) with clip_grad_norm_ 1.0, a linear
 * learning-rate warm-up, the L1 coefficient's linear warm-up, dead features (a feature is dead
 * when it has not fired for dead_feature_window steps), the feature density it saves as
 * sparsity.safetensors (log10 of the firing fraction + 1e-10), and the saved form: TopK's decoder
 * norms folded into the weights (W_dec rows unit-norm, W_enc and b_enc scaled), standard weights as
 * they are. Two differences, both settings: b_dec can start at the activations' mean
 * (b_dec_init "mean", the default here; SAELens starts at 0), which saves the first hundreds of
 * steps of learning the mean; the learning rate can decay linearly to 0 over the last
 * lr_decay_steps (SAELens's constant schedule with decay steps does the same).
 *
 * Data: the activations of the whole corpus are computed once (the forward stops after the
 * hook's block) and kept in memory, [tokens, d_in]; each step draws batch_size of them without
 * replacement, reshuffled each epoch. A held-out part of the corpus (its last rows, eval_tokens)
 * is never trained on and measures the result.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { OnnxRuntime, ortF32, ortI64, type CompiledSession } from '../backends/onnx/runtime.js';
import type { HookedTransformer } from '../model/hookedTransformer.js';
import { hookDims, requireHook, type OutputName } from '../hooks/hooks.js';
import { writeSafetensors } from '../model/safetensors.js';
import { writeFileAtomic } from '../model/tlFormat.js';
import { f32, type F32 } from '../tensor/tensor.js';
import { Rng } from '../training/rng.js';
import { stepHyper, STEP_IO } from '../training/stepGraph.js';
import { flatten, unflatten } from '../training/model.js';
import { parseSaeConfig } from './config.js';
import { featureActivations } from '../analysis/sae.js';
import { newSaeId, SAE_CFG_FILE, SAE_SPARSITY_FILE, SAE_WEIGHTS_FILE, type Sae } from './sae.js';
import { buildSaeStepGraph, saeLayout, SAE_STEP_IO, type SaeTrainArchitecture } from './trainGraph.js';

/** The SAELens release whose on-disk format the trainer writes (cfg.json's metadata.sae_lens_version). */
export const SAE_LENS_FORMAT_VERSION = '6.54.12';

export interface SaeTrainConfig {
  architecture: SaeTrainArchitecture;
  /** TransformerLens hook name, e.g. blocks.1.hook_resid_post. */
  hook: string;
  d_sae: number;
  /** TopK: features kept per token. */
  k: number;
  /** Standard: the L1 penalty's coefficient. */
  l1_coefficient: number;
  /** Standard: the coefficient rises linearly from 0 over these steps (SAELens's l1_warm_up_steps). */
  l1_warm_up_steps: number;
  /** TopK: the auxiliary (dead-latent) loss's coefficient (SAELens default 1). */
  aux_loss_coefficient: number;
  lr: number;
  betas: [number, number];
  /** Linear warm-up of the learning rate from lr / lr_warm_up_steps. */
  lr_warm_up_steps: number;
  /** Linear decay to 0 over the last lr_decay_steps. */
  lr_decay_steps: number;
  /** clip_grad_norm_ (SAELens clips at 1.0); null: none. */
  max_grad_norm: number | null;
  steps: number;
  /** Activations (tokens) per step. */
  batch_size: number;
  apply_b_dec_to_input: boolean;
  b_dec_init: 'zeros' | 'mean';
  /** Norm of each decoder row at initialisation (SAELens decoder_init_norm); null: kaiming-uniform as drawn. */
  decoder_init_norm: number | null;
  /** A feature is dead when it has not fired for this many steps. */
  dead_feature_window: number;
  seed: number;
  /** A snapshot (metrics for the panel) every this many steps. */
  log_every: number;
}

/** Defaults (SAELens 6's where it has one). */
export const SAE_TRAIN_DEFAULTS: Omit<SaeTrainConfig, 'architecture' | 'hook' | 'd_sae' | 'steps'> = {
  k: 16, l1_coefficient: 5, l1_warm_up_steps: 0, aux_loss_coefficient: 1, lr: 3e-4, betas: [0.9, 0.999],
  lr_warm_up_steps: 0, lr_decay_steps: 0, max_grad_norm: 1, batch_size: 4096, apply_b_dec_to_input: true,
  b_dec_init: 'mean', decoder_init_norm: 0.1, dead_feature_window: 1000, seed: 42, log_every: 25,
};

/** What the saved cfg.json records about the model and the data. */
export interface SaeTrainContext {
  d_in: number;
  model_name: string;
  /** Tokens per corpus row (cfg.json's context_size). */
  context_size: number;
  prepend_bos: boolean;
  /** Where the activations came from (metadata.dataset_path), e.g. the corpus file. */
  dataset: string;
}

/** Activations of a hook over a corpus, one row per token: data [tokens, d_in]. */
export interface Activations {
  data: Float32Array;
  tokens: number;
  d_in: number;
}

export class SaeTrainError extends Error {
  override name = 'SaeTrainError';
  constructor(message: string, readonly code: 'CONFIG' | 'NAN_LOSS' | 'SAVE' | 'DATA') {
    super(message);
  }
}

/** Width of a [batch, pos, d] hook, or an error saying why the hook cannot be trained on. */
export function hookWidth(model: Pick<HookedTransformer, 'cfg'>, hook: string): number {
  try {
    requireHook(hook, model.cfg);
  } catch (e) {
    throw new SaeTrainError(`hook ${hook}: ${(e as Error).message}`, 'CONFIG');
  }
  const dims = hookDims(hook as OutputName, model.cfg, 1, 1);
  if (dims.length !== 3) throw new SaeTrainError(`hook ${hook} has ${dims.length} axes; an SAE trains on a [batch, pos, d] hook (residual stream, attn_out, mlp_out, MLP neurons, normalised inputs)`, 'CONFIG');
  return dims[2] as number;
}

/**
 * The hook's activations on every token of `rows` (equal-length token rows), `batchRows` rows per
 * forward, the forward stopping after the hook's block. `skipFirst` drops each row's first
 * position (a prepended BOS, whose activations are outliers SAEs are not trained on).
 */
export async function collectActivations(model: HookedTransformer, hook: string, rows: readonly (readonly number[])[], opts: { batchRows?: number; skipFirst?: boolean; signal?: AbortSignal; onProgress?: (done: number, total: number) => void } = {}): Promise<Activations> {
  const D = hookWidth(model, hook);
  if (rows.length === 0) throw new SaeTrainError('no corpus rows to compute activations on', 'DATA');
  const P = rows[0]!.length;
  if (rows.some((r) => r.length !== P)) throw new SaeTrainError('corpus rows must have equal lengths', 'DATA');
  const skip = opts.skipFirst ? 1 : 0;
  const per = P - skip;
  const data = new Float32Array(rows.length * per * D);
  const layer = /^blocks\.(\d+)\./.exec(hook);
  const stop = layer && Number(layer[1]) + 1 < model.cfg.n_layers ? { stopAtLayer: Number(layer[1]) + 1 } : {};
  const step = Math.max(1, opts.batchRows ?? 32);
  for (let r0 = 0; r0 < rows.length; r0 += step) {
    opts.signal?.throwIfAborted();
    const batch = rows.slice(r0, r0 + step);
    const out = await model.run(batch, { names: [hook as OutputName], noLogits: true, ...stop });
    const a = out.cache.get(hook as OutputName)!; // [batch, pos, d_in]
    for (let b = 0; b < batch.length; b++) {
      data.set(a.data.subarray((b * P + skip) * D, (b + 1) * P * D), ((r0 + b) * per) * D);
    }
    opts.onProgress?.(Math.min(r0 + step, rows.length), rows.length);
  }
  return { data, tokens: rows.length * per, d_in: D };
}

/** One snapshot of a run, for the panel and the CLI. */
export interface SaeSnapshot {
  step: number;
  steps: number;
  /** Mean over the steps since the last snapshot. */
  loss: number;
  /** Σ_d (x̂ - x)² per token (SAELens's mse_loss). */
  mse: number;
  /** L1 penalty (standard) or auxiliary loss (topk). */
  auxLoss: number;
  /** Mean active features per token. */
  l0: number;
  /** 1 - Σ(x̂ - x)² / Σ(x - mean)² over the steps' batches. */
  explainedVariance: number;
  /** Features that have not fired for more than dead_feature_window steps (SAELens's sparsity/dead_features). */
  deadFeatures: number;
  lr: number;
  gradNorm: number;
  tokensPerSec: number;
  etaSec: number;
  elapsedSec: number;
}

export interface SaeRunOptions {
  onSnapshot?: (s: SaeSnapshot) => void;
  signal?: AbortSignal;
}

export interface SaeRunResult {
  status: 'completed' | 'stopped';
  step: number;
  snapshots: SaeSnapshot[];
  seconds: number;
}

function validate(c: SaeTrainConfig, dIn: number): void {
  const bad = (m: string): never => { throw new SaeTrainError(`SAE training: ${m}`, 'CONFIG'); };
  const posInt = (k: keyof SaeTrainConfig) => {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v <= 0) bad(`${k} must be a positive integer, got ${JSON.stringify(v)}`);
  };
  (['d_sae', 'steps', 'batch_size', 'dead_feature_window', 'log_every'] as const).forEach(posInt);
  if (c.architecture !== 'standard' && c.architecture !== 'topk') bad(`architecture must be "standard" or "topk", got ${JSON.stringify(c.architecture)}`);
  if (c.architecture === 'topk') {
    posInt('k');
    if (c.k > c.d_sae) bad(`k = ${c.k} is larger than d_sae = ${c.d_sae}`);
  }
  if (!(c.lr > 0) || !Number.isFinite(c.lr)) bad(`lr must be a finite number > 0, got ${c.lr}`);
  if (!(c.l1_coefficient >= 0)) bad(`l1_coefficient must be >= 0, got ${c.l1_coefficient}`);
  if (!(c.aux_loss_coefficient >= 0)) bad(`aux_loss_coefficient must be >= 0, got ${c.aux_loss_coefficient}`);
  if (c.betas.length !== 2 || c.betas.some((b) => !(b >= 0 && b < 1))) bad(`betas must be two numbers in [0, 1), got ${JSON.stringify(c.betas)}`);
  if (c.max_grad_norm !== null && !(c.max_grad_norm > 0)) bad(`max_grad_norm must be > 0 or null, got ${c.max_grad_norm}`);
  if (c.decoder_init_norm !== null && !(c.decoder_init_norm > 0)) bad(`decoder_init_norm must be > 0 or null, got ${c.decoder_init_norm}`);
  if (!(c.lr_warm_up_steps >= 0) || !(c.lr_decay_steps >= 0) || !(c.l1_warm_up_steps >= 0)) bad('warm-up and decay steps must be >= 0');
  if (c.lr_warm_up_steps + c.lr_decay_steps > c.steps) bad(`lr_warm_up_steps + lr_decay_steps (${c.lr_warm_up_steps + c.lr_decay_steps}) exceed steps (${c.steps})`);
  if (!Number.isInteger(c.seed)) bad(`seed must be an integer, got ${c.seed}`);
  if (!(dIn > 0)) bad(`d_in must be positive, got ${dIn}`);
}

/** The learning rate of step i (0-based): linear warm-up from lr / w, constant, linear decay to 0 over the last lr_decay_steps. */
export function saeLrAt(c: Pick<SaeTrainConfig, 'lr' | 'lr_warm_up_steps' | 'lr_decay_steps' | 'steps'>, i: number): number {
  let f = 1;
  const w = c.lr_warm_up_steps;
  if (w > 0 && i < w) f = w === 1 ? 1 : 1 / w + (1 - 1 / w) * (i / (w - 1));
  const d = c.lr_decay_steps;
  if (d > 0 && i >= c.steps - d) f *= (c.steps - i) / d;
  return c.lr * f;
}

/** SAELens's initialisation, seeded: W_dec [d_sae, d_in] kaiming-uniform rows scaled to decoder_init_norm, W_enc = W_decᵀ, biases 0. */
export function initSaeParams(dIn: number, dSae: number, c: Pick<SaeTrainConfig, 'decoder_init_norm' | 'seed'>): Map<string, F32> {
  const rng = new Rng(c.seed, 7);
  const bound = Math.sqrt(6 / dIn); // kaiming_uniform_ (a = 0, fan_in = d_in): gain √2 × √(3 / fan_in)
  const W_dec = new Float32Array(dSae * dIn);
  for (let i = 0; i < W_dec.length; i++) W_dec[i] = (rng.uniform() * 2 - 1) * bound;
  if (c.decoder_init_norm !== null) {
    for (let f = 0; f < dSae; f++) {
      let s = 0;
      for (let d = 0; d < dIn; d++) s += W_dec[f * dIn + d]! ** 2;
      const k = c.decoder_init_norm / Math.sqrt(s);
      for (let d = 0; d < dIn; d++) W_dec[f * dIn + d]! *= k;
    }
  }
  const W_enc = new Float32Array(dIn * dSae);
  for (let f = 0; f < dSae; f++) for (let d = 0; d < dIn; d++) W_enc[d * dSae + f] = W_dec[f * dIn + d]!;
  return new Map([
    ['W_enc', f32([dIn, dSae], W_enc, ['d_in', 'd_sae'])],
    ['b_enc', f32([dSae], undefined, ['d_sae'])],
    ['W_dec', f32([dSae, dIn], W_dec, ['d_sae', 'd_in'])],
    ['b_dec', f32([dIn], undefined, ['d_in'])],
  ]);
}

export class SaeTrainer {
  step = 0;
  readonly dIn: number;
  private flat: Float32Array;
  private m: Float32Array;
  private v: Float32Array;
  private session: CompiledSession | null = null;
  private readonly runtime: OnnxRuntime;
  private readonly rng: Rng;
  /** Order in which the current epoch draws activations. */
  private order: Uint32Array;
  private cursor = 0;
  private readonly batchX: Float32Array;
  /** Steps since each feature last fired (SAELens's n_forward_passes_since_fired). */
  readonly sinceFired: Float32Array;
  /** Tokens each feature fired on, and tokens seen (the density saved as sparsity.safetensors). */
  readonly firedTokens: Float64Array;
  tokensSeen = 0;
  private disposed = false;

  private constructor(readonly config: SaeTrainConfig, readonly context: SaeTrainContext, readonly acts: Activations, opts: { threads?: number }) {
    this.dIn = context.d_in;
    const layout = saeLayout(this.dIn, config.d_sae);
    const p = initSaeParams(this.dIn, config.d_sae, config);
    if (config.b_dec_init === 'mean') p.set('b_dec', f32([this.dIn], meanRow(acts), ['d_in']));
    this.flat = flatten(layout, p);
    this.m = new Float32Array(layout.total);
    this.v = new Float32Array(layout.total);
    this.rng = new Rng(config.seed, 1);
    this.order = this.shuffled();
    this.batchX = new Float32Array(config.batch_size * this.dIn);
    this.sinceFired = new Float32Array(config.d_sae);
    this.firedTokens = new Float64Array(config.d_sae);
    this.runtime = new OnnxRuntime({ device: 'cpu', ...(opts.threads !== undefined ? { threads: opts.threads } : {}) });
  }

  static async create(config: SaeTrainConfig, context: SaeTrainContext, acts: Activations, opts: { threads?: number } = {}): Promise<SaeTrainer> {
    validate(config, context.d_in);
    if (acts.d_in !== context.d_in) throw new SaeTrainError(`the activations have width ${acts.d_in}, but d_in is ${context.d_in}`, 'DATA');
    if (acts.tokens < config.batch_size) throw new SaeTrainError(`the corpus gives ${acts.tokens} training tokens, fewer than one batch of ${config.batch_size}; use a larger corpus or a smaller batch_size`, 'DATA');
    const t = new SaeTrainer(config, context, acts, opts);
    const graph = buildSaeStepGraph({ architecture: config.architecture, d_in: context.d_in, d_sae: config.d_sae, k: config.k, apply_b_dec_to_input: config.apply_b_dec_to_input }, { betas: config.betas, eps: 1e-8, maxGradNorm: config.max_grad_norm }, config.batch_size);
    t.session = await t.runtime.compile(graph, { arena: true });
    return t;
  }

  private shuffled(): Uint32Array {
    const n = this.acts.tokens;
    const o = new Uint32Array(n);
    for (let i = 0; i < n; i++) o[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.rng.int(0, i + 1);
      const t = o[i]!;
      o[i] = o[j]!;
      o[j] = t;
    }
    return o;
  }

  private fillBatch(): void {
    const D = this.dIn, B = this.config.batch_size;
    for (let b = 0; b < B; b++) {
      if (this.cursor >= this.order.length) {
        this.order = this.shuffled();
        this.cursor = 0;
      }
      const i = this.order[this.cursor++]!;
      this.batchX.set(this.acts.data.subarray(i * D, (i + 1) * D), b * D);
    }
  }

  /** Dead features now (SAELens's dead_neurons): not fired for more than dead_feature_window steps. */
  deadCount(): number {
    let n = 0;
    for (const s of this.sinceFired) if (s > this.config.dead_feature_window) n++;
    return n;
  }

  /** One optimizer step; returns its raw numbers. */
  async trainStep(): Promise<{ loss: number; mse: number; aux: number; fired: number; sse: number; sst: number; gradNorm: number; lr: number }> {
    if (this.disposed || !this.session) throw new Error('the SAE trainer was disposed');
    const c = this.config, S = c.d_sae, N = this.flat.length;
    this.fillBatch();
    const lr = saeLrAt(c, this.step);
    const feeds: Record<string, ReturnType<typeof ortF32>> = {
      [SAE_STEP_IO.x]: ortF32({ dims: [c.batch_size, this.dIn], data: this.batchX }),
      [STEP_IO.params]: ortF32({ dims: [N], data: this.flat }),
      [STEP_IO.m]: ortF32({ dims: [N], data: this.m }),
      [STEP_IO.v]: ortF32({ dims: [N], data: this.v }),
      [STEP_IO.hyper]: ortF32({ dims: [4], data: stepHyper(lr, 0, c.betas, this.step + 1) }),
    };
    if (c.architecture === 'topk') {
      // SAELens: dead = not fired for more than dead_feature_window steps; k_aux = min(d_in / 2, #dead), scale min(#dead / (d_in / 2), 1).
      const dead = new Float32Array(S);
      let nDead = 0;
      for (let f = 0; f < S; f++) if (this.sinceFired[f]! > c.dead_feature_window) { dead[f] = 1; nDead++; }
      const kHalf = Math.floor(this.dIn / 2);
      const kAux = Math.max(1, Math.min(kHalf, nDead));
      const scale = nDead === 0 ? 0 : Math.min(nDead / kHalf, 1);
      feeds[SAE_STEP_IO.dead] = ortF32({ dims: [S], data: dead });
      feeds[SAE_STEP_IO.kAux] = ortI64(BigInt64Array.from([BigInt(kAux)]), [1]);
      feeds[SAE_STEP_IO.coef] = ortF32({ dims: [1], data: Float32Array.from([c.aux_loss_coefficient * scale]) });
    } else {
      const w = c.l1_warm_up_steps;
      const coef = w > 0 ? c.l1_coefficient * Math.min(1, (this.step + 1) / w) : c.l1_coefficient;
      feeds[SAE_STEP_IO.coef] = ortF32({ dims: [1], data: Float32Array.from([coef]) });
    }
    const out = await this.runtime.run(this.session, feeds, [STEP_IO.loss, SAE_STEP_IO.mse, SAE_STEP_IO.aux, SAE_STEP_IO.fired, SAE_STEP_IO.sse, SAE_STEP_IO.sst, STEP_IO.gradNorm, STEP_IO.paramsOut, STEP_IO.mOut, STEP_IO.vOut]);
    const loss = out[STEP_IO.loss]!.data[0]!;
    const gradNorm = out[STEP_IO.gradNorm]!.data[0]!;
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      throw new SaeTrainError(`SAE training stopped at step ${this.step + 1}: the ${Number.isFinite(loss) ? 'gradient norm' : 'loss'} is not finite; the SAE was left at step ${this.step}. Lower lr or keep max_grad_norm set.`, 'NAN_LOSS');
    }
    this.flat = out[STEP_IO.paramsOut]!.data;
    this.m = out[STEP_IO.mOut]!.data;
    this.v = out[STEP_IO.vOut]!.data;
    const fired = out[SAE_STEP_IO.fired]!.data;
    let firedSum = 0;
    for (let f = 0; f < S; f++) {
      const n = fired[f]!;
      firedSum += n;
      this.firedTokens[f]! += n;
      this.sinceFired[f] = n > 0 ? 0 : this.sinceFired[f]! + 1;
    }
    this.tokensSeen += c.batch_size;
    this.step += 1;
    return { loss, mse: out[SAE_STEP_IO.mse]!.data[0]!, aux: out[SAE_STEP_IO.aux]!.data[0]!, fired: firedSum, sse: out[SAE_STEP_IO.sse]!.data[0]!, sst: out[SAE_STEP_IO.sst]!.data[0]!, gradNorm, lr };
  }

  /** Trains to `steps` (or until the signal aborts, after the step in progress), a snapshot every log_every steps and at the end. */
  async run(opts: SaeRunOptions = {}): Promise<SaeRunResult> {
    const c = this.config;
    const t0 = performance.now();
    const snapshots: SaeSnapshot[] = [];
    let acc = { n: 0, loss: 0, mse: 0, aux: 0, fired: 0, sse: 0, sst: 0, gradNorm: 0, lr: 0 };
    let tLast = t0;
    const startStep = this.step;
    const snap = () => {
      if (acc.n === 0) return;
      const now = performance.now();
      const s: SaeSnapshot = {
        step: this.step, steps: c.steps,
        loss: acc.loss / acc.n, mse: acc.mse / acc.n, auxLoss: acc.aux / acc.n,
        l0: acc.fired / (acc.n * c.batch_size),
        explainedVariance: acc.sst > 0 ? 1 - acc.sse / acc.sst : NaN,
        deadFeatures: this.deadCount(), lr: acc.lr, gradNorm: acc.gradNorm / acc.n,
        tokensPerSec: (acc.n * c.batch_size) / ((now - tLast) / 1000),
        etaSec: ((c.steps - this.step) * (now - t0)) / 1000 / Math.max(1, this.step - startStep),
        elapsedSec: (now - t0) / 1000,
      };
      snapshots.push(s);
      opts.onSnapshot?.(s);
      acc = { n: 0, loss: 0, mse: 0, aux: 0, fired: 0, sse: 0, sst: 0, gradNorm: 0, lr: 0 };
      tLast = now;
    };
    while (this.step < c.steps) {
      if (opts.signal?.aborted) {
        snap();
        return { status: 'stopped', step: this.step, snapshots, seconds: (performance.now() - t0) / 1000 };
      }
      const r = await this.trainStep();
      acc.n++;
      acc.loss += r.loss; acc.mse += r.mse; acc.aux += r.aux; acc.fired += r.fired; acc.sse += r.sse; acc.sst += r.sst; acc.gradNorm += r.gradNorm; acc.lr = r.lr;
      if (this.step % c.log_every === 0) snap();
    }
    snap();
    return { status: 'completed', step: this.step, snapshots, seconds: (performance.now() - t0) / 1000 };
  }

  /** The current weights as training holds them (TopK: decoder norms not folded). */
  rawParams(): Map<string, F32> {
    return unflatten(saeLayout(this.dIn, this.config.d_sae), this.flat);
  }

  /** cfg.json as SAELens 6 writes an inference SAE's (SAE.save_inference_model), with MechLens's training settings in metadata. */
  cfgJson(): Record<string, unknown> {
    const c = this.config, x = this.context;
    const cfg: Record<string, unknown> = {
      architecture: c.architecture,
      d_in: this.dIn,
      d_sae: c.d_sae,
      dtype: 'float32',
      device: 'cpu',
      apply_b_dec_to_input: c.apply_b_dec_to_input,
      normalize_activations: 'none',
      reshape_activations: 'none',
    };
    if (c.architecture === 'topk') Object.assign(cfg, { k: c.k, rescale_acts_by_decoder_norm: true });
    const { architecture: _a, hook: _h, d_sae: _d, ...training } = c;
    cfg['metadata'] = {
      sae_lens_version: SAE_LENS_FORMAT_VERSION,
      sae_lens_training_version: null,
      model_name: x.model_name,
      hook_name: c.hook,
      hook_head_index: null,
      context_size: x.context_size,
      prepend_bos: x.prepend_bos,
      dataset_path: x.dataset,
      training_architecture: c.architecture,
      training_architecture_details: c.architecture === 'topk' ? { aux_loss_coefficient: c.aux_loss_coefficient, decoder_init_norm: c.decoder_init_norm } : { l1_coefficient: c.l1_coefficient, lp_norm: 1, l1_warm_up_steps: c.l1_warm_up_steps, decoder_init_norm: c.decoder_init_norm },
      trained_by: 'MechLens',
      training: { ...training, training_steps: this.step, training_tokens: this.tokensSeen },
    };
    return cfg;
  }

  /**
   * The trained SAE as MechLens loads one (and as it is saved): TopK's decoder norms folded in
   * (b_enc × n, W_enc columns × n, W_dec rows / n, as SAELens's save does); standard as trained.
   */
  toSae(source = 'trained SAE'): Sae {
    const p = this.rawParams();
    const W_enc = p.get('W_enc')!, b_enc = p.get('b_enc')!, W_dec = p.get('W_dec')!, b_dec = p.get('b_dec')!;
    if (this.config.architecture === 'topk') foldDecoderNorms(W_enc.data, b_enc.data, W_dec.data, this.dIn, this.config.d_sae);
    const cfg = parseSaeConfig(this.cfgJson(), source);
    return { id: newSaeId(source), cfg, weights: { W_enc, b_enc, W_dec, b_dec }, sparsity: this.sparsity(), source };
  }

  /** log10 of each feature's firing fraction over the training tokens (+ 1e-10), [d_sae]. */
  sparsity(): F32 {
    const n = Math.max(1, this.tokensSeen);
    return f32([this.config.d_sae], Float32Array.from(this.firedTokens, (v) => Math.log10(v / n + 1e-10)), ['d_sae']);
  }

  /** Writes the SAE folder (cfg.json, sae_weights.safetensors, sparsity.safetensors), built aside and renamed into place. */
  save(dir: string): string {
    const sae = this.toSae(path.resolve(dir));
    writeSaeFolder(dir, sae, this.cfgJson());
    return path.resolve(dir);
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    const s = this.session;
    this.session = null;
    await s?.session.release();
  }
}

/** Mean of the activations' rows, [d_in] (b_dec_init "mean"). */
function meanRow(a: Activations): Float32Array {
  const m = new Float64Array(a.d_in);
  for (let i = 0; i < a.tokens; i++) for (let d = 0; d < a.d_in; d++) m[d]! += a.data[i * a.d_in + d]!;
  return Float32Array.from(m, (v) => v / a.tokens);
}

/** In place: n_f = ‖W_dec[f]‖ (at least 1e-8); b_enc[f] × n_f, W_enc[:, f] × n_f, W_dec[f] / n_f (SAELens's _fold_norm_topk). */
export function foldDecoderNorms(W_enc: Float32Array, b_enc: Float32Array, W_dec: Float32Array, dIn: number, dSae: number): void {
  for (let f = 0; f < dSae; f++) {
    let s = 0;
    for (let d = 0; d < dIn; d++) s += W_dec[f * dIn + d]! ** 2;
    const n = Math.max(Math.sqrt(s), 1e-8);
    b_enc[f]! *= n;
    for (let d = 0; d < dIn; d++) {
      W_dec[f * dIn + d]! /= n;
      W_enc[d * dSae + f]! *= n;
    }
  }
}

/**
 * Writes an SAE in SAELens's folder format: cfg.json (`cfg`), sae_weights.safetensors (W_enc,
 * W_dec, b_enc, b_dec, float32) and, when the SAE has it, sparsity.safetensors. Built in a
 * temporary folder beside `dir` and renamed into place, so a failure leaves an earlier SAE there
 * intact.
 */
export function writeSaeFolder(dir: string, sae: Sae, cfg: Record<string, unknown>): void {
  const final = path.resolve(dir);
  const parent = path.dirname(final);
  const tmp = path.join(parent, `.tmp-${path.basename(final)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    fs.mkdirSync(tmp, { recursive: true });
    const w = sae.weights;
    const tensors = new Map<string, F32>([['W_enc', w.W_enc], ['W_dec', w.W_dec], ['b_dec', w.b_dec]]);
    if (w.b_enc) tensors.set('b_enc', w.b_enc);
    writeSafetensors(path.join(tmp, SAE_WEIGHTS_FILE), tensors);
    if (sae.sparsity) writeSafetensors(path.join(tmp, SAE_SPARSITY_FILE), new Map([['sparsity', sae.sparsity]]));
    writeFileAtomic(path.join(tmp, SAE_CFG_FILE), JSON.stringify(cfg, null, 2) + '\n');
    if (fs.existsSync(final)) {
      const old = `${tmp}-old`;
      fs.renameSync(final, old);
      fs.renameSync(tmp, final);
      fs.rmSync(old, { recursive: true, force: true });
    } else {
      fs.renameSync(tmp, final);
    }
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    const err = e as NodeJS.ErrnoException;
    throw new SaeTrainError(`could not save the SAE in ${final}: ${err.code ?? ''} ${err.message}`.trim(), 'SAVE');
  }
}

/** How an SAE does on held-out tokens, computed by the engine with the SAE spliced in (analysis/sae.ts). */
export interface SaeEvaluation {
  tokens: number;
  /** 1 - Σ(x̂ - x)² / Σ(x - mean)², the mean taken per batch of rows (as the training metric). */
  explainedVariance: number;
  /** Mean active features per token. */
  l0: number;
  /** Σ_d (x̂ - x)² per token. */
  mse: number;
  /** Features that fired on none of these tokens. */
  neverFired: number;
}

export async function evaluateSae(model: HookedTransformer, sae: Sae, rows: readonly (readonly number[])[], opts: { batchRows?: number; signal?: AbortSignal } = {}): Promise<SaeEvaluation> {
  const step = Math.max(1, opts.batchRows ?? 32);
  const S = sae.cfg.d_sae;
  const fired = new Uint8Array(S);
  let tokens = 0, sse = 0, sst = 0, active = 0;
  for (let r0 = 0; r0 < rows.length; r0 += step) {
    opts.signal?.throwIfAborted();
    const batch = rows.slice(r0, r0 + step);
    const fa = await featureActivations(model, batch, sae);
    const n = fa.acts.data.length / S;
    const d = fa.input.dims[fa.input.dims.length - 1]!;
    const mean = new Float64Array(d);
    for (let i = 0; i < fa.input.data.length; i++) mean[i % d]! += fa.input.data[i]! / n;
    for (let i = 0; i < fa.input.data.length; i++) {
      sse += (fa.output.data[i]! - fa.input.data[i]!) ** 2;
      sst += (fa.input.data[i]! - mean[i % d]!) ** 2;
    }
    for (let i = 0; i < fa.acts.data.length; i++) if (fa.acts.data[i] !== 0) { active++; fired[i % S] = 1; }
    tokens += n;
  }
  let never = 0;
  for (const f of fired) if (!f) never++;
  return { tokens, explainedVariance: sst > 0 ? 1 - sse / sst : NaN, l0: active / Math.max(1, tokens), mse: sse / Math.max(1, tokens), neverFired: never };
}
