/**
 * Reading and editing a model through an SAE's features, on the engine's spliced SAEs
 * (src/engine/sae): feature activations per token, ablating features (zero or mean) with the
 * error term keeping everything else as it was, steering along a feature's decoder direction,
 * and greedy generation under any of these edits. Every edit is an intervention compiled into
 * the graph (HookedTransformer RunOptions.saes / interventions).
 */
import type { HookedTransformer, RunOptions, Tokens } from '../model/hookedTransformer.js';
import type { Intervention } from '../interventions/plan.js';
import type { OutputName, SaeHookName } from '../hooks/hooks.js';
import { checkSaeForModel, type Sae } from '../sae/sae.js';
import { f32, type F32 } from '../tensor/tensor.js';

/** The SAE hook `<output hook>.<suffix>` of a spliced SAE. */
export function saeHook(model: HookedTransformer, sae: Sae, suffix: 'hook_sae_acts_post' | 'hook_sae_acts_pre' | 'hook_sae_input' | 'hook_sae_recons' | 'hook_sae_output' | 'hook_sae_error'): SaeHookName {
  return `${checkSaeForModel(sae, model.cfg).hookOut}.${suffix}` as SaeHookName;
}

export interface FeatureActs {
  /** hook_sae_acts_post [batch, pos, d_sae]. */
  acts: F32;
  /** The SAE's input [batch, pos, d_in] and output without the error term, its reconstruction [batch, pos, d_out]. */
  input: F32;
  output: F32;
  /** Mean number of active features per token (L0). */
  l0: number;
  /**
   * Fraction of the variance of the output hook's activation the reconstruction explains,
   * 1 - Σ|y - ŷ|² / Σ|y - mean(y)|² over all tokens (mean over tokens per dimension). For an SAE
   * y is its input; for a transcoder the output hook's value.
   */
  explainedVariance: number;
  /** Mean squared error of the reconstruction per element. */
  mse: number;
}

/** Feature activations of an SAE on tokens (the SAE spliced with its error term: the model's run is unchanged). */
export async function featureActivations(model: HookedTransformer, tokens: Tokens, sae: Sae): Promise<FeatureActs> {
  const { hookOut } = checkSaeForModel(sae, model.cfg);
  const H = (s: string) => `${hookOut}.${s}` as OutputName;
  const r = await model.run(tokens, { saes: [{ sae, useErrorTerm: true }], names: [H('hook_sae_acts_post'), H('hook_sae_input'), H('hook_sae_recons'), H('hook_sae_error'), hookOut], noLogits: true, ...stopAfter(model, hookOut) });
  const acts = r.cache.get(H('hook_sae_acts_post'))!;
  const y = r.cache.get(hookOut)!;
  const err = r.cache.get(H('hook_sae_error'))!;
  // The SAE's output without the error term: y - error.
  const out = f32(y.dims, y.data.map((v, i) => v - err.data[i]!), y.axes);
  const D = sae.cfg.d_sae;
  const N = acts.data.length / D;
  let active = 0;
  for (const v of acts.data) if (v !== 0) active++;
  const d = y.dims[y.dims.length - 1]!;
  const mean = new Float64Array(d);
  for (let i = 0; i < y.data.length; i++) mean[i % d]! += y.data[i]! / N;
  let sse = 0, sst = 0;
  for (let i = 0; i < y.data.length; i++) {
    sse += err.data[i]! ** 2;
    sst += (y.data[i]! - mean[i % d]!) ** 2;
  }
  return { acts, input: r.cache.get(H('hook_sae_input'))!, output: out, l0: active / N, explainedVariance: sst > 0 ? 1 - sse / sst : NaN, mse: sse / y.data.length };
}

/** stopAtLayer just after the hook's block, so the forward stops at the SAE. */
function stopAfter(model: HookedTransformer, hook: string): Pick<RunOptions, 'stopAtLayer'> {
  const m = /^blocks\.(\d+)\./.exec(hook);
  return m && Number(m[1]) + 1 < model.cfg.n_layers ? { stopAtLayer: Number(m[1]) + 1 } : {};
}

/** The k most active features of each token: [batch][pos] -> [{feature, act}] (largest first, active ones only). */
export function topFeaturesPerToken(acts: F32, k: number): { feature: number; act: number }[][][] {
  const [B, P, D] = acts.dims as [number, number, number];
  const out: { feature: number; act: number }[][][] = [];
  for (let b = 0; b < B; b++) {
    const rows: { feature: number; act: number }[][] = [];
    for (let p = 0; p < P; p++) {
      const row = acts.data.subarray((b * P + p) * D, (b * P + p + 1) * D);
      const idx: number[] = [];
      for (let f = 0; f < D; f++) if (row[f]! > 0) idx.push(f);
      idx.sort((x, y) => row[y]! - row[x]! || x - y);
      rows.push(idx.slice(0, k).map((f) => ({ feature: f, act: row[f]! })));
    }
    out.push(rows);
  }
  return out;
}

export interface FeatureEdit {
  /** Features to ablate. */
  features: readonly number[];
  /** 'zero', or 'mean': each feature's mean activation over every token of `meanOver` (default: the tokens edited). */
  kind: 'zero' | 'mean';
  /** Positions to edit (negative count from the end); default all. */
  positions?: readonly number[];
  /** Tokens whose activations define the mean (mean ablation). */
  meanOver?: Tokens;
}

/** Each feature's mean activation over every token of `tokens`, [d_sae]. */
export async function featureMeans(model: HookedTransformer, tokens: Tokens, sae: Sae): Promise<Float32Array> {
  const { acts } = await featureActivations(model, tokens, sae);
  const D = sae.cfg.d_sae;
  const N = acts.data.length / D;
  const sum = new Float64Array(D);
  for (let i = 0; i < acts.data.length; i++) sum[i % D]! += acts.data[i]!;
  return Float32Array.from(sum, (s) => s / N);
}

/**
 * The interventions (and splice) that ablate features: the SAE spliced with its error term, and
 * its hook_sae_acts_post set to 0 or to the features' means at the chosen positions. Plain data,
 * for any run (logits, caches, sweeps).
 */
export async function featureAblation(model: HookedTransformer, tokens: Tokens, sae: Sae, edit: FeatureEdit): Promise<Pick<RunOptions, 'saes' | 'interventions'>> {
  const D = sae.cfg.d_sae;
  const bad = edit.features.find((f) => !Number.isInteger(f) || f < 0 || f >= D);
  if (bad !== undefined) throw new Error(`feature ${bad} does not exist: the SAE has features 0..${D - 1}`);
  if (edit.features.length === 0) throw new Error('give at least one feature to ablate');
  const hook = saeHook(model, sae, 'hook_sae_acts_post');
  const index = { d_sae: [...edit.features], ...(edit.positions ? { pos: [...edit.positions] } : {}) };
  let iv: Intervention;
  if (edit.kind === 'zero') iv = { kind: 'zero', hook, index };
  else {
    const means = await featureMeans(model, edit.meanOver ?? tokens, sae);
    const P = tokens[0]!.length;
    // 'mean' with a supplied mean of the hook's shape without batch: [pos, d_sae].
    const m = f32([P, D]);
    for (let p = 0; p < P; p++) m.data.set(means, p * D);
    iv = { kind: 'mean', over: 'supplied', mean: m, hook, index };
  }
  return { saes: [{ sae, useErrorTerm: true }], interventions: [iv] };
}

export interface Steering {
  feature: number;
  /** The multiple of the feature's decoder row added. */
  alpha: number;
  /** Positions to steer (negative count from the end); default all. */
  positions?: readonly number[];
}

/** The intervention that adds alpha × W_dec[feature] at the SAE's output hook (no splice needed). */
export function steeringIntervention(model: HookedTransformer, sae: Sae, s: Steering): Intervention {
  const { hookOut } = checkSaeForModel(sae, model.cfg);
  const { d_sae: D, d_out } = sae.cfg;
  if (!Number.isInteger(s.feature) || s.feature < 0 || s.feature >= D) throw new Error(`feature ${s.feature} does not exist: the SAE has features 0..${D - 1}`);
  if (!Number.isFinite(s.alpha)) throw new Error(`steering strength alpha must be a finite number, got ${s.alpha}`);
  const row = sae.weights.W_dec.data.subarray(s.feature * d_out, (s.feature + 1) * d_out);
  const vector = f32([d_out], row.map((v) => v * s.alpha));
  return { kind: 'add', hook: hookOut, vector, ...(s.positions ? { index: { pos: [...s.positions] } } : {}) };
}

/**
 * Greedy continuation of one prompt under the run options (SAEs, interventions): `n` new tokens,
 * each the argmax of the last position's logits, stopping early at the model's context length.
 * Interventions indexed by position keep their positions; unindexed ones cover the new tokens too.
 */
export async function greedyContinue(model: HookedTransformer, prompt: readonly number[], n: number, opts: Pick<RunOptions, 'saes' | 'interventions'> = {}, signal?: AbortSignal): Promise<number[]> {
  const row = [...prompt];
  const out: number[] = [];
  for (let i = 0; i < n && row.length < model.cfg.n_ctx; i++) {
    signal?.throwIfAborted();
    const ivs = (opts.interventions ?? []).map((iv) => (iv.kind === 'mean' && iv.over === 'supplied' ? extendMean(iv, row.length) : iv));
    const logits = await model.forward([row], { ...opts, interventions: ivs, lastPositionOnly: true });
    const V = logits.dims[2]!;
    let best = 0;
    for (let v = 1; v < V; v++) if (logits.data[v]! > logits.data[best]!) best = v;
    row.push(best);
    out.push(best);
  }
  return out;
}

/** A supplied mean of shape [pos, ...] re-tiled to `P` positions (every position holds the same mean). */
function extendMean(iv: Extract<Intervention, { kind: 'mean'; over: 'supplied' }>, P: number): Intervention {
  const [P0, ...rest] = iv.mean.dims;
  if (P0 === P) return iv;
  const per = rest.reduce((a, b) => a * b, 1);
  const m = f32([P, ...rest]);
  for (let p = 0; p < P; p++) m.data.set(iv.mean.data.subarray(0, per), p * per);
  return { ...iv, mean: m };
}
