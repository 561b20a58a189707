/**
 * Attribution patching over SAE features: the linear estimate of patching one feature at one
 * position from the clean run into the corrupted run, for every feature and position at once,
 * beside exact patching of the cells it ranks highest.
 *
 * The SAE is spliced with its error term, computed from the un-edited features as SAELens does,
 * so a feature edit moves the SAE's output hook by exactly the edit's effect on the
 * reconstruction and the rest of the model is the plain model:
 *
 *   y_out = out(acts) + error,   out(acts) = s · (acts ⊙ r) @ W_dec + b_dec  (then + mu for layer_norm)
 *     s [batch, pos]: the inverse input normalisation (layer_norm: the input's std; constant_norm_rescale:
 *       |x| / sqrt(d_in); none and transcoders: 1); r [d_sae]: 1 / |W_dec[f]| with
 *       rescale_acts_by_decoder_norm, else 1
 *   d metric / d acts[b, p, f] = s[b, p] · r[f] · (W_dec[f] · g[b, p])
 *     g [batch, pos, d_out] = d metric / d y_out of the plain model on the corrupted prompts
 *     (the differentiable graph of attribution.ts, graph/autodiff.ts)
 *   estimate[p, f] = sum over prompts of (clean_acts - corrupted_acts)[b, p, f] · d metric / d acts[b, p, f]
 *
 * The metric is the mean logit difference at the last position (as attribution.ts), and every
 * value is a change of it: the estimate, and the exact change when the feature's activation at
 * that position (of every prompt) is set to its clean value in the corrupted run.
 */
import { GraphBuilder } from '../graph/builder.js';
import { addGradients } from '../graph/autodiff.js';
import { OnnxDType } from '../graph/onnxProto.js';
import { ortF32, ortI64 } from '../backends/onnx/runtime.js';
import type { HookedTransformer, Tokens } from '../model/hookedTransformer.js';
import type { OutputName, SaeHookName } from '../hooks/hooks.js';
import { emitForward, initializerParams, packQKV } from '../training/model.js';
import { checkSaeForModel, type Sae } from '../sae/sae.js';
import { isTranscoder } from '../sae/config.js';
import { logitDiffMetric } from './metrics.js';
import { f32, type F32 } from '../tensor/tensor.js';
import { tiedFactorsUsed } from '../model/unembed.js';

export interface SaeAttributionOptions {
  /** Cells (feature, position) patched exactly, largest |estimate| first (default 10; 0: none). */
  top?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export interface SaeAttributionCell {
  feature: number;
  pos: number;
  /** Mean over prompts of the feature's activation at pos, clean and corrupted. */
  cleanAct: number;
  corruptedAct: number;
  /** Estimated change of the metric (gradient x activation difference). */
  estimate: number;
  /** Change of the metric when patched (null when not patched exactly). */
  exact: number | null;
}

export interface SaeAttributionResult {
  /** Mean logit difference with the SAE spliced (error term on): clean and corrupted prompts. */
  cleanMetric: number;
  corruptedMetric: number;
  /** [pos, d_sae]: the estimated change of the metric per cell. */
  estimate: F32;
  /** [batch, pos, d_sae]: d metric / d activation on the corrupted prompts. */
  grad: F32;
  /** [batch, pos, d_sae]: feature activations of the clean and corrupted prompts. */
  cleanActs: F32;
  corruptedActs: F32;
  /** The cells patched exactly, largest |estimate| first. */
  top: SaeAttributionCell[];
}

/**
 * d metric / d features on the corrupted prompts and the features of both runs; then exact
 * patching of the `top` cells (one corrupted run each).
 */
export async function saeAttribution(model: HookedTransformer, sae: Sae, clean: Tokens, corrupted: Tokens, answers: readonly (readonly [number, number])[], opts: SaeAttributionOptions = {}): Promise<SaeAttributionResult> {
  const cfg = model.cfg;
  // The gradient graph is the plain model's: an attached SAE would be ignored.
  if (model.attachedSaes().length > 0) throw new Error(`attribution over SAE features differentiates the model without other SAEs, but SAEs are attached at ${model.attachedSaes().map((s) => s.sae.cfg.hook_name_out).join(', ')}; remove the experiment's "saes" (or use sae_ablate)`);
  const { hookOut } = checkSaeForModel(sae, cfg);
  const [B, P] = model.checkTokens(clean);
  const [B2, P2] = model.checkTokens(corrupted);
  if (B !== B2 || P !== P2) throw new Error(`clean tokens are [${B}, ${P}] but corrupted are [${B2}, ${P2}]; they must have the same shape`);
  if (answers.length !== B) throw new Error(`answers: got ${answers.length} (correct, wrong) pairs for ${B} prompts`);
  const metric = logitDiffMetric(answers);
  const D = sae.cfg.d_sae;
  const top = Math.max(0, opts.top ?? 10);
  const total = 2 + top;
  let done = 0;
  const step = () => {
    done++;
    opts.onProgress?.(done, total);
  };

  const splice = { saes: [{ sae, useErrorTerm: true }] };
  const actsName = `${hookOut}.hook_sae_acts_post` as SaeHookName;
  const inputName = `${hookOut}.hook_sae_input` as OutputName;
  const runActs = async (toks: Tokens) => {
    const r = await model.run(toks, { ...splice, names: [actsName, inputName] });
    return { acts: r.cache.get(actsName)!, input: r.cache.get(inputName)!, metric: metric(r.logits!) };
  };
  const c = await runActs(clean);
  opts.signal?.throwIfAborted();
  const x = await runActs(corrupted);
  opts.signal?.throwIfAborted();

  // g W_dec^T [batch * pos, d_sae] from the differentiable graph.
  const gw = await gradTimesDecoder(model, sae, hookOut, corrupted, answers);
  step();
  const scale = inverseNormScale(sae, x.input, B * P);
  const r = sae.cfg.rescale_acts_by_decoder_norm ? decoderNormInverse(sae) : null;
  const grad = new Float32Array(B * P * D);
  const est = new Float64Array(P * D);
  for (let bp = 0; bp < B * P; bp++) {
    const p = bp % P;
    const s = scale[bp]!;
    for (let f = 0; f < D; f++) {
      const gv = s * gw[bp * D + f]! * (r ? r[f]! : 1);
      grad[bp * D + f] = gv;
      const d = c.acts.data[bp * D + f]! - x.acts.data[bp * D + f]!;
      if (d !== 0) est[p * D + f]! += d * gv;
    }
  }
  step();

  // The cells ranked by |estimate| (ties: lower position, then lower feature), exact-patched.
  const order: number[] = [];
  for (let i = 0; i < P * D; i++) if (est[i] !== 0) order.push(i);
  order.sort((a, b) => Math.abs(est[b]!) - Math.abs(est[a]!) || a - b);
  const cells: SaeAttributionCell[] = [];
  for (const i of order.slice(0, top)) {
    opts.signal?.throwIfAborted();
    const pos = Math.floor(i / D), feature = i % D;
    // Only the last position's logits of the answers (the metric reads nothing else).
    const lp = metric.lastPosition!;
    const run = await model.run(corrupted, { ...splice, names: [], lastPositionOnly: true, vocab: lp.vocab ?? undefined, interventions: [{ kind: 'patch', hook: actsName, source: c.acts, index: { pos: [pos], d_sae: [feature] } }] });
    const last = run.logits!; // [batch, 1, K]
    const mean = (a: F32) => {
      let s = 0;
      for (let b = 0; b < B; b++) s += a.data[(b * P + pos) * D + feature]!;
      return s / B;
    };
    cells.push({ feature, pos, cleanAct: mean(c.acts), corruptedAct: mean(x.acts), estimate: est[i]!, exact: lp.score(f32([B, last.dims[2]!], last.data)) - x.metric });
    step();
  }
  while (done < total) step();
  return {
    cleanMetric: c.metric, corruptedMetric: x.metric,
    estimate: f32([P, D], Float32Array.from(est), ['pos', 'd_sae']),
    grad: f32([B, P, D], grad, ['batch', 'pos', 'd_sae']),
    cleanActs: c.acts, corruptedActs: x.acts,
    top: cells,
  };
}

/**
 * The plain model's d metric / d y at the SAE's output hook on the corrupted prompts, times W_dec^T:
 * [batch * pos, d_sae]. One graph (forward, metric, backward, then a Gemm with W_dec), compiled
 * for this call and released.
 */
async function gradTimesDecoder(model: HookedTransformer, sae: Sae, hookOut: string, tokens: Tokens, answers: readonly (readonly [number, number])[]): Promise<Float32Array> {
  const { cfg, params } = model;
  const [B, P] = [tokens.length, tokens[0]!.length];
  const { d_sae: D, d_out: dOut } = sae.cfg;
  const g = new GraphBuilder('sae_attribution');
  const tok = g.input('tokens', OnnxDType.INT64, ['batch', 'pos']);
  const lastPos = g.input('last_pos', OnnxDType.FLOAT, ['batch', 1, 'pos']);
  const ans = g.input('answers', OnnxDType.INT64, ['batch', 1, 2]);
  const fwd = emitForward(g, cfg, initializerParams(g, params, { asInput: true }), tok, {
    batch: 'batch', pos: 'pos', hooks: new Set([hookOut]), usePos: cfg.positional_embedding_type === 'standard', selectPositions: lastPos, tiedUnembed: tiedFactorsUsed(params),
    // Q/K/V packed here once (weights are zero-copy inputs: packing them in the graph would
    // redo it on every run), as attribution.ts does.
    packedQKV: (l) => {
      const p = packQKV(params, `blocks.${l}`, cfg);
      return { W: g.weight(`param:blocks.${l}.attn.W_QKV`, p.W, undefined, true), b: g.weight(`param:blocks.${l}.attn.b_QKV`, p.b, undefined, true) };
    },
  });
  if (!fwd.hooks.has(hookOut as never)) throw new Error(`attribution over SAE features needs the gradient at ${hookOut}, which the differentiable model graph does not expose; use sae_ablate on the features instead`);
  // metric [] = mean over batch of logits[b, last, correct] - logits[b, last, wrong]
  const pair = g.op('GatherElements', [fwd.logits, ans], { axis: 2 }); // [batch, 1, 2]
  const diff = g.op('ReduceSum', [g.op('Mul', [pair, g.constF([1, -1], [2])]), g.constI64([1, 2])], { keepdims: 0 }); // [batch]
  const metric = g.op('ReduceMean', [diff], { keepdims: 0 });
  const grad = addGradients(g, metric, [hookOut]).get(hookOut)!; // [batch, pos, d_out]
  const Wdec = g.weight(`sae.${sae.id}.W_dec`, sae.weights.W_dec, undefined, true); // [d_sae, d_out]
  g.op('MatMul', [g.op('Reshape', [grad, g.constI64([-1, dOut])]), g.op('Transpose', [Wdec], { perm: [1, 0] })], undefined, 'gw'); // [batch * pos, d_sae]
  g.output('gw', OnnxDType.FLOAT, ['n', D]);
  const s = await model.runtime.compile(g.build(), { arena: true });
  try {
    const sel = new Float32Array(B * P);
    for (let b = 0; b < B; b++) sel[b * P + P - 1] = 1;
    const flat = new BigInt64Array(B * P);
    tokens.forEach((row, b) => row.forEach((t, p) => (flat[b * P + p] = BigInt(t))));
    const out = await model.runtime.run(s, {
      tokens: ortI64(flat, [B, P]), last_pos: ortF32({ dims: [B, 1, P], data: sel }),
      answers: ortI64(BigInt64Array.from(answers.flatMap(([c, w]) => [BigInt(c), BigInt(w)])), [B, 1, 2]),
    }, ['gw']);
      return out['gw']!.data;
  } finally {
    await s.session.release();
  }
}

/**
 * s [batch * pos]: how the SAE's output scales its reconstruction (the inverse of its input
 * normalisation, see sae/graph.ts), from the input hook's value x [batch, pos, d_in].
 */
function inverseNormScale(sae: Sae, x: F32, n: number): Float64Array {
  const s = new Float64Array(n).fill(1);
  const norm = sae.cfg.normalize_activations;
  if (isTranscoder(sae.cfg.architecture) || (norm !== 'layer_norm' && norm !== 'constant_norm_rescale')) return s;
  const d = sae.cfg.d_in;
  for (let i = 0; i < n; i++) {
    const row = x.data.subarray(i * d, (i + 1) * d);
    // float32 as the graph computes them.
    if (norm === 'layer_norm') {
      let mu = 0;
      for (const v of row) mu += v;
      mu = Math.fround(mu / d);
      let ss = 0;
      for (const v of row) ss += (v - mu) ** 2;
      s[i] = Math.fround(Math.sqrt(ss) / Math.sqrt(d - 1));
    } else {
      let ss = 0;
      for (const v of row) ss += v * v;
      s[i] = Math.fround(Math.sqrt(ss) / Math.sqrt(d));
    }
  }
  return s;
}

/** 1 / |W_dec[f]| [d_sae] (topk's rescale_acts_by_decoder_norm divides the features by it before decoding). */
function decoderNormInverse(sae: Sae): Float32Array {
  const { d_sae: D, d_out } = sae.cfg;
  const W = sae.weights.W_dec.data;
  const out = new Float32Array(D);
  for (let f = 0; f < D; f++) {
    let s = 0;
    for (let j = 0; j < d_out; j++) s += W[f * d_out + j]! ** 2;
    out[f] = 1 / Math.sqrt(s);
  }
  return out;
}
