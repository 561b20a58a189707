/**
 * The machinery shared by every exact batched sweep (activation patching, path patching,
 * causal tracing): many patched variants of one run are stacked along the batch
 * axis (cell c occupies rows [c*B, (c+1)*B)), start at the first layer they change from a
 * cached residual stream, and are scored by the metric from the last-position logits it reads.
 * Results are the same numbers a one-forward-per-cell loop gives (tests check 1e-5 on the fixture).
 */
import type { HookedTransformer, Tokens } from '../model/hookedTransformer.js';
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
  /** [cells * B, pos, d_model] */
  residual: F32;
  interventions: Intervention[];
}

/** Repeats a tensor [B, ...] n times along the batch axis -> [n*B, ...]. */
export function tileBatch(t: F32, n: number): F32 {
  const out = new Float32Array(t.data.length * n);
  for (let i = 0; i < n; i++) out.set(t.data, i * t.data.length);
  return f32([t.dims[0]! * n, ...t.dims.slice(1)], out);
}

/**
 * The first positions of the prompts, up to the first token where clean and corrupted differ:
 * a causal model computes them identically in the clean, the corrupted and every patched run
 * (patches there change nothing), so patched runs reuse the corrupted run's keys and values
 * there and compute only the later positions.
 */
export interface SharedPrefix {
  length: number;
  /** blocks.l.attn.hook_k / hook_v of the prefix positions in the corrupted run, [batch, length, head_index, d_head]. */
  keys: F32[];
  values: F32[];
  /** Copies tiled to a batch's row count, reused by every batch of that size. */
  tiled: Map<number, { keys: F32[]; values: F32[] }>;
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

/** The shared prefix's keys and values from a corrupted run's cache of every layer's hook_k / hook_v (null if there is no usable prefix). */
export function sharedPrefix(model: HookedTransformer, length: number, corrCache: ReadonlyMap<string, F32>): SharedPrefix | null {
  const cfg = model.cfg;
  if (length < 1) return null;
  const keys: F32[] = [];
  const values: F32[] = [];
  for (let l = 0; l < cfg.n_layers; l++) {
    for (const [which, list] of [['k', keys], ['v', values]] as const) {
      const t = corrCache.get(`blocks.${l}.attn.hook_${which}`);
      if (!t) return null;
      list.push(slicePositions(t, 0, length));
    }
  }
  return { length, keys, values, tiled: new Map() };
}

/** t [batch, pos, ...] -> positions [from, to). */
export function slicePositions(t: F32, from: number, to: number): F32 {
  const [B, P] = t.dims as [number, number];
  const inner = t.dims.slice(2).reduce((a, b) => a * b, 1);
  const out = new Float32Array(B * (to - from) * inner);
  for (let b = 0; b < B; b++) out.set(t.data.subarray((b * P + from) * inner, (b * P + to) * inner), b * (to - from) * inner);
  return f32([B, to - from, ...t.dims.slice(2)], out);
}

/**
 * Runs a batch of cells and scores each: metric of rows [c*B, (c+1)*B). Uses the metric's
 * last-position reader when it has one (logits of its tokens at the last position only), and
 * a shared prefix when given (positions before it are not recomputed; a run that intervenes
 * first runs its first block in full, then the rest on the later positions).
 */
export async function scoreCells(model: HookedTransformer, run: CellRun, cells: number, B: number, metric: Metric, prefix: SharedPrefix | null = null): Promise<number[]> {
  const lp = metric.lastPosition;
  const n = model.cfg.n_layers;
  const last = { lastPositionOnly: lp !== undefined, vocab: lp?.vocab ?? undefined };
  let r: Awaited<ReturnType<HookedTransformer['run']>>;
  // Only with a last-position metric (a prefix run has no logits for the prefix positions); an
  // intervention in the last block leaves no later block to save.
  if (prefix && lp !== undefined && run.startLayer < n && (run.interventions.length === 0 || run.startLayer + 1 < n)) {
    let resid = run.residual;
    let start = run.startLayer;
    let fromMid = run.fromMid;
    if (run.interventions.length > 0) {
      // The intervened block runs on every position (its hooks cover them all).
      resid = (await model.run(null, { residual: resid, startAtLayer: start, startAtResidMid: fromMid, interventions: run.interventions, stopAtLayer: start + 1, names: [] })).residual!;
      start++;
      fromMid = false;
    }
    const rows = resid.dims[0]!;
    let tiled = prefix.tiled.get(rows);
    if (!tiled) {
      tiled = { keys: prefix.keys.map((t) => tileBatch(t, rows / B)), values: prefix.values.map((t) => tileBatch(t, rows / B)) };
      prefix.tiled.set(rows, tiled);
    }
    r = await model.run(null, { residual: slicePositions(resid, prefix.length, resid.dims[1]!), startAtLayer: start, startAtResidMid: fromMid, prefix: tiled, names: [], ...last });
  } else {
    r = await model.run(null, { residual: run.residual, startAtLayer: run.startLayer, startAtResidMid: run.fromMid, interventions: run.interventions, names: [], ...last });
  }
  const logits = r.logits!;
  const [, P, V] = logits.dims as [number, number, number];
  const out: number[] = [];
  for (let c = 0; c < cells; c++) {
    const n = B * P * V;
    const view = logits.data.subarray(c * n, (c + 1) * n);
    out.push(lp ? lp.score(f32([B, V], view)) : metric(f32([B, P, V], view)));
  }
  return out;
}

/** A set of cells that can share batches: same start layer and intervention structure. */
export interface CellGroup {
  /** Flat output indices of the group's cells. */
  cells: number[];
  /** Input bytes one cell adds to a run (to bound a batch's memory). */
  bytesPerCell: number;
  /** Builds the run of a chunk of this group's cells (positions into `cells`). */
  build(chunk: readonly number[]): CellRun;
}

/**
 * Runs every group in chunks and writes each cell's score to out[cell]. Cells not reached when
 * the signal aborts stay NaN; the abort is thrown as SweepAbortedError(out).
 */
export async function runGroups<T>(
  model: HookedTransformer, groups: readonly CellGroup[], B: number, P: number, metric: Metric, out: Float64Array, opts: SweepOptions, partial: () => T, prefix: SharedPrefix | null = null,
): Promise<void> {
  const total = groups.reduce((s, g) => s + g.cells.length, 0);
  const maxRows = opts.maxBatchRows ?? Math.max(B, Math.floor(4096 / P));
  const maxBytes = opts.maxBatchBytes ?? 256e6;
  let done = 0;
  for (const g of groups) {
    const perChunk = Math.max(1, Math.min(Math.floor(maxRows / B), Math.floor(maxBytes / Math.max(1, g.bytesPerCell))));
    for (let i0 = 0; i0 < g.cells.length; i0 += perChunk) {
      if (opts.signal?.aborted) throw new SweepAbortedError(partial());
      const chunk = Array.from({ length: Math.min(perChunk, g.cells.length - i0) }, (_, j) => i0 + j);
      const scores = await scoreCells(model, g.build(chunk), chunk.length, B, metric, prefix);
      chunk.forEach((ci, j) => (out[g.cells[ci]!] = scores[j]!));
      done += chunk.length;
      opts.onProgress?.(done, total);
    }
  }
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
