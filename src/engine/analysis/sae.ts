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
import { ActivationCache } from '../cache/activationCache.js';

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

export interface FeatureDla {
  /** Features active at the last position of some prompt, by |mean contribution|, largest first. */
  features: number[];
  /** Their mean direct contribution to the logit difference. */
  values: number[];
  /** The decoder bias's (and de-normalisation offset's) contribution, and the error term's. */
  bias: number;
  error: number;
  /** The sum of all: the SAE output's direct logit attribution (the hook's own, with the error term). */
  total: number;
}

/**
 * Direct logit attribution of each active feature at the last position: feature f contributes
 * acts[b, -1, f] · W_dec[f] (times the de-normalisation scale) to the residual stream, projected
 * like any component (ActivationCache.logitAttrs: centred for LayerNorm, divided by the cached
 * ln_final scale) onto W_U[:, correct] - W_U[:, wrong], averaged over prompts. The SAE must write
 * to a d_model hook that adds into the residual stream (attn_out, mlp_out, or the residual
 * stream itself). The SAE is spliced with its error term, so the run is the model's own.
 */
export async function featureDla(model: HookedTransformer, tokens: Tokens, sae: Sae, answers: readonly (readonly [number, number])[]): Promise<FeatureDla> {
  const cfg = model.cfg;
  const { hookOut } = checkSaeForModel(sae, cfg);
  if (sae.cfg.d_out !== cfg.d_model) throw new Error(`feature DLA needs an SAE writing d_model values; ${sae.source} writes ${sae.cfg.d_out} at ${hookOut}`);
  if (answers.length !== tokens.length) throw new Error(`feature DLA needs one [correct, wrong] pair per prompt: ${tokens.length} prompts, ${answers.length} pairs`);
  const H = (s: string) => `${hookOut}.${s}` as OutputName;
  const names: OutputName[] = [H('hook_sae_acts_post'), H('hook_sae_error'), H('hook_sae_input')];
  // ActivationCache reads the batch / position geometry from hook_resid_pre.
  names.push('blocks.0.hook_resid_pre');
  if (cfg.normalization_type !== null) names.push('ln_final.hook_scale');
  const r = await model.run(tokens, { saes: [{ sae, useErrorTerm: true }], names, noLogits: true });
  const acts = r.cache.get(H('hook_sae_acts_post'))!;
  const err = r.cache.get(H('hook_sae_error'))!;
  const x = r.cache.get(H('hook_sae_input'))!;
  const [B, P, D] = acts.dims as [number, number, number];
  const d = cfg.d_model;
  // Per prompt, the de-normalisation at the last position: out = s · recons + m.
  const s = new Float64Array(B).fill(1);
  const m = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    const row = x.data.subarray((b * P + P - 1) * d, (b * P + P) * d);
    if (sae.cfg.normalize_activations === 'layer_norm') {
      let mu = 0;
      for (const v of row) mu += v / d;
      let ss = 0;
      for (const v of row) ss += (v - mu) ** 2;
      s[b] = Math.sqrt(ss / (d - 1));
      m[b] = mu;
    } else if (sae.cfg.normalize_activations === 'constant_norm_rescale') {
      let n2 = 0;
      for (const v of row) n2 += v * v;
      s[b] = Math.sqrt(n2) / Math.sqrt(d);
    }
  }
  const active = new Set<number>();
  for (let b = 0; b < B; b++) for (let f = 0; f < D; f++) if (acts.data[(b * P + P - 1) * D + f]! > 0) active.add(f);
  const feats = [...active].sort((a, b2) => a - b2);
  // Stack [component, batch, d_model]: the features, then the bias, then the error.
  const C = feats.length + 2;
  const stack = f32([C, B, d]);
  const Wd = sae.weights.W_dec.data;
  feats.forEach((f, c) => {
    for (let b = 0; b < B; b++) {
      const a = acts.data[(b * P + P - 1) * D + f]! * s[b]!;
      for (let j = 0; j < d; j++) stack.data[(c * B + b) * d + j] = a * Wd[f * d + j]!;
    }
  });
  for (let b = 0; b < B; b++) for (let j = 0; j < d; j++) {
    stack.data[(feats.length * B + b) * d + j] = s[b]! * sae.weights.b_dec.data[j]! + m[b]!;
    stack.data[((feats.length + 1) * B + b) * d + j] = err.data[(b * P + P - 1) * d + j]!;
  }
  const cache = new ActivationCache(r.cache, cfg, model.params);
  // The stack holds the last position only; ln_final's scale is taken there too.
  const attrs = cache.logitAttrs(stack, answers.map((a) => a[0]), answers.map((a) => a[1]), { pos_slice: -1 });
  const mean = (c: number) => {
    let t = 0;
    for (let b = 0; b < B; b++) t += attrs.data[c * B + b]!;
    return t / B;
  };
  const vals = feats.map((_, c) => mean(c));
  const order = feats.map((_, i) => i).sort((i, j) => Math.abs(vals[j]!) - Math.abs(vals[i]!) || feats[i]! - feats[j]!);
  const bias = mean(feats.length), error = mean(feats.length + 1);
  return { features: order.map((i) => feats[i]!), values: order.map((i) => vals[i]!), bias, error, total: vals.reduce((a, v) => a + v, 0) + bias + error };
}
