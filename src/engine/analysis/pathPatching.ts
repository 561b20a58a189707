/**
 * Path patching (Wang et al. 2022, "Interpretability in the Wild"; the algorithm of ARENA's IOI
 * exercises): the effect of a sender head on the output through one path only.
 *
 * Run `base` with the sender head's output (hook_z) taken from the `source` run and every other
 * head's output frozen to its base value, so the change reaches the receivers only through the
 * residual stream (MLPs recompute). Then
 *  - receivers = heads with an input (q, k or v): take those receivers' inputs from that run
 *    and patch them into a clean base run (everything downstream recomputes);
 *  - receivers = 'logits': read the logits of that run (the path sender -> final residual).
 * The metric of that last run is the cell's value; one cell per sender head. Senders in or
 * after the last receiver layer cannot reach a receiver and are not run.
 *
 * With base = corrupted and source = clean (denoising, like the sweeps in patching.ts) a
 * normalised metric reads "share of the clean behaviour restored through this path"; with base
 * = clean and source = corrupted (noising, ARENA's convention) it reads as damage.
 *
 * Each cell starts at the sender's layer from the cached base run; all senders of a layer run
 * as one batch.
 */
import type { HookedTransformer, Tokens } from '../model/hookedTransformer.js';
import type { HookName, OutputName } from '../hooks/hooks.js';
import type { Intervention } from '../interventions/plan.js';
import { f32, type F32 } from '../tensor/tensor.js';
import type { Metric } from './metrics.js';
import { runGroups, scoreCells, SweepAbortedError, tileBatch, type CellGroup, type SweepOptions } from './sweep.js';

export interface HeadRef {
  layer: number;
  head: number;
}

export interface PathPatchSpec {
  /** Receiver heads and which of their inputs carries the path, or 'logits' for the direct path. */
  receivers: { heads: readonly HeadRef[]; input: 'q' | 'k' | 'v' } | 'logits';
  /** Sender layers to sweep (default: every layer that can reach a receiver). */
  senderLayers?: readonly number[];
}

export interface PathPatchResult {
  /** values[layer][head] for each sender head (NaN where not run). */
  values: number[][];
  senderLayers: number[];
}

/** Head mask over [rows, pos, head_index, d_head]: cell c's rows select head heads[c] (or all but it with `invert`). */
function headMask(rows: number, B: number, H: number, heads: readonly number[][]): F32 {
  const m = f32([rows, 1, H, 1]);
  heads.forEach((hs, c) => {
    for (let b = 0; b < B; b++) for (const h of hs) m.data[(c * B + b) * H + h] = 1;
  });
  return m;
}

export async function pathPatch(model: HookedTransformer, base: Tokens, source: Tokens, metric: Metric, spec: PathPatchSpec, opts: SweepOptions = {}): Promise<PathPatchResult> {
  const cfg = model.cfg;
  const n = cfg.n_layers;
  const H = cfg.n_heads;
  const [B, P] = model.checkTokens(base);
  const [B2, P2] = model.checkTokens(source);
  if (B !== B2 || P !== P2) throw new Error(`base tokens are [${B}, ${P}] but source tokens are [${B2}, ${P2}]; they must have the same shape`);
  const recv = spec.receivers;
  if (recv !== 'logits') {
    if (recv.heads.length === 0) throw new Error('path patching needs at least one receiver head');
    for (const r of recv.heads) {
      if (!(Number.isInteger(r.layer) && r.layer >= 0 && r.layer < n && Number.isInteger(r.head) && r.head >= 0 && r.head < H)) throw new Error(`receiver L${r.layer}H${r.head} is not a head of this model`);
    }
  }
  const maxRecv = recv === 'logits' ? n : Math.max(...recv.heads.map((r) => r.layer));
  const minRecv = recv === 'logits' ? n : Math.min(...recv.heads.map((r) => r.layer));
  const senderLayers = spec.senderLayers ? [...spec.senderLayers] : Array.from({ length: maxRecv }, (_, l) => l);
  for (const l of senderLayers) if (!(Number.isInteger(l) && l >= 0 && l < maxRecv)) throw new Error(`sender layer ${l} cannot reach the receivers (layers before ${maxRecv} can)`);

  const zName = (l: number) => `blocks.${l}.attn.hook_z` as HookName;
  const lastFrozen = recv === 'logits' ? n - 1 : maxRecv - 1; // heads frozen up to here
  const baseNames: OutputName[] = [];
  for (let l = 0; l < n; l++) baseNames.push(`blocks.${l}.hook_resid_pre` as HookName, zName(l));
  const baseRun = (await model.run(base, { names: baseNames, noLogits: true })).cache;
  const srcRun = (await model.run(source, { names: senderLayers.map(zName), noLogits: true, stopAtLayer: Math.max(...senderLayers) + 1 })).cache;
  const baseZ = (l: number) => baseRun.get(zName(l))!;
  const allHeads = f32([1, 1, H, 1], new Float32Array(H).fill(1));

  const values = Array.from({ length: n }, () => new Array<number>(H).fill(NaN));
  const flat = new Float64Array(n * H).fill(NaN);
  const result = (): PathPatchResult => {
    for (let l = 0; l < n; l++) for (let h = 0; h < H; h++) values[l]![h] = flat[l * H + h]!;
    return { values: values.slice(0, Math.max(...senderLayers) + 1), senderLayers };
  };

  /** Step 1 for a chunk of sender heads of layer l: base with the sender from source, other heads frozen. */
  const senderRun = (l: number, heads: readonly number[]): { residual: F32; interventions: Intervention[] } => {
    const cells = heads.length;
    const ivs: Intervention[] = [{ kind: 'patch', hook: zName(l), mask: headMask(cells * B, B, H, heads.map((h) => [h])), source: tileBatch(srcRun.get(zName(l))!, cells) }];
    // Heads after the sender's layer keep their base outputs (those of the sender's own layer
    // already do: their inputs did not change).
    for (let k = l + 1; k <= lastFrozen; k++) ivs.push({ kind: 'patch', hook: zName(k), mask: allHeads, source: tileBatch(baseZ(k), cells) });
    return { residual: tileBatch(baseRun.get(`blocks.${l}.hook_resid_pre` as OutputName)!, cells), interventions: ivs };
  };

  const groups: CellGroup[] = senderLayers.map((l) => ({
    cells: Array.from({ length: H }, (_, h) => l * H + h),
    bytesPerCell: 4 * B * P * (cfg.d_model + 2 * H * cfg.d_head * (lastFrozen - l + 1)),
    build: (chunk) => {
      const s = senderRun(l, chunk);
      return { startLayer: l, residual: s.residual, interventions: s.interventions };
    },
  }));

  if (recv === 'logits') {
    await runGroups(model, groups, B, P, metric, flat, opts, result);
    return result();
  }

  // Receivers: step 1 caches their inputs; step 2 patches them into the base run.
  const input = recv.input;
  const recvLayers = [...new Set(recv.heads.map((r) => r.layer))].sort((a, b) => a - b);
  const recvName = (l: number) => `blocks.${l}.attn.hook_${input}` as HookName;
  const recvHeads = (l: number) => recv.heads.filter((r) => r.layer === l).map((r) => r.head);
  const maxRows = opts.maxBatchRows ?? Math.max(B, Math.floor(4096 / P));
  const perChunk = Math.max(1, Math.floor(maxRows / B));
  let done = 0;
  const total = senderLayers.length * H;
  for (const l of senderLayers) {
    for (let h0 = 0; h0 < H; h0 += perChunk) {
      if (opts.signal?.aborted) throw new SweepAbortedError(result());
      const heads = Array.from({ length: Math.min(perChunk, H - h0) }, (_, i) => h0 + i);
      const cells = heads.length;
      const s1 = senderRun(l, heads);
      const step1 = await model.run(null, { residual: s1.residual, startAtLayer: l, stopAtLayer: maxRecv + 1, interventions: s1.interventions, names: recvLayers.filter((r) => r >= l).map(recvName), noLogits: true });
      // Step 2: base run from the first receiver layer, receivers' inputs from step 1 (receivers
      // before the sender's layer are unchanged: their step-1 input equals the base one).
      const ivs: Intervention[] = recvLayers.filter((r) => r >= l).map((r) => ({
        kind: 'patch', hook: recvName(r), mask: headMask(cells * B, B, H, heads.map(() => recvHeads(r))), source: step1.cache.get(recvName(r))!,
      }));
      const start = Math.max(minRecv, l);
      const scores = await scoreCells(model, { startLayer: start, residual: tileBatch(baseRun.get(`blocks.${start}.hook_resid_pre` as OutputName)!, cells), interventions: ivs }, cells, B, metric);
      heads.forEach((h, i) => (flat[l * H + h] = scores[i]!));
      done += cells;
      opts.onProgress?.(done, total);
    }
  }
  return result();
}

/**
 * The reference for tests: the same two steps with one full forward each and plain
 * interventions (no batching, no starting at a layer).
 */
export async function naivePathPatchCell(model: HookedTransformer, base: Tokens, source: Tokens, metric: Metric, spec: PathPatchSpec, sender: HeadRef): Promise<number> {
  const cfg = model.cfg;
  const n = cfg.n_layers;
  const recv = spec.receivers;
  const lastFrozen = recv === 'logits' ? n - 1 : Math.max(...recv.heads.map((r) => r.layer)) - 1;
  const baseCache = (await model.runWithCache(base)).cache;
  const srcCache = (await model.runWithCache(source)).cache;
  const z = (l: number) => `blocks.${l}.attn.hook_z` as HookName;
  const ivs: Intervention[] = [{ kind: 'patch', hook: z(sender.layer), index: { head_index: [sender.head] }, source: srcCache.get(z(sender.layer))! }];
  for (let k = sender.layer + 1; k <= lastFrozen; k++) ivs.push({ kind: 'patch', hook: z(k), source: baseCache.get(z(k))! });
  if (recv === 'logits') return metric(await model.runWithHooks(base, ivs));
  const names = [...new Set(recv.heads.map((r) => `blocks.${r.layer}.attn.hook_${recv.input}` as HookName))];
  const step1 = await model.run(base, { names, interventions: ivs });
  const patch: Intervention[] = names.map((name) => {
    const layer = Number(/^blocks\.(\d+)\./.exec(name)![1]);
    return { kind: 'patch', hook: name, index: { head_index: recv.heads.filter((r) => r.layer === layer).map((r) => r.head) }, source: step1.cache.get(name)! };
  });
  return metric(await model.runWithHooks(base, patch));
}
