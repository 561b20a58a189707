/**
 * Causal tracing as in ROME (Meng et al. 2022, experiments/causal_trace.py): the prompt is run
 * once clean and `samples` times with Gaussian noise added to the token embeddings of the
 * subject (hook_embed, before the positional embedding is added). Then, for every token t and
 * layer L, one hidden state of the clean run is restored in the corrupted runs and the answer's
 * probability at the last position is measured (mean over the noisy samples):
 *
 *   kind 'resid': the output of block L (blocks.L.hook_resid_post) at token t;
 *   kind 'mlp' / 'attn': hook_mlp_out / hook_attn_out at token t for a window of `window`
 *     layers around L, [max(0, L - window/2), min(n_layers, L + ceil(window/2))).
 *
 * The answer is the clean run's top prediction unless given. As in ROME the noise is drawn once
 * (a fixed seed) and reused for every restored state, so cells differ only in what is restored;
 * here that lets every cell start at the first layer it restores, from the cached noisy run,
 * and compute only the tokens from the restored one on (the earlier ones are the noisy run's:
 * their keys and values come from its cache). What the last position cannot read is not run: a
 * token before the subject (noise has not reached it) or a last-layer state at an earlier token
 * scores as the noisy run, and windows that restore the same states share one run. Results
 * are [token][layer] tables.
 */
import type { HookedTransformer } from '../model/hookedTransformer.js';
import type { HookName, OutputName } from '../hooks/hooks.js';
import type { Intervention } from '../interventions/plan.js';
import { getParam } from '../model/params.js';
import { f32, type F32 } from '../tensor/tensor.js';
import { answerProbMetric } from './metrics.js';
import { runGroups, sharedPrefix, tileBatch, type CellGroup, type SweepOptions } from './sweep.js';
import { mulberry32 } from '../tensor/mulberry32.js';

export type TraceKind = 'resid' | 'mlp' | 'attn';

export interface CausalTraceOptions extends SweepOptions {
  /** Token positions [start, end) of the subject whose embeddings are noised (BOS counted). */
  subject: [number, number];
  /** Noisy runs averaged (ROME: 10). */
  samples?: number;
  /** Standard deviation of the noise; default 3 x the standard deviation of W_E's entries (ROME: 3 x the embeddings' std). */
  noise?: number;
  /** Layers restored together for 'mlp' / 'attn' (ROME: 10). */
  window?: number;
  kinds?: readonly TraceKind[];
  /** Token whose probability is measured; default the clean top prediction. */
  answer?: number;
  seed?: number;
}

export interface CausalTraceResult {
  answer: number;
  /** Clean probability of the answer. */
  highScore: number;
  /** Probability with the subject noised and nothing restored. */
  lowScore: number;
  noise: number;
  window: number;
  subject: [number, number];
  /** scores[kind][token][layer]: probability of the answer with that state restored. */
  scores: Partial<Record<TraceKind, number[][]>>;
}

/** N(0, 1) samples (mulberry32 + Box-Muller), deterministic for a seed. */
export function gaussian(n: number, seed: number): Float32Array {
  const u = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(Math.max(u(), 1e-300)));
    const a = 2 * Math.PI * u();
    out[i] = r * Math.cos(a);
    if (i + 1 < n) out[i + 1] = r * Math.sin(a);
  }
  return out;
}

/** Standard deviation of all entries of W_E. */
export function embeddingStd(model: HookedTransformer): number {
  const w = getParam(model.params, 'embed.W_E').data;
  let s = 0, s2 = 0;
  for (const x of w) {
    s += x;
    s2 += x * x;
  }
  const m = s / w.length;
  return Math.sqrt(Math.max(0, s2 / w.length - m * m));
}

/** ROME's window of layers around `layer`. */
export function traceWindow(layer: number, window: number, nLayers: number): number[] {
  const lo = Math.max(0, layer - Math.floor(window / 2));
  const hi = Math.min(nLayers, layer + Math.ceil(window / 2));
  return Array.from({ length: hi - lo }, (_, i) => lo + i);
}

export async function causalTrace(model: HookedTransformer, tokens: readonly number[], opts: CausalTraceOptions): Promise<CausalTraceResult> {
  const cfg = model.cfg;
  const [, P] = model.checkTokens([tokens]);
  const [s0, s1] = opts.subject;
  if (!(Number.isInteger(s0) && Number.isInteger(s1) && 0 <= s0 && s0 < s1 && s1 <= P)) throw new Error(`subject [${s0}, ${s1}) must be a non-empty token range within the prompt's ${P} tokens`);
  const S = opts.samples ?? 10;
  const window = opts.window ?? 10;
  // ROME's three traces; an attention-only model has no MLP outputs to restore.
  const kinds = opts.kinds ?? (cfg.attn_only ? ['resid', 'attn'] : ['resid', 'mlp', 'attn']);
  if (cfg.attn_only && kinds.includes('mlp')) throw new Error('an attention-only model has no MLP to restore');
  const noise = opts.noise ?? 3 * embeddingStd(model);
  const n = cfg.n_layers;
  const d = cfg.d_model;

  // Clean run: the states to restore and the answer.
  const names: OutputName[] = ['hook_embed'];
  for (let l = 0; l < n; l++) {
    names.push(`blocks.${l}.hook_resid_post` as HookName, `blocks.${l}.hook_attn_out` as HookName);
    if (!cfg.attn_only) names.push(`blocks.${l}.hook_mlp_out` as HookName);
  }
  const clean = await model.run([tokens], { names });
  const V = clean.logits!.dims[2]!;
  const last = clean.logits!.data.subarray((P - 1) * V, P * V);
  let answer = opts.answer ?? 0;
  if (opts.answer === undefined) for (let v = 1; v < V; v++) if (last[v]! > last[answer]!) answer = v;
  const metric = answerProbMetric(new Array<number>(S).fill(answer));
  const highScore = answerProbMetric([answer])(clean.logits!);

  // Noisy embeddings [samples, pos, d_model]: the clean embedding plus noise on the subject.
  const embed = clean.cache.get('hook_embed')!;
  const noisy = tileBatch(embed, S);
  const z = gaussian(S * (s1 - s0) * d, opts.seed ?? 1);
  for (let s = 0; s < S; s++) for (let p = s0; p < s1; p++) for (let i = 0; i < d; i++) noisy.data[(s * P + p) * d + i]! += noise * z[(s * (s1 - s0) + p - s0) * d + i]!;
  const rows = Array.from({ length: S }, () => tokens);
  // The noisy run's residual streams (where restored runs start), and its keys and values:
  // restoring a state at token t leaves every earlier position as the noisy run has it, so
  // restored runs compute only positions t.. (SharedPrefix).
  const seq = !cfg.attn_only && !cfg.parallel_attn_mlp;
  const windowed = kinds.some((k) => k !== 'resid');
  const corrNames: OutputName[] = [];
  for (let l = 0; l < n; l++) {
    corrNames.push(`blocks.${l}.hook_resid_pre` as OutputName, `blocks.${l}.attn.hook_k` as OutputName, `blocks.${l}.attn.hook_v` as OutputName);
    if (windowed && seq) corrNames.push(`blocks.${l}.hook_resid_mid` as OutputName);
    if (windowed && cfg.parallel_attn_mlp) corrNames.push(`blocks.${l}.hook_attn_out` as OutputName, `blocks.${l}.hook_mlp_out` as OutputName);
  }
  corrNames.push(`blocks.${n - 1}.hook_resid_post` as OutputName);
  const noiseIv: Intervention = { kind: 'patch', hook: 'hook_embed', source: noisy };
  // The noisy run holds every sample at once (up to 1000): a cancel before it need not wait for it.
  opts.signal?.throwIfAborted();
  const corr = await model.run(rows, { names: corrNames, interventions: [noiseIv] });
  const lowScore = metric(corr.logits!);
  const noisyAt = (hook: string) => corr.cache.get(hook as OutputName)!;
  const residIn = (l: number) => (l < n ? noisyAt(`blocks.${l}.hook_resid_pre`) : noisyAt(`blocks.${n - 1}.hook_resid_post`));
  const cleanAt = (hook: string) => clean.cache.get(hook as OutputName)!;
  const prefix = sharedPrefix(model, 0, corr.cache);

  // One flat output, [kind, token, layer].
  const all = new Float64Array(kinds.length * P * n).fill(NaN);
  // Cells that restore nothing the last position reads are the noisy run itself: tokens before
  // the subject (the noise has not reached them, so clean and noisy states are equal there),
  // and states of the last layer at tokens before the last (no later layer reads them).
  // Cells whose window restores the same states as another cell's take its value.
  const same = new Map<number, number>();
  const firstOf = new Map<string, number>();
  /** Cells of one structure (kind and restored layers), by token. */
  const structures = new Map<string, { kind: TraceKind; layers: number[]; cells: { t: number; out: number }[] }>();
  kinds.forEach((kind, ki) => {
    for (let L = 0; L < n; L++) {
      for (let t = 0; t < P; t++) {
        const out = (ki * P + t) * n + L;
        const layers = (kind === 'resid' ? [L] : traceWindow(L, window, n)).filter((k) => k < n - 1 || t === P - 1);
        if (t < s0 || layers.length === 0) {
          all[out] = lowScore;
          continue;
        }
        const key = `${kind}:${layers.join(',')}`;
        const first = firstOf.get(`${key}:${t}`);
        if (first !== undefined) {
          same.set(out, first);
          continue;
        }
        firstOf.set(`${key}:${t}`, out);
        let st = structures.get(key);
        if (!st) structures.set(key, (st = { kind, layers, cells: [] }));
        st.cells.push({ t, out });
      }
    }
  });

  const f32add = (a: Float32Array, b: Float32Array) => Float32Array.from(a, (x, i) => x + b[i]!);
  const rowOf = (t: F32, s: number, p: number) => t.data.subarray((s * t.dims[1]! + p) * d, (s * t.dims[1]! + p + 1) * d);
  const groups: CellGroup[] = [];
  for (const { kind, layers, cells } of structures.values()) {
    cells.sort((a, b) => a.t - b.t);
    const lo = layers[0]!;
    // The first restored layer is applied to the residual stream directly, with the float32
    // additions its block makes (so the values are those of a patched forward); the others of a
    // window are patched in their blocks at token t.
    let startLayer: number;
    let fromMid = false;
    let base: F32;
    let restored: (s: number, t: number) => Float32Array;
    if (kind === 'resid') {
      startLayer = lo + 1;
      base = residIn(lo + 1);
      const src = cleanAt(`blocks.${lo}.hook_resid_post`);
      restored = (_s, t) => rowOf(src, 0, t);
    } else if (kind === 'mlp') {
      // resid_post = resid_mid + mlp_out (parallel blocks: (resid_pre + attn_out) + mlp_out).
      startLayer = lo + 1;
      base = residIn(lo + 1);
      const src = cleanAt(`blocks.${lo}.hook_mlp_out`);
      restored = seq
        ? (s, t) => f32add(rowOf(noisyAt(`blocks.${lo}.hook_resid_mid`), s, t), rowOf(src, 0, t))
        : (s, t) => f32add(f32add(rowOf(noisyAt(`blocks.${lo}.hook_resid_pre`), s, t), rowOf(noisyAt(`blocks.${lo}.hook_attn_out`), s, t)), rowOf(src, 0, t));
    } else {
      const src = cleanAt(`blocks.${lo}.hook_attn_out`);
      const pre = noisyAt(`blocks.${lo}.hook_resid_pre`);
      if (seq) {
        // resid_mid = resid_pre + attn_out; block lo then runs its MLP.
        startLayer = lo;
        fromMid = true;
        base = noisyAt(`blocks.${lo}.hook_resid_mid`);
        restored = (s, t) => f32add(rowOf(pre, s, t), rowOf(src, 0, t));
      } else {
        // Attention-only: resid_post = resid_pre + attn_out; parallel: + mlp_out, whose input (resid_pre) is unchanged.
        startLayer = lo + 1;
        base = residIn(lo + 1);
        restored = cfg.attn_only
          ? (s, t) => f32add(rowOf(pre, s, t), rowOf(src, 0, t))
          : (s, t) => f32add(f32add(rowOf(pre, s, t), rowOf(src, 0, t)), rowOf(noisyAt(`blocks.${lo}.hook_mlp_out`), s, t));
      }
    }
    const rest = layers.slice(1);
    const hook = kind === 'mlp' ? 'hook_mlp_out' : 'hook_attn_out';
    groups.push({
      cells: cells.map((c) => c.out),
      bytesPerCell: 4 * S * P * d * (1 + rest.length),
      build: (chunk) => {
        const resid = tileBatch(base, chunk.length);
        chunk.forEach((ci, c) => {
          const t = cells[ci]!.t;
          for (let s = 0; s < S; s++) resid.data.set(restored(s, t), ((c * S + s) * P + t) * d);
        });
        let interventions: Intervention[] = [];
        if (rest.length > 0) {
          // mask [cells*S, pos, 1]: row block c restores token chunk[c] at every other layer of the window.
          const mask = f32([chunk.length * S, P, 1]);
          chunk.forEach((ci, c) => {
            for (let s = 0; s < S; s++) mask.data[(c * S + s) * P + cells[ci]!.t] = 1;
          });
          interventions = rest.map((k) => ({ kind: 'patch', hook: `blocks.${k}.${hook}` as HookName, mask, source: tileBatch(cleanAt(`blocks.${k}.${hook}`), chunk.length * S) }));
        }
        return { startLayer, fromMid, residual: resid, interventions, firstChanged: cells[chunk[0]!]!.t };
      },
      firstChanged: (i) => cells[i]!.t,
    });
  }
  const result = (): CausalTraceResult => {
    same.forEach((from, to) => (all[to] = all[from]!));
    const scores: Partial<Record<TraceKind, number[][]>> = {};
    kinds.forEach((k, ki) => {
      scores[k] = Array.from({ length: P }, (_, t) => Array.from(all.subarray((ki * P + t) * n, (ki * P + t + 1) * n)));
    });
    return { answer, highScore, lowScore, noise, window, subject: [s0, s1], scores };
  };
  await runGroups(model, groups, S, P, metric, all, opts, result, prefix);
  return result();
}
