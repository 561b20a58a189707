/**
 * How close a patching sweep runs to the machine's limit: the floating-point operations an exact
 * computation of the sweep cannot avoid, counted from the model's shapes and the sweep's
 * definition (necessarySweepFlops), against the fp32 peak of this machine measured with a large
 * onnxruntime MatMul in the same run (measurePeakFlops).
 *
 * What counts as unavoidable (a lower bound under these rules; FLOPs: a multiply-add is 2):
 *  - Only matrix products and attention's dot products are counted: LayerNorm, softmax, the
 *    activation function and residual additions are O(d_model) per position and left out, so the
 *    count stays below the true work.
 *  - Activations are reused per position and layer: a vector (q, k, v, z, a block's output, a
 *    residual stream) is recomputed only when something it is computed from changed; everything
 *    else comes from the clean or corrupted run. Causal attention means a cell patched at layer
 *    L, position p changes nothing before layer L and nothing at positions before p, so the
 *    downstream blocks run only at positions >= p.
 *  - The metric reads only the final position's logits: the last block computes its query,
 *    attention, output and MLP at the last position alone. Its attention costs the cheaper of two
 *    exact methods: the keys and values of the changed positions, or the query path the sweeps
 *    run (per head W_K^h q and the scores x_j . (W_K^h q) of the changed positions' normalized
 *    inputs x_j, their pattern-weighted sum times W_V^h; no keys or values formed), each with the
 *    cached keys and values of the unchanged positions. A logit difference is then one dot product
 *    of the final residual with W_U[:, answer] - W_U[:, wrong] (2·d_model per prompt): no full
 *    unembedding.
 *  - A change that enters a linear map through some of its inputs costs those inputs' columns
 *    only: a patched neuron updates mlp_out by (post_clean - post_corrupted)·W_out[neuron] (2·d_model
 *    per position: the rank-one change), a patched head's z updates attn_out through its own
 *    W_O[head] (2·d_head·d_model), and a query whose own input is unchanged recomputes only its
 *    scores against the changed keys. Nonlinear steps are not updated incrementally: after one
 *    changed key, a query's softmax weights all change, so its weighted sum of values is
 *    recomputed over all its keys.
 *  - A neuron's rank-one change also passes through the normalization of block L+1 (centring is
 *    linear, the scale one scalar per position), so that block's attention may be taken without
 *    projecting the cell's residual (the sweeps' rankOneAttention.ts): per query i, its scores
 *    over keys 0..i (2·heads·d_head each), the pattern-weighted sum of the corrupted run's
 *    per-head Av_j W_O^h (2·heads·d_model per key) and the neuron's Bv W_O^h (2·heads·d_model),
 *    plus per neuron its direction through W_Q|K|V, its dot with every prompt position's centred
 *    residual and Bv W_O^h, and once per sweep the corrupted run's xc W_Q|K|V and Av_j W_O^h. The
 *    neuron sweep counts the cheaper of this and block L+1's dense attention (both exact). The
 *    block's MLP and the later blocks are nonlinear in the change and count in full. No cheaper
 *    exact method for them is known to us; one would lower this floor.
 *  - Positions before the first token where a prompt and its corrupted prompt differ are the same
 *    in both runs at every layer (causal attention), so patching them changes nothing: such cells
 *    cost nothing for that prompt, and the runs compute that prefix once. No other coincidence
 *    of values (tokens equal at later positions, activations that happen to match) is assumed.
 *  - Each sweep also needs its two runs: the corrupted run at every position (the cells start
 *    from its residual streams, keys and values; of its last block only the keys and values) and
 *    the clean run of the positions after the shared prefix, up to the last patched layer (the
 *    patch sources).
 * Every cell is computed for each prompt of the batch.
 */
import type { HookedTransformerConfig } from '../src/engine/model/config.js';
import type { PatchSweepSpec } from '../src/engine/analysis/patching.js';
import { OnnxRuntime, ortF32 } from '../src/engine/backends/onnx/runtime.js';
import { GraphBuilder } from '../src/engine/graph/builder.js';
import { OnnxDType } from '../src/engine/graph/onnxProto.js';
import { f32 } from '../src/engine/tensor/tensor.js';
import { sharedPrefixLength } from '../src/engine/analysis/sweep.js';
import { mulberry32 } from '../src/engine/tensor/mulberry32.js';

/** The shapes the count needs (a HookedTransformerConfig has them all). */
export type FlopShapes = Pick<HookedTransformerConfig, 'n_layers' | 'd_model' | 'n_heads' | 'd_head' | 'd_mlp' | 'n_key_value_heads' | 'gated_mlp' | 'attn_only'> & { parallel_attn_mlp?: boolean };

export interface SweepFlops {
  /** The sweep's cells (layer x position, layer x head, neurons, ...). */
  cells: number;
  /** The two runs every cell starts from (see the file header). */
  runs: number;
  /** The cells' own work, summed over cells and prompts. */
  cellWork: number;
  /** runs + cellWork. */
  total: number;
}

const range = (a: number, b: number): number[] => Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);

/**
 * FLOPs an exact computation of `spec` cannot avoid on prompts of `P` positions, where prompt b
 * equals its corrupted prompt on its first `sharedPrefix[b]` positions (the batch is
 * sharedPrefix.length prompts). See the file header for what is counted.
 */
export function necessarySweepFlops(cfg: FlopShapes, spec: PatchSweepSpec, P: number, sharedPrefix: readonly number[]): SweepFlops {
  const n = cfg.n_layers, d = cfg.d_model, H = cfg.n_heads, E = cfg.d_head;
  const KV = cfg.n_key_value_heads ?? H;
  const M = cfg.attn_only || cfg.d_mlp === null ? 0 : cfg.d_mlp;
  const HE = H * E;
  const kv = (c: number) => c * 2 * d * 2 * KV * E; // k and v projections of c positions
  const qProj = 2 * d * HE;
  const oProj = 2 * HE * d;
  const mlp = 2 * d * M * (cfg.gated_mlp ? 3 : 2);
  const metric = 2 * d;

  /**
   * The last block at the last position, whose keys are changed at `c` positions (the others, m
   * = P - c, come from the cached run) and whose own query input changed or not: the cheaper of
   * two exact methods. Dense: the changed keys' k and v, the query's scores against them (or all
   * when the query changed) and its weighted sum over all keys. Query path (the sweeps' own,
   * queryPathAttention): per head W_K^h q and the scores x_j . (W_K^h q) of the changed positions'
   * normalized inputs x_j, the pattern-weighted sum of those x_j then W_V^h, the cached keys and
   * values of the other positions as they are (when the query is unchanged, W_K^h q and its scores
   * against the unchanged keys are the cached run's).
   */
  const lastBlockAttention = (c: number, ownChanged: boolean): number => {
    const m = P - c;
    const dense = kv(c) + (ownChanged ? qProj + 2 * HE * P : 2 * HE * c) + 2 * HE * P;
    const queryPath = (ownChanged ? qProj + 2 * d * HE + 2 * HE * m : 0) + 2 * d * H * c + 2 * d * H * c + 2 * d * HE + 2 * HE * m;
    return Math.min(dense, queryPath) + oProj;
  };

  /** Blocks from, with the residual entering block l0 changed at `changed` (a sorted list of positions). */
  const downstream = (l0: number, changed: number[]): number => {
    if (l0 >= n) return changed.includes(P - 1) ? metric : 0;
    const p = changed[0]!;
    let f = 0;
    for (let l = l0; l < n; l++) {
      const inChanged = l === l0 ? changed : range(p, P);
      if (l === n - 1) {
        // Only the last position's output is read (by the metric).
        f += lastBlockAttention(inChanged.length, inChanged.includes(P - 1)) + mlp;
        continue;
      }
      f += kv(inChanged.length);
      // Outputs that change and are read later: every position >= p (each attends to position p).
      for (const q of range(p, P)) {
        const own = inChanged.includes(q);
        const changedKeys = inChanged.filter((k) => k <= q).length;
        f += (own ? qProj + 2 * HE * (q + 1) : 2 * HE * changedKeys) + 2 * HE * (q + 1) + oProj + mlp;
      }
    }
    return f + metric;
  };

  /** One head's z changed at `zPos` of block L (its cost to get there already counted). */
  const afterHeadZ = (L: number, zPos: number[]): number => {
    const need = L < n - 1 ? zPos : zPos.filter((q) => q === P - 1);
    // attn_out through W_O[head] only, then the MLP of those positions (not in a parallel block).
    return need.length * (2 * E * d + (cfg.parallel_attn_mlp ? 0 : mlp)) + (L < n - 1 ? downstream(L + 1, zPos) : need.length ? metric : 0);
  };

  let cells = 0;
  let cellWork = 0;
  /** Adds one cell's work for every prompt (`perPrompt(s)`, s = that prompt's shared prefix). */
  const cell = (perPrompt: (s: number) => number) => {
    cells++;
    for (const s of sharedPrefix) cellWork += s >= P ? 0 : perPrompt(s);
  };
  let lastLayer: number;
  if (spec.kind === 'layer_pos') {
    const layers = spec.layers ?? range(0, n);
    lastLayer = Math.max(...layers);
    for (const L of layers) {
      for (let p = 0; p < P; p++) {
        cell((s) => {
          if (p < s) return 0;
          switch (spec.hook) {
            case 'resid_pre':
              return downstream(L, [p]);
            case 'attn_out':
            case 'resid_mid':
              // The block's MLP at p (when something reads its output; a parallel block's MLP
              // reads resid_pre, which is unchanged), then the next blocks.
              return (M > 0 && !cfg.parallel_attn_mlp && (L < n - 1 || p === P - 1) ? mlp : 0) + downstream(L + 1, [p]);
            case 'mlp_out':
            case 'resid_post':
              return downstream(L + 1, [p]);
          }
        });
      }
    }
  } else if (spec.kind === 'head') {
    const layers = spec.layers ?? range(0, n);
    lastLayer = Math.max(...layers);
    const byPos = spec.by === 'pos';
    for (const L of layers) {
      for (const p of byPos ? range(0, P) : [-1]) {
        for (let h = 0; h < H; h++) {
          cell((s) => {
            if (byPos && p < s) return 0;
            // Positions of the patch: one (by position) or all after the shared prefix.
            const at = byPos ? [p] : range(s, P);
            const needQ = (q: number) => L < n - 1 || q === P - 1;
            switch (spec.activation) {
              case 'z':
                return afterHeadZ(L, at);
              case 'pattern':
              case 'q': {
                // The head's queries at `at`: its weighted sums (pattern) or scores and sums (q) there.
                const zPos = at.filter(needQ);
                return zPos.reduce((a, q) => a + (spec.activation === 'q' ? 4 : 2) * E * (q + 1), 0) + afterHeadZ(L, zPos);
              }
              case 'v':
              case 'k': {
                // Changed keys or values at `at`: every query from the first of them re-weights.
                const zPos = range(at[0]!, P).filter(needQ);
                const scores = (q: number) => (spec.activation === 'k' ? 2 * E * at.filter((k) => k <= q).length : 0);
                return zPos.reduce((a, q) => a + scores(q) + 2 * E * (q + 1), 0) + afterHeadZ(L, zPos);
              }
            }
          });
        }
      }
    }
  } else {
    const L = spec.layer;
    lastLayer = L;
    const neurons = spec.neurons?.length ?? (cfg.d_mlp ?? 0);
    const KVE = KV * E;
    // Block L+1's attention from the rank-one change of its input (rankOneAttention.ts), where
    // that is cheaper than running it: per query i of a prompt, its scores over keys 0..i, the
    // pattern-weighted sum of the corrupted run's per-head Av_j W_O^h (2·heads·(i+1)·d_model) and
    // the per-neuron Bv W_O^h weighted by sum_j p_ij alpha_j / s_j (2·heads·d_model).
    const rankOneAttn = (queries: number[]) => queries.reduce((a, q) => a + 2 * HE * (q + 1) + 2 * H * (q + 1) * d + 2 * H * d, 0);
    // What block L+1 costs densely at those queries (keys changed at `at`).
    const denseAttn = (at: number[], queries: number[]) =>
      L + 1 === n - 1 ? lastBlockAttention(at.length, true) : kv(at.length) + queries.reduce((a, q) => a + qProj + 4 * HE * (q + 1) + oProj, 0);
    // Per prompt (s = its shared prefix): the rank-one change of mlp_out at every position after
    // the prefix, block L+1's attention either way, its MLP where read, the blocks after.
    const perPrompt = (s: number, attn: 'rankOne' | 'dense'): number => {
      if (s >= P) return 0;
      const at = range(s, P);
      if (L === n - 1) return 2 * d + metric;
      const queries = L + 1 < n - 1 ? at : [P - 1];
      return at.length * 2 * d + (attn === 'rankOne' ? rankOneAttn(queries) : denseAttn(at, queries)) + queries.length * mlp + (L + 1 < n - 1 ? downstream(L + 2, at) : metric);
    };
    const B = sharedPrefix.length;
    const sum = (attn: 'rankOne' | 'dense') => sharedPrefix.reduce((a, s) => a + perPrompt(s, attn), 0);
    const dense = neurons * sum('dense');
    // The rank-one way also needs, once per neuron, uc W'_Q|K|V, uc . xc of every prompt and
    // position and Bv W_O^h, and once per sweep xc W'_Q|K|V and Av_j W_O^h of every prompt and position.
    const rankOne = L < n - 1 ? neurons * (sum('rankOne') + 2 * d * (HE + 2 * KVE) + 2 * d * B * P + 2 * H * E * d) + B * P * (2 * d * (HE + 2 * KVE) + 2 * H * E * d) : Infinity;
    cells += neurons;
    cellWork += Math.min(dense, rankOne);
  }

  // The two runs: corrupted at every position, its blocks before the last in full and the last
  // one's keys and values (the cells read those; its outputs only the baseline metric, computed
  // apart); clean after the shared prefix, the blocks before the last patched layer (the
  // patched hook's own block is left out).
  const fullBlock = (positions: number[]) => kv(positions.length) + positions.reduce((a, q) => a + qProj + 4 * HE * (q + 1) + oProj + mlp, 0);
  let runs = 0;
  for (const s of sharedPrefix) runs += (n - 1) * fullBlock(range(0, P)) + kv(P) + lastLayer * fullBlock(range(Math.min(s, P), P));
  return { cells, runs, cellWork, total: runs + cellWork };
}

/**
 * The machine's fp32 peak as this engine can reach it: the best rate of a large MatMul
 * ([N, N] x [N, N], the right operand pre-packed as the engine's unembedding is) run by
 * onnxruntime with all its threads, after one warm-up run. FLOP/s.
 */
export async function measurePeakFlops(opts: { size?: number; reps?: number } = {}): Promise<{ flopsPerSecond: number; size: number; reps: number; bestMs: number }> {
  const N = opts.size ?? 2048;
  const reps = opts.reps ?? 5;
  const r = mulberry32(11);
  const rand = (k: number) => Float32Array.from({ length: k }, () => r() - 0.5);
  const g = new GraphBuilder('peak_matmul');
  const a = g.input('a', OnnxDType.FLOAT, [N, N]);
  g.op('MatMul', [a, g.weight('b', f32([N, N], rand(N * N)))], undefined, 'c');
  g.output('c', OnnxDType.FLOAT, [N, N]);
  const rt = new OnnxRuntime({ device: 'cpu' });
  const s = await rt.compile(g.build(), { arena: true });
  try {
    const feeds = { a: ortF32(f32([N, N], rand(N * N))) };
    await rt.run(s, feeds, ['c']);
    let best = Infinity;
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      await rt.run(s, feeds, ['c']);
      best = Math.min(best, performance.now() - t0);
    }
    return { flopsPerSecond: (2 * N * N * N) / (best / 1000), size: N, reps, bestMs: best };
  } finally {
    await s.session.release();
  }
}

/** The target: each sweep's necessary FLOPs per second at least this fraction of the measured peak. */
export const TARGET_PEAK_FRACTION = 0.35;

/**
 * For the patching bench: each sweep's necessary FLOPs (necessarySweepFlops, shared prefix per
 * prompt from the tokens), divided by its measured time (`out[<name>_ms]`), as a fraction of the
 * fp32 peak. The peak is measured now and compared with `peakBefore` (measured before the
 * sweeps): the better of the two is taken, so that a busy moment of the shared host does not
 * flatter the fractions.
 */
export async function sweepFlopFractions(
  cfg: FlopShapes, clean: readonly (readonly number[])[], corrupted: readonly (readonly number[])[],
  sweeps: readonly { name: string; spec: PatchSweepSpec }[], out: Readonly<Record<string, number>>, peakBefore?: { flopsPerSecond: number },
): Promise<Record<string, number>> {
  const after = await measurePeakFlops();
  const peak = Math.max(after.flopsPerSecond, peakBefore?.flopsPerSecond ?? 0);
  const P = clean[0]!.length;
  const shared = clean.map((row, b) => sharedPrefixLength([row], [corrupted[b]!]));
  const r: Record<string, number> = { peak_fp32_gflops: round3(peak / 1e9), peak_matmul_size: after.size };
  let worst = Infinity;
  for (const s of sweeps) {
    const ms = out[`${s.name}_ms`];
    if (ms === undefined) continue;
    const f = necessarySweepFlops(cfg, s.spec, P, shared);
    const rate = f.total / (ms / 1000);
    r[`${s.name}_necessary_gflop`] = round3(f.total / 1e9);
    r[`${s.name}_necessary_gflops`] = round3(rate / 1e9);
    r[`${s.name}_peak_fraction`] = round3(rate / peak);
    r[`${s.name}_peak_fraction_pass`] = rate / peak >= TARGET_PEAK_FRACTION ? 1 : 0;
    worst = Math.min(worst, rate / peak);
  }
  r['min_peak_fraction'] = round3(worst);
  r['target_peak_fraction'] = TARGET_PEAK_FRACTION;
  r['flop_fraction_pass'] = worst >= TARGET_PEAK_FRACTION ? 1 : 0;
  return r;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
