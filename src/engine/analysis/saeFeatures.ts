/**
 * What a feature dashboard shows, computed over a corpus in one streaming pass: for every feature
 * its firing density, largest and mean activation and top-activating contexts, for chosen
 * features every activation (their histogram), and a feature's logit effect (its decoder
 * direction through the unembedding). The forward stops after the SAE's block; runs go in
 * batches with progress and cancellation.
 */
import type { HookedTransformer } from '../model/hookedTransformer.js';
import type { OutputName } from '../hooks/hooks.js';
import { checkSaeForModel, type Sae } from '../sae/sae.js';

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

/** Streams the corpus (token rows) through the model with the SAE spliced (error term on). */
export async function featureStats(model: HookedTransformer, sae: Sae, rows: readonly (readonly number[])[], opts: FeatureStatsOptions = {}): Promise<FeatureStats> {
  const { hookOut } = checkSaeForModel(sae, model.cfg);
  const acts = `${hookOut}.hook_sae_acts_post` as OutputName;
  const layer = /^blocks\.(\d+)\./.exec(hookOut);
  const stop = layer && Number(layer[1]) + 1 < model.cfg.n_layers ? { stopAtLayer: Number(layer[1]) + 1 } : {};
  const D = sae.cfg.d_sae;
  const K = opts.topK ?? 20;
  const batch = Math.max(1, opts.batch ?? 8);
  const total = rows.reduce((a, r) => a + r.length, 0);
  const count = new Float64Array(D);
  const sum = new Float64Array(D);
  const maxAct = new Float32Array(D);
  // Per feature a bounded list of contexts and the smallest activation in it (when full).
  const top: FeatureContext[][] = Array.from({ length: D }, () => []);
  const floor = new Float32Array(D).fill(0);
  const keep = new Map<number, number[]>((opts.keepValues ?? []).map((f) => [f, []]));
  for (const f of keep.keys()) if (!Number.isInteger(f) || f < 0 || f >= D) throw new Error(`feature ${f} does not exist: the SAE has features 0..${D - 1}`);
  // Batches of equal-length rows, in corpus order within each length.
  const byLen = new Map<number, number[]>();
  rows.forEach((r, i) => {
    if (r.length === 0) return;
    const l = byLen.get(r.length);
    if (l) l.push(i);
    else byLen.set(r.length, [i]);
  });
  let done = 0;
  for (const [P, idx] of byLen) {
    for (let s = 0; s < idx.length; s += batch) {
      opts.signal?.throwIfAborted();
      const ids = idx.slice(s, s + batch);
      const r = await model.run(ids.map((i) => rows[i]!), { saes: [{ sae, useErrorTerm: true }], names: [acts], noLogits: true, ...stop });
      const a = r.cache.get(acts)!.data;
      for (let b = 0; b < ids.length; b++) {
        for (let p = 0; p < P; p++) {
          const off = (b * P + p) * D;
          for (let f = 0; f < D; f++) {
            const v = a[off + f]!;
            if (v <= 0) continue;
            count[f]!++;
            sum[f]! += v;
            if (v > maxAct[f]!) maxAct[f] = v;
            keep.get(f)?.push(v);
            const t = top[f]!;
            if (t.length < K) {
              t.push({ row: ids[b]!, pos: p, act: v });
              if (t.length === K) floor[f] = minAct(t);
            } else if (v > floor[f]!) {
              // Replace the smallest.
              let m = 0;
              for (let j = 1; j < K; j++) if (t[j]!.act < t[m]!.act) m = j;
              t[m] = { row: ids[b]!, pos: p, act: v };
              floor[f] = minAct(t);
            }
          }
        }
      }
      done += ids.length * P;
      opts.onProgress?.(done, total);
    }
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
  const WU = model.params.get('unembed.W_U');
  if (!WU) throw new Error('the model has no unembed.W_U');
  const V = WU.dims[1]!;
  const row = sae.weights.W_dec.data.subarray(feature * d, (feature + 1) * d);
  const out = new Float64Array(V);
  for (let i = 0; i < d; i++) {
    const w = row[i]!;
    if (w === 0) continue;
    const base = i * V;
    for (let v = 0; v < V; v++) out[v]! += w * WU.data[base + v]!;
  }
  const order = Array.from({ length: V }, (_, v) => v).sort((a, b) => out[b]! - out[a]! || a - b);
  return {
    top: order.slice(0, k).map((t) => ({ token: t, value: out[t]! })),
    bottom: order.slice(-k).reverse().map((t) => ({ token: t, value: out[t]! })),
  };
}
