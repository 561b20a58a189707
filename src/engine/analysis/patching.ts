/**
 * Activation patching with TransformerLens's semantics (patching.py): run the corrupted prompts,
 * replace one activation by its value from the clean run, and score the logits with a metric,
 * usually the normalised logit difference (patched - corrupted) / (clean - corrupted), so that
 * 1 means "this activation restores the clean behaviour" and 0 "no effect".
 *
 * Sweeps are exact but cheap: every cell starts at the patched layer from the cached corrupted
 * residual stream (nothing before it changes), and many cells run as one batch: cell c occupies
 * batch rows [c*B, (c+1)*B) and a dense mask selects what is patched in each row.
 */
import type { HookedTransformer, Tokens } from '../model/hookedTransformer.js';
import type { HookName, OutputName } from '../hooks/hooks.js';
import { f32, type F32 } from '../tensor/tensor.js';

export type Metric = (logits: F32) => number;

/** Mean over the batch of logit[correct] - logit[wrong] at the last position. logits [batch, pos, d_vocab]. */
export function logitDiffMetric(answers: readonly (readonly [number, number])[]): Metric {
  return (logits) => {
    const [B, P, V] = logits.dims as [number, number, number];
    if (answers.length !== B) throw new Error(`answers: got ${answers.length} pairs for a batch of ${B}`);
    let s = 0;
    for (let b = 0; b < B; b++) {
      const off = (b * P + P - 1) * V;
      s += logits.data[off + answers[b]![0]]! - logits.data[off + answers[b]![1]]!;
    }
    return s / B;
  };
}

/** (patched - corrupted) / (clean - corrupted). */
export function normalizedMetric(metric: Metric, clean: number, corrupted: number): Metric {
  const denom = clean - corrupted;
  return (logits) => (metric(logits) - corrupted) / denom;
}

export interface SweepOptions {
  /** Stops between chunks; partial results stay in the returned array (NaN where not run). */
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  /** Batch rows per run (cells x prompts); bounds memory. */
  maxBatchRows?: number;
}

/** Splits a batch of logits [cells*B, pos, V] into per-cell views [B, pos, V]. */
function cellLogits(logits: F32, cell: number, B: number): F32 {
  const [, P, V] = logits.dims as [number, number, number];
  const n = B * P * V;
  return f32([B, P, V], logits.data.subarray(cell * n, (cell + 1) * n));
}

/** Repeats a tensor [B, ...] n times along the batch axis -> [n*B, ...]. */
export function tileBatch(t: F32, n: number): F32 {
  const out = new Float32Array(t.data.length * n);
  for (let i = 0; i < n; i++) out.set(t.data, i * t.data.length);
  return f32([t.dims[0]! * n, ...t.dims.slice(1)], out);
}

function checkAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new DOMException('cancelled', 'AbortError');
}

/**
 * Patch clean blocks.L.hook_resid_pre at each (layer, position) into the corrupted run.
 * Returns [layer, pos] metric values.
 */
export async function patchResidPreByLayerPos(
  model: HookedTransformer, clean: Tokens, corrupted: Tokens, metric: Metric, opts: SweepOptions = {},
): Promise<number[][]> {
  const cfg = model.cfg;
  const [B, P] = model.checkTokens(clean);
  const [B2, P2] = model.checkTokens(corrupted);
  if (B !== B2 || P !== P2) throw new Error(`clean tokens are [${B}, ${P}] but corrupted are [${B2}, ${P2}]; they must have the same shape`);
  const names = Array.from({ length: cfg.n_layers }, (_, l) => `blocks.${l}.hook_resid_pre` as HookName);
  const cleanRun = await model.run(clean, { names, noLogits: true });
  const corrRun = await model.run(corrupted, { names, noLogits: true });
  const out = Array.from({ length: cfg.n_layers }, () => new Array<number>(P).fill(NaN));
  const d = cfg.d_model;
  const rowsPerCell = B;
  const maxCells = Math.max(1, Math.floor((opts.maxBatchRows ?? 256) / rowsPerCell));
  let done = 0;
  const total = cfg.n_layers * P;
  for (let l = 0; l < cfg.n_layers; l++) {
    const cr = cleanRun.cache.get(names[l]!)!; // [batch, pos, d_model]
    const co = corrRun.cache.get(names[l]!)!;
    for (let p0 = 0; p0 < P; p0 += maxCells) {
      checkAborted(opts.signal);
      const cells = Math.min(maxCells, P - p0);
      // residual [cells*B, pos, d_model]: the corrupted residual with position p0+c taken from clean.
      const resid = tileBatch(co, cells);
      for (let c = 0; c < cells; c++) {
        const p = p0 + c;
        for (let b = 0; b < B; b++) {
          const src = (b * P + p) * d;
          resid.data.set(cr.data.subarray(src, src + d), ((c * B + b) * P + p) * d);
        }
      }
      const r = await model.run(null, { residual: resid, startAtLayer: l, names: [] });
      for (let c = 0; c < cells; c++) out[l]![p0 + c] = metric(cellLogits(r.logits!, c, B));
      done += cells;
      opts.onProgress?.(done, total);
    }
  }
  return out;
}

/**
 * Patch one head's clean activation (all positions) at `blocks.L.attn.hook_<which>` into the
 * corrupted run, for every layer and head. Returns [layer, head_index].
 */
export async function patchHeadAllPos(
  model: HookedTransformer, clean: Tokens, corrupted: Tokens, metric: Metric, which: 'z' | 'q' | 'k' | 'v' | 'pattern' = 'z', opts: SweepOptions = {},
): Promise<number[][]> {
  const cfg = model.cfg;
  const [B, P] = model.checkTokens(clean);
  const [B2, P2] = model.checkTokens(corrupted);
  if (B !== B2 || P !== P2) throw new Error(`clean tokens are [${B}, ${P}] but corrupted are [${B2}, ${P2}]; they must have the same shape`);
  const H = cfg.n_heads;
  const hookOf = (l: number) => `blocks.${l}.attn.hook_${which}` as HookName;
  const residNames = Array.from({ length: cfg.n_layers }, (_, l) => `blocks.${l}.hook_resid_pre` as OutputName);
  const cleanRun = await model.run(clean, { names: Array.from({ length: cfg.n_layers }, (_, l) => hookOf(l)), noLogits: true });
  const corrRun = await model.run(corrupted, { names: residNames, noLogits: true });
  const out = Array.from({ length: cfg.n_layers }, () => new Array<number>(H).fill(NaN));
  const headAxis = which === 'pattern' ? 1 : 2; // pattern [batch, head, q, k]; q/k/v/z [batch, pos, head, d_head]
  const maxCells = Math.max(1, Math.floor((opts.maxBatchRows ?? 256) / B));
  let done = 0;
  const total = cfg.n_layers * H;
  for (let l = 0; l < cfg.n_layers; l++) {
    const src = cleanRun.cache.get(hookOf(l))!;
    const co = corrRun.cache.get(residNames[l]!)!;
    for (let h0 = 0; h0 < H; h0 += maxCells) {
      checkAborted(opts.signal);
      const cells = Math.min(maxCells, H - h0);
      // mask [cells*B, 1, head, 1] (or [cells*B, head, 1, 1] for pattern): row block c patches head h0+c.
      const mdims = src.dims.map((_, i) => (i === 0 ? cells * B : i === headAxis ? H : 1));
      const mask = f32(mdims);
      for (let c = 0; c < cells; c++) for (let b = 0; b < B; b++) mask.data[(c * B + b) * H + h0 + c] = 1;
      const r = await model.run(null, {
        residual: tileBatch(co, cells), startAtLayer: l, names: [],
        interventions: [{ kind: 'patch', hook: hookOf(l), mask, source: tileBatch(src, cells) }],
      });
      for (let c = 0; c < cells; c++) out[l]![h0 + c] = metric(cellLogits(r.logits!, c, B));
      done += cells;
      opts.onProgress?.(done, total);
    }
  }
  return out;
}
