/**
 * The machinery shared by every exact batched sweep (activation patching, path patching,
 * causal tracing): many patched variants of one run are stacked along the batch
 * axis (cell c occupies rows [c*B, (c+1)*B)), start at the first layer they change from a
 * cached residual stream, and are scored by the metric from the last-position logits it reads.
 * Results are the same numbers a one-forward-per-cell loop gives (tests check 1e-5 on the fixture).
 */
import { buildMask, type HookedTransformer, type Tokens } from '../model/hookedTransformer.js';
import { prefixHookOk } from '../graph/segments.js';
import type { Intervention } from '../interventions/plan.js';
import { f32, type F32 } from '../tensor/tensor.js';
import type { Metric } from './metrics.js';

export interface SweepOptions {
  /** Checked between batches; on abort the sweep throws SweepAbortedError carrying the partial result. */
  signal?: AbortSignal;
  /** Called after every batch with the number of cells done and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Batch rows per run (cells x prompts). Default: about 4096 token positions per run. */
  maxBatchRows?: number;
  /** Upper bound on the bytes of one run's inputs (tiled residuals, masks, patch sources). Default 256 MB. */
  maxBatchBytes?: number;
  /** Recompute the positions shared by clean and corrupted prompts too (for tests and timing). */
  noPrefix?: boolean;
  /** Run the first block the cells change in full (neuron sweeps: not its attention from the rank-one change, rankOneAttention.ts; head sweeps: not from the cached corrupted q, k, v), for tests and timing. */
  noRankOne?: boolean;
  /** Run every group's chunks on their own instead of joining cells of several layers (runJoined), for tests and timing. */
  noJoin?: boolean;
  /**
   * Called before every run with its cells, batch rows and the layer it starts at (benchmarks
   * print them, so a sweep whose batches shrink or whose runs start early shows why it is slow).
   */
  onRun?: (run: { cells: number; rows: number; startLayer: number }) => void;
}

/** Thrown when a sweep is cancelled; `partial` holds the cells computed so far (NaN elsewhere). */
export class SweepAbortedError<T = unknown> extends Error {
  override name = 'AbortError';
  constructor(readonly partial: T) {
    super('cancelled');
  }
}

/** One batched run of `cells` patched variants of a B-prompt batch. */
export interface CellRun {
  /** First layer that runs; the residual enters it (n_layers: only ln_final and the unembedding). */
  startLayer: number;
  /** The residual is blocks.startLayer.hook_resid_mid (block startLayer runs only its MLP). */
  fromMid?: boolean;
  /** [cells * B, pos, d_model] (absent with midAt) */
  residual?: F32;
  interventions: Intervention[];
  /**
   * Every position before this one is the cached run's in every cell of the run (a causal model:
   * a patch at position p changes nothing before p), so with a cached prefix only the positions
   * from here on are computed.
   */
  firstChanged?: number;
  /**
   * The start block's hook_q / hook_k / hook_v for positions [from, pos) (RunOptions.qkv), when
   * the cells know them without running ln1 and the projections.
   */
  qkv?: (from: number) => Promise<{ q: F32; k: F32; v: F32 }>;
  /**
   * Instead of `residual`: the cells know block startLayer's hook_resid_mid without running its
   * attention (neuron sweeps, rankOneAttention.ts) and give it for positions [from, positions)
   * on demand; the run starts at that block's MLP.
   */
  midAt?: { rows: number; positions: number; at(from: number): Promise<F32> };
}

/** Repeats a tensor [B, ...] n times along the batch axis -> [n*B, ...]. */
export function tileBatch(t: F32, n: number): F32 {
  const out = new Float32Array(t.data.length * n);
  for (let i = 0; i < n; i++) out.set(t.data, i * t.data.length);
  return f32([t.dims[0]! * n, ...t.dims.slice(1)], out);
}

/**
 * The keys and values of a cached run (the corrupted run of a patching sweep, the noisy run of
 * causal tracing), so that a patched run reuses them for the positions it does not change and
 * computes only the later ones. `length` positions are unchanged in every run (up to the first
 * token where clean and corrupted differ); a run may declare more (CellRun.firstChanged).
 */
export interface SharedPrefix {
  length: number;
  /** blocks.l.attn.hook_k / hook_v of the cached run, every position: [batch, pos, head_index, d_head]. */
  keys: F32[];
  values: F32[];
  /** The last slice taken ([0, p) of every layer), reused while runs start at the same position. */
  slice?: { at: number; keys: F32[]; values: F32[] };
}

/** Number of leading positions where every clean row equals its corrupted row. */
export function sharedPrefixLength(clean: Tokens, corrupted: Tokens): number {
  const P = clean[0]!.length;
  let n = P;
  clean.forEach((row, b) => {
    let p = 0;
    while (p < n && row[p] === corrupted[b]![p]) p++;
    n = p;
  });
  return n;
}

/** The cached keys and values of a run's cache of every layer's hook_k / hook_v (null if they are not all there). */
export function sharedPrefix(model: HookedTransformer, length: number, cache: ReadonlyMap<string, F32>): SharedPrefix | null {
  const keys: F32[] = [];
  const values: F32[] = [];
  for (let l = 0; l < model.cfg.n_layers; l++) {
    for (const [which, list] of [['k', keys], ['v', values]] as const) {
      const t = cache.get(`blocks.${l}.attn.hook_${which}`);
      if (!t) return null;
      list.push(t);
    }
  }
  return { length, keys, values };
}

/** t [batch, pos, ...] -> positions [from, to). */
export function slicePositions(t: F32, from: number, to: number): F32 {
  const [B, P] = t.dims as [number, number];
  if (from === 0 && to === P) return t;
  const inner = t.dims.slice(2).reduce((a, b) => a * b, 1);
  const out = new Float32Array(B * (to - from) * inner);
  for (let b = 0; b < B; b++) out.set(t.data.subarray((b * P + from) * inner, (b * P + to) * inner), b * (to - from) * inner);
  return f32([B, to - from, ...t.dims.slice(2)], out);
}

/** The prefix's keys and values of positions [0, at) of every layer. */
function prefixSlice(prefix: SharedPrefix, at: number): { keys: F32[]; values: F32[] } {
  if (prefix.slice?.at !== at) prefix.slice = { at, keys: prefix.keys.map((t) => slicePositions(t, 0, at)), values: prefix.values.map((t) => slicePositions(t, 0, at)) };
  return prefix.slice;
}

/** An intervention restricted to positions [from, P) of its hook (pos is axis 1 of every hook prefixHookOk accepts). */
function interventionFrom(model: HookedTransformer, iv: Intervention, rows: number, P: number, from: number): Intervention {
  const mask = iv.mask ?? buildMask(iv.hook, iv.index, model.cfg, rows, P);
  const cut = (t: F32) => (t.dims[1] === P ? slicePositions(t, from, P) : t);
  const out = { ...iv, mask: cut(mask) } as Intervention;
  delete (out as { index?: unknown }).index;
  if (out.kind === 'patch') out.source = cut(out.source);
  if (out.kind === 'mean' && out.over === 'supplied' && out.mean.dims[0] === P) {
    const m = slicePositions(f32([1, ...out.mean.dims], out.mean.data), from, P);
    out.mean = f32(m.dims.slice(1), m.data);
  }
  return out;
}

/**
 * Runs a batch of cells and scores each: metric of rows [c*B, (c+1)*B). Uses the metric's
 * last-position reader when it has one (logits of its tokens at the last position only), and
 * the cached prefix when given: positions before the run's first changed one (at least the
 * shared prefix) are not recomputed. Interventions act on the computed positions only; one at
 * the attention pattern or scores (whose key axis spans the prefix) runs its block in full first.
 */
export async function scoreCells(model: HookedTransformer, run: CellRun, cells: number, B: number, metric: Metric, prefix: SharedPrefix | null = null): Promise<number[]> {
  const lp = metric.lastPosition;
  const n = model.cfg.n_layers;
  const last = { lastPositionOnly: lp !== undefined, vocab: lp?.vocab ?? undefined };
  if (run.midAt) return scoreCellsFromMid(model, run.startLayer, run.midAt, cells, B, metric, prefix);
  if (!run.residual) throw new Error('scoreCells: a run needs its residual or midAt');
  const residual = run.residual;
  const rows = residual.dims[0]!;
  const P = residual.dims[1]!;
  const at = prefix ? Math.min(P - 1, Math.max(prefix.length, run.firstChanged ?? 0)) : 0;
  const startBlock = `blocks.${run.startLayer}.`;
  let r: Awaited<ReturnType<HookedTransformer['run']>>;
  // Only with a last-position metric (a prefix run has no logits for the prefix positions).
  if (prefix && at > 0 && lp !== undefined && run.startLayer < n && run.interventions.every((iv) => prefixHookOk(iv.hook))) {
    const interventions = run.interventions.map((iv) => interventionFrom(model, iv, rows, P, at));
    const qkv = run.qkv ? { qkv: await run.qkv(at) } : {};
    r = await model.run(null, { residual: slicePositions(residual, at, P), startAtLayer: run.startLayer, startAtResidMid: run.fromMid, interventions, prefix: prefixSlice(prefix, at), names: [], ...qkv, ...last });
  } else if (prefix && at > 0 && lp !== undefined && run.startLayer + 1 < n && run.interventions.every((iv) => iv.hook.startsWith(startBlock))) {
    // The intervened block runs on every position (its pattern hooks cover them all), the rest
    // from the cached prefix.
    const qkv = run.qkv ? { qkv: await run.qkv(0) } : {};
    const resid = (await model.run(null, { residual, startAtLayer: run.startLayer, startAtResidMid: run.fromMid, interventions: run.interventions, stopAtLayer: run.startLayer + 1, names: [], ...qkv })).residual!;
    r = await model.run(null, { residual: slicePositions(resid, at, P), startAtLayer: run.startLayer + 1, prefix: prefixSlice(prefix, at), names: [], ...last });
  } else {
    const qkv = run.qkv && run.startLayer < n ? { qkv: await run.qkv(0) } : {};
    r = await model.run(null, { residual, startAtLayer: run.startLayer, startAtResidMid: run.fromMid, interventions: run.interventions, names: [], ...qkv, ...last });
  }
  return scoreLogits(r.logits!, cells, B, metric);
}

/** The metric of each cell's rows [c*B, (c+1)*B) of logits [cells * B, pos, vocab]. */
function scoreLogits(logits: F32, cells: number, B: number, metric: Metric): number[] {
  const lp = metric.lastPosition;
  const [, Pl, V] = logits.dims as [number, number, number];
  const out: number[] = [];
  for (let c = 0; c < cells; c++) {
    const k = B * Pl * V;
    const view = logits.data.subarray(c * k, (c + 1) * k);
    out.push(lp ? lp.score(f32([B, V], view)) : metric(f32([B, Pl, V], view)));
  }
  return out;
}

/**
 * Cells that start at block L's MLP from a resid_mid they compute themselves (CellRun.midAt):
 * with a last-position metric only the positions after the prefix (the later blocks read the
 * prefix's keys and values), and when L is the last block only the last position.
 */
async function scoreCellsFromMid(model: HookedTransformer, L: number, mid: NonNullable<CellRun['midAt']>, cells: number, B: number, metric: Metric, prefix: SharedPrefix | null): Promise<number[]> {
  const lp = metric.lastPosition;
  const n = model.cfg.n_layers;
  const P = mid.positions;
  const last = { lastPositionOnly: lp !== undefined, vocab: lp?.vocab ?? undefined };
  let r: Awaited<ReturnType<HookedTransformer['run']>>;
  if (lp !== undefined && L === n - 1) {
    // The last block from its resid_mid runs only its MLP, position by position.
    r = await model.run(null, { residual: await mid.at(P - 1), startAtLayer: L, startAtResidMid: true, names: [], ...last });
  } else if (lp !== undefined && prefix && prefix.length > 0) {
    const at = Math.min(P - 1, prefix.length);
    r = await model.run(null, { residual: await mid.at(at), startAtLayer: L, startAtResidMid: true, prefix: prefixSlice(prefix, at), names: [], ...last });
  } else {
    r = await model.run(null, { residual: await mid.at(0), startAtLayer: L, startAtResidMid: true, names: [], ...last });
  }
  return scoreLogits(r.logits!, cells, B, metric);
}

/** A set of cells that can share batches: same start layer and intervention structure. */
export interface CellGroup {
  /** Flat output indices of the group's cells. */
  cells: number[];
  /** Input bytes one cell adds to a run (to bound a batch's memory). */
  bytesPerCell: number;
  /** Builds the run of a chunk of this group's cells (positions into `cells`). */
  build(chunk: readonly number[]): CellRun;
  /**
   * The first position cell i (a position into `cells`, which are in that order) changes, when
   * runs compute only the positions from there on: a batch then holds more rows.
   */
  firstChanged?: (i: number) => number;
  /**
   * The group's runs may be joined with other groups' (runJoined): true where build() gives a
   * residual that only enters the model (no other option than startLayer, fromMid, qkv and
   * interventions on its start block), so that after its start block a chunk's rows can run
   * the later blocks in one batch with cells of other layers.
   */
  joinable?: boolean;
}

/**
 * Runs every group in chunks and writes each cell's score to out[cell]. Cells not reached when
 * the signal aborts stay NaN; the abort is thrown as SweepAbortedError(out).
 */
export async function runGroups<T>(
  model: HookedTransformer, groups: readonly CellGroup[], B: number, P: number, metric: Metric, out: Float64Array, opts: SweepOptions, partial: () => T, prefix: SharedPrefix | null = null,
): Promise<void> {
  const total = groups.reduce((s, g) => s + g.cells.length, 0);
  // About 4096 token positions per run: fewer rows for long prompts, more for runs that compute
  // only the positions after a cached prefix.
  const positions = (from: number) => Math.max(1, P - (prefix ? Math.min(P - 1, Math.max(prefix.length, from)) : 0));
  const maxRowsFrom = (from: number) => opts.maxBatchRows ?? Math.max(B, Math.floor(4096 / positions(from)));
  const maxBytes = opts.maxBatchBytes ?? 256e6;
  let done = 0;
  // With a last-position metric, joinable groups run as joined waves (runJoined); the rest here.
  const joined = metric.lastPosition !== undefined && !opts.noJoin ? groups.filter((g) => g.joinable) : [];
  const progress = (k: number) => {
    done += k;
    opts.onProgress?.(done, total);
  };
  if (joined.length > 0) await runJoined(model, joined, B, P, metric, out, opts, partial, prefix, maxRowsFrom, maxBytes, progress);
  for (const g of groups) {
    if (joined.includes(g)) continue;
    const byBytes = Math.floor(maxBytes / Math.max(1, g.bytesPerCell));
    for (let i0 = 0; i0 < g.cells.length;) {
      if (opts.signal?.aborted) throw new SweepAbortedError(partial());
      const perChunk = Math.max(1, Math.min(Math.floor(maxRowsFrom(g.firstChanged?.(i0) ?? 0) / B), byBytes));
      const chunk = Array.from({ length: Math.min(perChunk, g.cells.length - i0) }, (_, j) => i0 + j);
      i0 += chunk.length;
      const run = g.build(chunk);
      opts.onRun?.({ cells: chunk.length, rows: chunk.length * B, startLayer: run.startLayer });
      const scores = await scoreCells(model, run, chunk.length, B, metric, prefix);
      chunk.forEach((ci, j) => (out[g.cells[ci]!] = scores[j]!));
      progress(chunk.length);
    }
  }
}

/** One group's cells of a wave, and once its start block has run, the residual they join with. */
interface JoinChunk {
  group: CellGroup;
  /** Positions into group.cells. */
  chunk: number[];
  /** The layer whose block the rows enter (after the chunk's own start block), and that residual [chunk * B, P - at, d_model]. */
  entry?: { layer: number; residual: F32 };
}

/** [rows, pos, d] tensors with equal pos and d stacked along rows. */
function concatRows(ts: readonly F32[]): F32 {
  if (ts.length === 1) return ts[0]!;
  const out = new Float32Array(ts.reduce((n, t) => n + t.data.length, 0));
  let o = 0;
  for (const t of ts) {
    out.set(t.data, o);
    o += t.data.length;
  }
  return f32([ts.reduce((n, t) => n + t.dims[0]!, 0), ...ts[0]!.dims.slice(1)], out);
}

/**
 * Joined waves: the cells of a layer x position sweep at position p need only positions >= p
 * (the earlier ones come from the prefix's keys and values), whatever their layer, and from
 * their start layer on every cell runs the same plain blocks. So cells are bucketed by their
 * first changed position; within a bucket a wave takes cells of several layers (in group
 * order, at most a run's rows), runs each group's start block on its own rows (the patched
 * block, or nothing for a residual patch), and then runs blocks layer by layer, the rows of a
 * cell joining the batch at the block they enter. Each cell computes exactly the blocks and
 * positions it computes alone, but one batch per block holds every cell that has reached it:
 * batches grow instead of every layer's cells recomputing the earliest position of their chunk.
 * Cells whose start block is the last (or the final norm) run alone through scoreCells.
 */
async function runJoined(
  model: HookedTransformer, groups: readonly CellGroup[], B: number, P: number, metric: Metric, out: Float64Array, opts: SweepOptions, partial: () => unknown,
  prefix: SharedPrefix | null, maxRowsFrom: (from: number) => number, maxBytes: number, progress: (k: number) => void,
): Promise<void> {
  const n = model.cfg.n_layers;
  const lp = metric.lastPosition!;
  const atOf = (g: CellGroup, i: number) => (prefix ? Math.min(P - 1, Math.max(prefix.length, g.firstChanged?.(i) ?? 0)) : 0);
  // Buckets by first computed position, each a list of (group, cells) in group order.
  const buckets = new Map<number, { group: CellGroup; cells: number[] }[]>();
  for (const g of groups) {
    g.cells.forEach((_, i) => {
      const at = atOf(g, i);
      const list = buckets.get(at) ?? [];
      if (list.length === 0 || list[list.length - 1]!.group !== g) list.push({ group: g, cells: [] });
      list[list.length - 1]!.cells.push(i);
      buckets.set(at, list);
    });
  }
  for (const [at, items] of [...buckets].sort((a, b) => a[0] - b[0])) {
    const maxRows = maxRowsFrom(at);
    // Waves of at most maxRows rows (no block's batch is larger) and maxBytes of inputs.
    const waves: JoinChunk[][] = [[]];
    let rows = 0;
    let bytes = 0;
    for (const { group, cells } of items) {
      const perCell = Math.max(1, group.bytesPerCell);
      for (let k = 0; k < cells.length;) {
        const room = Math.min(Math.floor((maxRows - rows) / B), Math.floor((maxBytes - bytes) / perCell));
        if (room <= 0 && rows > 0) {
          waves.push([]);
          rows = bytes = 0;
          continue;
        }
        const take = cells.slice(k, k + Math.max(1, room));
        waves[waves.length - 1]!.push({ group, chunk: take });
        rows += take.length * B;
        bytes += take.length * perCell;
        k += take.length;
      }
    }
    for (const wave of waves) {
      if (wave.length === 0) continue;
      if (opts.signal?.aborted) throw new SweepAbortedError(partial());
      for (const jc of wave) {
        const run = jc.group.build(jc.chunk);
        const entry = await joinEntry(model, run, at, P, prefix);
        if (entry) jc.entry = entry;
        else {
          // Its start block is the last one (or none): scored on its own.
          const scores = await scoreCells(model, { ...run, firstChanged: Math.max(run.firstChanged ?? 0, at) }, jc.chunk.length, B, metric, prefix);
          jc.chunk.forEach((ci, j) => (out[jc.group.cells[ci]!] = scores[j]!));
          progress(jc.chunk.length);
        }
        if (opts.signal?.aborted) throw new SweepAbortedError(partial());
      }
      const joiners = wave.filter((jc) => jc.entry).sort((a, b) => a.entry!.layer - b.entry!.layer);
      if (joiners.length > 0) {
        const first = joiners[0]!.entry!.layer;
        opts.onRun?.({ cells: joiners.reduce((k, jc) => k + jc.chunk.length, 0), rows: joiners.reduce((k, jc) => k + jc.chunk.length * B, 0), startLayer: first });
        let batch: F32 | null = null;
        const order: JoinChunk[] = [];
        const slice = at > 0 && prefix ? { prefix: prefixSlice(prefix, at) } : {};
        for (let l = first; l < n; l++) {
          const entering = joiners.filter((jc) => jc.entry?.layer === l);
          if (entering.length > 0) {
            batch = concatRows([...(batch ? [batch] : []), ...entering.map((jc) => jc.entry!.residual)]);
            order.push(...entering);
            // Their residuals live on in the batch only.
            for (const jc of entering) delete jc.entry;
          }
          if (opts.signal?.aborted) throw new SweepAbortedError(partial());
          if (l < n - 1) {
            batch = (await model.run(null, { residual: batch!, startAtLayer: l, stopAtLayer: l + 1, names: [], ...slice })).residual!;
          } else {
            const r = await model.run(null, { residual: batch!, startAtLayer: l, names: [], lastPositionOnly: true, vocab: lp.vocab ?? undefined, ...slice });
            const cells = order.reduce((k, jc) => k + jc.chunk.length, 0);
            const scores = scoreLogits(r.logits!, cells, B, metric);
            let j = 0;
            for (const jc of order) for (const ci of jc.chunk) out[jc.group.cells[ci]!] = scores[j++]!;
          }
        }
        progress(joiners.reduce((k, jc) => k + jc.chunk.length, 0));
      }
    }
  }
}

/**
 * Where a joined chunk's rows enter the plain blocks: after its start block has run on them
 * (positions [at, P)), or at its start layer when it only supplies a residual. Null when that
 * would be the last block or later (the chunk is scored on its own).
 */
async function joinEntry(model: HookedTransformer, run: CellRun, at: number, P: number, prefix: SharedPrefix | null): Promise<{ layer: number; residual: F32 } | null> {
  const n = model.cfg.n_layers;
  const L = run.startLayer;
  const rows = run.residual?.dims[0] ?? run.midAt!.rows;
  if (run.midAt) {
    if (L >= n - 1) return null;
    const mid = await run.midAt.at(at);
    return { layer: L + 1, residual: (await model.run(null, { residual: mid, startAtLayer: L, startAtResidMid: true, stopAtLayer: L + 1, names: [] })).residual! };
  }
  const residual = run.residual!;
  const plain = !run.fromMid && run.interventions.length === 0 && !run.qkv;
  if (plain) return L >= n ? null : { layer: L, residual: slicePositions(residual, at, P) };
  if (L >= n - 1) return null;
  if (run.fromMid) {
    if (run.interventions.length > 0) return null;
    return { layer: L + 1, residual: (await model.run(null, { residual: slicePositions(residual, at, P), startAtLayer: L, startAtResidMid: true, stopAtLayer: L + 1, names: [] })).residual! };
  }
  if (at > 0 && prefix && run.interventions.every((iv) => prefixHookOk(iv.hook))) {
    const interventions = run.interventions.map((iv) => interventionFrom(model, iv, rows, P, at));
    const qkv = run.qkv ? { qkv: await run.qkv(at) } : {};
    return { layer: L + 1, residual: (await model.run(null, { residual: slicePositions(residual, at, P), startAtLayer: L, stopAtLayer: L + 1, interventions, prefix: prefixSlice(prefix, at), names: [], ...qkv })).residual! };
  }
  // The start block on every position (an intervention whose key axis spans the prefix), the rest from the prefix.
  const qkv = run.qkv ? { qkv: await run.qkv(0) } : {};
  const resid = (await model.run(null, { residual, startAtLayer: L, stopAtLayer: L + 1, interventions: run.interventions, names: [], ...qkv })).residual!;
  return { layer: L + 1, residual: slicePositions(resid, at, P) };
}

/** A view of a flat row-major array as nested arrays of `dims`. */
export function nest(values: ArrayLike<number>, dims: readonly number[]): unknown[] {
  const rec = (off: number, ax: number): unknown[] => {
    const n = dims[ax]!;
    if (ax === dims.length - 1) return Array.from({ length: n }, (_, i) => values[off + i]!);
    const stride = dims.slice(ax + 1).reduce((a, b) => a * b, 1);
    return Array.from({ length: n }, (_, i) => rec(off + i * stride, ax + 1));
  };
  return rec(0, 0);
}
