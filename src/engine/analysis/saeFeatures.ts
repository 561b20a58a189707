/**
 * What a feature dashboard shows, computed over a corpus in one streaming pass: for every feature
 * its firing density, largest and mean activation and top-activating contexts, for chosen
 * features every activation (their histogram), and a feature's logit effect (its decoder
 * direction through the unembedding). The forward stops at the SAE's input hook and the
 * activations are reduced inside onnxruntime; runs go in batches with progress and cancellation.
 */
import type { HookedTransformer } from '../model/hookedTransformer.js';
import type { HookName } from '../hooks/hooks.js';
import { checkSaeForModel, type Sae } from '../sae/sae.js';
import { saeSlot } from '../sae/graph.js';
import { buildSaeStatsGraph, STATS_FLOOR, STATS_X } from '../sae/statsGraph.js';
import { ortF32 } from '../backends/onnx/runtime.js';
import { f32, type F32 } from '../tensor/tensor.js';
import { timesUnembed, unembedDims } from '../model/unembed.js';

export interface FeatureContext {
  /** Index of the corpus row and the position in it. */
  row: number;
  pos: number;
  act: number;
}

export interface FeatureStatsOptions {
  /** Top-activating contexts kept per feature (default 20). */
  topK?: number;
  /** Rows per forward (default 8); rows of other lengths run in their own batches. */
  batch?: number;
  /** Features whose every non-zero activation is kept (for histograms). */
  keepValues?: readonly number[];
  signal?: AbortSignal;
  onProgress?: (doneTokens: number, totalTokens: number) => void;
}

export interface FeatureStats {
  tokens: number;
  d_sae: number;
  /** Per feature: fraction of tokens where it fires (> 0). */
  density: Float64Array;
  maxAct: Float32Array;
  /** Mean activation over the tokens where it fires (0 if never). */
  meanActive: Float64Array;
  /** Per feature: its top contexts, largest first. */
  top: FeatureContext[][];
  /** The kept features' non-zero activations. */
  values: Map<number, Float32Array>;
}

/**
 * Streams the corpus (token rows) through the model up to the SAE's input hook and the SAE's
 * encoder, reducing each batch inside onnxruntime (buildSaeStatsGraph): JavaScript sees per
 * feature the batch's count and sum and the few activations that can enter its top contexts.
 * The forward stops at the hook: for blocks.L.hook_resid_pre it runs blocks 0..L-1 only;
 * other hooks of block L run that block (its later nodes are wasted, not the later blocks).
 * The results are those of a plain pass over every activation: densities, maxima and top
 * contexts exactly, the means up to float64 summation order.
 */
export async function featureStats(model: HookedTransformer, sae: Sae, rows: readonly (readonly number[])[], opts: FeatureStatsOptions = {}): Promise<FeatureStats> {
  const { hookIn, hookOut } = checkSaeForModel(sae, model.cfg);
  const slot = saeSlot(sae, hookIn, hookOut, false);
  const D = sae.cfg.d_sae;
  const K = opts.topK ?? 20;
  if (!Number.isInteger(K) || K < 1) throw new Error(`topK must be a positive integer, got ${K}`);
  const batch = Math.max(1, opts.batch ?? 8);
  const total = rows.reduce((a, r) => a + r.length, 0);
  const keepList = [...new Set(opts.keepValues ?? [])];
  for (const f of keepList) if (!Number.isInteger(f) || f < 0 || f >= D) throw new Error(`feature ${f} does not exist: the SAE has features 0..${D - 1}`);
  const count = new Float64Array(D);
  const sum = new Float64Array(D);
  const maxAct = new Float32Array(D);
  // Per feature a bounded list of contexts and the smallest activation in it (when full).
  const top: FeatureContext[][] = Array.from({ length: D }, () => []);
  const floor = new Float32Array(D).fill(0);
  const keep = new Map<number, number[]>(keepList.map((f) => [f, []]));
  // Batches of equal-length rows, in corpus order within each length.
  const byLen = new Map<number, number[]>();
  rows.forEach((r, i) => {
    if (r.length === 0) return;
    const l = byLen.get(r.length);
    if (l) l.push(i);
    else byLen.set(r.length, [i]);
  });
  const hookValue = saeInputRunner(model, hookIn);
  const session = model.runtime.compile(buildSaeStatsGraph(slot, sae, { keep: keepList }));
  const fetch = ['count', 'sum', 'cand_v', 'cand_i', ...(keepList.length ? ['keep'] : [])];
  const floorFeed = ortF32(f32([D], floor));
  let done = 0;
  try {
    for (const [P, idx] of byLen) {
      for (let s = 0; s < idx.length; s += batch) {
        opts.signal?.throwIfAborted();
        const ids = idx.slice(s, s + batch);
        const x = await hookValue(ids.map((i) => rows[i]!));
        // floorFeed wraps `floor` without a copy: each batch filters by the lists as they stand.
        const out = await model.runtime.run(await session, { [STATS_X]: ortF32(x), [STATS_FLOOR]: floorFeed }, fetch);
        const c = out['count']!.data;
        const sm = float64(out['sum']!.data);
        for (let f = 0; f < D; f++) {
          count[f]! += c[f]!;
          sum[f]! += sm[f]!;
        }
        // Candidates in the order a loop over (b, p, f) would meet them, so that the lists
        // (and their ties) are what that loop keeps.
        const cv = out['cand_v']!.data;
        const ci = out['cand_i']!.data;
        const m = cv.length;
        for (let j = 0; j < m; j++) {
          const i = ci[j]!;
          const f = ci[m + j]!;
          const v = cv[j]!;
          if (v > maxAct[f]!) maxAct[f] = v;
          const row = ids[Math.floor(i / P)]!;
          const t = top[f]!;
          if (t.length < K) {
            t.push({ row, pos: i % P, act: v });
            if (t.length === K) floor[f] = minAct(t);
          } else if (v > floor[f]!) {
            // Replace the smallest.
            let q = 0;
            for (let r = 1; r < K; r++) if (t[r]!.act < t[q]!.act) q = r;
            t[q] = { row, pos: i % P, act: v };
            floor[f] = minAct(t);
          }
        }
        if (keepList.length) {
          const kv = out['keep']!.data;
          const nk = keepList.length;
          for (let bp = 0; bp < ids.length * P; bp++) {
            for (let q = 0; q < nk; q++) {
              const v = kv[bp * nk + q]!;
              if (v > 0) keep.get(keepList[q]!)!.push(v);
            }
          }
        }
        done += ids.length * P;
        opts.onProgress?.(done, total);
      }
    }
  } finally {
    await session.then((s) => s.session.release()).catch(() => undefined);
  }
  for (const t of top) t.sort((x, y) => y.act - x.act || x.row - y.row || x.pos - y.pos);
  const tokens = done;
  return {
    tokens, d_sae: D,
    density: count.map((c) => (tokens > 0 ? c / tokens : 0)),
    maxAct,
    meanActive: count.map((c, f) => (c > 0 ? sum[f]! / c : 0)),
    top,
    values: new Map([...keep].map(([f, v]) => [f, Float32Array.from(v)])),
  };
}

/**
 * The SAE input hook's value [batch, pos, d_in] for a batch of rows, from a forward that stops as
 * early as the engine can: the residual entering block L is blocks.L.hook_resid_pre; any other
 * hook is read from a run that stops after its block (or before the unembedding). Attached SAEs
 * upstream of the hook are spliced, as in any run.
 */
export function saeInputRunner(model: HookedTransformer, hookIn: HookName): (rows: readonly (readonly number[])[]) => Promise<F32> {
  const m = /^blocks\.(\d+)\.(.+)$/.exec(hookIn);
  if (m && m[2] === 'hook_resid_pre') {
    const L = Number(m[1]);
    return async (rows) => (await model.run(rows, { stopAtLayer: L, noLogits: true })).residual!;
  }
  const stop = m ? { stopAtLayer: Number(m[1]) + 1 } : hookIn.startsWith('ln_final.') ? {} : { stopAtLayer: 0 };
  return async (rows) => (await model.run(rows, { names: [hookIn], noLogits: true, ...stop })).cache.get(hookIn)!;
}

/** A float64 output of onnxruntime (the runtime types every output as float32). */
function float64(data: ArrayLike<number>): Float64Array {
  if (!(data instanceof Float64Array)) throw new Error('internal: expected a float64 output');
  return data;
}

function minAct(t: readonly FeatureContext[]): number {
  let m = Infinity;
  for (const c of t) if (c.act < m) m = c.act;
  return m;
}

/** Histogram of values in `bins` equal bins over [0, max] (counts, and the bins' left edges). */
export function histogram(values: Float32Array, bins = 32): { edges: number[]; counts: number[] } {
  let max = 0;
  for (const v of values) if (v > max) max = v;
  const w = max > 0 ? max / bins : 1;
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor(v / w))]!++;
  return { edges: Array.from({ length: bins }, (_, i) => i * w), counts };
}

/**
 * A feature's direct effect on the logits: its decoder row through the unembedding,
 * W_dec[f] @ W_U [d_vocab_out] (no final LayerNorm, as SAE dashboards show it); the k most
 * promoted and most suppressed tokens. Needs an SAE writing to a d_model hook.
 */
export function featureLogitEffect(model: HookedTransformer, sae: Sae, feature: number, k = 10): { top: { token: number; value: number }[]; bottom: { token: number; value: number }[] } {
  const { d_sae: D, d_out } = sae.cfg;
  const d = model.cfg.d_model;
  if (d_out !== d) throw new Error(`the logit effect needs an SAE writing to a d_model hook; this one writes ${d_out} values (${sae.cfg.hook_name_out})`);
  if (!Number.isInteger(feature) || feature < 0 || feature >= D) throw new Error(`feature ${feature} does not exist: the SAE has features 0..${D - 1}`);
  const [, V] = unembedDims(model.params);
  const row = sae.weights.W_dec.data.subarray(feature * d, (feature + 1) * d);
  // [d_vocab_out]; a tied W_U is read through W_E, never built whole.
  const out = timesUnembed(model.params, f32([1, d], row));
  const order = Array.from({ length: V }, (_, v) => v).sort((a, b) => out[b]! - out[a]! || a - b);
  return {
    top: order.slice(0, k).map((t) => ({ token: t, value: out[t]! })),
    bottom: order.slice(-k).reverse().map((t) => ({ token: t, value: out[t]! })),
  };
}
