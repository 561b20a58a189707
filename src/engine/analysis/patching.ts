/**
 * Activation patching with TransformerLens's semantics (patching.py): run the corrupted prompts,
 * replace one activation by its value from the clean run, and score the logits with a metric,
 * usually the normalised logit difference (patched - corrupted) / (clean - corrupted), so that
 * 1 means "this activation restores the clean behaviour" and 0 "no effect".
 *
 * The sweeps (TL's get_act_patch_* family) are exact but cheap (see sweep.ts): every cell starts
 * at the patched layer from the cached corrupted run (nothing before it changes), many cells run
 * as one batch with a dense mask selecting what each row patches, and only the last-position
 * logits the metric reads are computed. Where a patch only changes a residual-stream sum
 * (attn_out, mlp_out, resid_*), the patched residual is formed here with the same float32
 * addition the graph does, and the run starts after it. Positions before the first token where
 * clean and corrupted prompts differ are identical in every run: cells that patch only there
 * take the corrupted run's value, and the other cells reuse the corrupted run's keys and values
 * there instead of recomputing them (SharedPrefix in sweep.ts).
 *
 *   kind 'layer_pos' hook resid_pre|resid_mid|resid_post|attn_out|mlp_out -> [layer, pos]
 *   kind 'head' activation z|q|k|v|pattern, by 'all_pos'                 -> [layer, head]
 *   kind 'head' activation z|q|k|v, by 'pos'                              -> [layer, pos, head]
 *   kind 'head' activation pattern, by 'pos' (destination position)       -> [layer, head, dest_pos]
 *   kind 'neuron' layer L (blocks.L.mlp.hook_post or hook_pre, all positions) -> [neuron]
 */
import type { HookedTransformer, Tokens } from '../model/hookedTransformer.js';
import type { HookedTransformerConfig } from '../model/config.js';
import { hookDims, type HookName, type OutputName } from '../hooks/hooks.js';
import type { InterventionIndex } from '../interventions/plan.js';
import { f32, type F32 } from '../tensor/tensor.js';
import type { Metric } from './metrics.js';
import { rankOneAttention, rankOneAttentionUnsupported } from './rankOneAttention.js';
import { nest, runGroups, sharedPrefix, sharedPrefixLength, slicePositions, tileBatch, type CellGroup, type CellRun, type SweepOptions } from './sweep.js';

export { logitDiffMetric, normalizedMetric, answerProbMetric, type Metric, type LastPositionReader } from './metrics.js';
export { tileBatch, SweepAbortedError, type SweepOptions } from './sweep.js';

export type ResidComponent = 'resid_pre' | 'resid_mid' | 'resid_post' | 'attn_out' | 'mlp_out';
export type HeadActivation = 'z' | 'q' | 'k' | 'v' | 'pattern';

/** A patching sweep as plain data (experiment files and the protocol carry it). */
export type PatchSweepSpec =
  | { kind: 'layer_pos'; hook: ResidComponent; layers?: readonly number[] }
  | { kind: 'head'; activation: HeadActivation; by?: 'all_pos' | 'pos'; layers?: readonly number[] }
  | { kind: 'neuron'; layer: number; hook?: 'post' | 'pre'; neurons?: readonly number[] };

export interface SweepResult {
  /** Metric per cell, row-major over dims; NaN where a cell was not run. */
  values: Float64Array;
  dims: number[];
  /** Axis names of dims, TransformerLens's order (e.g. ['layer', 'pos', 'head']). */
  axes: string[];
  /** Index values along each axis (layers and neurons may be subsets). */
  coords: number[][];
  /** The hook patched, with {layer} for the layer: 'blocks.{layer}.attn.hook_z'. */
  hook: string;
}

/** At most this many more bytes of hooks for the clean and corrupted runs to share one session (runPatchSweep). */
const SHARED_SETUP_MAX_EXTRA_BYTES = 64 << 20;

/** One cell of a sweep as a plain intervention: what the naive loop patches. */
export interface PatchCell {
  /** Flat index into SweepResult.values. */
  index: number;
  layer: number;
  hook: HookName;
  /** The entries patched (all batch rows), as InterventionIndex. */
  select: InterventionIndex;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

function hookTemplate(spec: PatchSweepSpec): string {
  switch (spec.kind) {
    case 'layer_pos': return `blocks.{layer}.hook_${spec.hook}`;
    case 'head': return `blocks.{layer}.attn.hook_${spec.activation}`;
    case 'neuron': return `blocks.{layer}.mlp.hook_${spec.hook ?? 'post'}`;
  }
}

function hookAt(template: string, layer: number): HookName {
  return template.replace('{layer}', String(layer)) as HookName;
}

function checkLayers(cfg: HookedTransformerConfig, layers: readonly number[] | undefined): number[] {
  const ls = layers ? [...layers] : range(cfg.n_layers);
  for (const l of ls) if (!Number.isInteger(l) || l < 0 || l >= cfg.n_layers) throw new Error(`layer ${l} is out of range: the model has layers 0..${cfg.n_layers - 1}`);
  return ls;
}

/** Shape of a sweep's result and its cells, for a prompt length P. */
export function sweepLayout(cfg: HookedTransformerConfig, P: number, spec: PatchSweepSpec): { dims: number[]; axes: string[]; coords: number[][]; cells: PatchCell[] } {
  const t = hookTemplate(spec);
  const cells: PatchCell[] = [];
  if (spec.kind === 'layer_pos') {
    if (cfg.attn_only && (spec.hook === 'resid_mid' || spec.hook === 'mlp_out')) throw new Error(`an attention-only model has no hook_${spec.hook}`);
    if (cfg.parallel_attn_mlp && spec.hook === 'resid_mid') throw new Error('attention and MLP run in parallel in this model, so it has no hook_resid_mid');
    const layers = checkLayers(cfg, spec.layers);
    layers.forEach((l, li) => range(P).forEach((p) => cells.push({ index: li * P + p, layer: l, hook: hookAt(t, l), select: { pos: [p] } })));
    return { dims: [layers.length, P], axes: ['layer', 'pos'], coords: [layers, range(P)], cells };
  }
  if (spec.kind === 'head') {
    const layers = checkLayers(cfg, spec.layers);
    // Keys and values have n_key_value_heads heads under grouped-query attention (as hook_k / hook_v).
    const H = (spec.activation === 'k' || spec.activation === 'v') && cfg.n_key_value_heads !== null ? cfg.n_key_value_heads : cfg.n_heads;
    const byPos = spec.by === 'pos';
    if (!byPos) {
      layers.forEach((l, li) => range(H).forEach((h) => cells.push({ index: li * H + h, layer: l, hook: hookAt(t, l), select: { head_index: [h] } })));
      return { dims: [layers.length, H], axes: ['layer', 'head'], coords: [layers, range(H)], cells };
    }
    if (spec.activation === 'pattern') {
      layers.forEach((l, li) => range(H).forEach((h) => range(P).forEach((p) => cells.push({ index: (li * H + h) * P + p, layer: l, hook: hookAt(t, l), select: { head_index: [h], query_pos: [p] } }))));
      return { dims: [layers.length, H, P], axes: ['layer', 'head', 'dest_pos'], coords: [layers, range(H), range(P)], cells };
    }
    layers.forEach((l, li) => range(P).forEach((p) => range(H).forEach((h) => cells.push({ index: (li * P + p) * H + h, layer: l, hook: hookAt(t, l), select: { pos: [p], head_index: [h] } }))));
    return { dims: [layers.length, P, H], axes: ['layer', 'pos', 'head'], coords: [layers, range(P), range(H)], cells };
  }
  if (cfg.d_mlp === null) throw new Error('an attention-only model has no MLP neurons');
  checkLayers(cfg, [spec.layer]);
  const neurons = spec.neurons ? [...spec.neurons] : range(cfg.d_mlp);
  for (const n of neurons) if (!Number.isInteger(n) || n < 0 || n >= cfg.d_mlp) throw new Error(`neuron ${n} is out of range: layer ${spec.layer} has neurons 0..${cfg.d_mlp - 1}`);
  neurons.forEach((n, i) => cells.push({ index: i, layer: spec.layer, hook: hookAt(t, spec.layer), select: { d_mlp: [n] } }));
  return { dims: [neurons.length], axes: ['neuron'], coords: [neurons], cells };
}

function checkPair(model: HookedTransformer, clean: Tokens, corrupted: Tokens): [number, number] {
  const [B, P] = model.checkTokens(clean);
  const [B2, P2] = model.checkTokens(corrupted);
  if (B !== B2 || P !== P2) throw new Error(`clean tokens are [${B}, ${P}] but corrupted are [${B2}, ${P2}]; they must have the same shape`);
  return [B, P];
}

/** resid [n*B, P, d] (a tiled copy): rows of block c, position p, <- value(b) [d] for each prompt b. */
function setPos(resid: F32, c: number, B: number, P: number, p: number, value: (b: number) => ArrayLike<number>): void {
  const d = resid.dims[2]!;
  for (let b = 0; b < B; b++) resid.data.set(value(b), ((c * B + b) * P + p) * d);
}

/** [batch, pos, d] row (b, p) as a view. */
function row(t: F32, b: number, p: number): Float32Array {
  const [, P, d] = t.dims as [number, number, number];
  return t.data.subarray((b * P + p) * d, (b * P + p + 1) * d);
}

/** fround(x + y) elementwise: float32 addition, bit-identical to the graph's Add. */
function add32(x: Float32Array, y: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! + y[i]!;
  return out;
}

/**
 * Runs a patching sweep: clean activations patched into the corrupted run, one cell per entry
 * of the result, scored by `metric` (see the file header for shapes).
 */
export async function runPatchSweep(
  model: HookedTransformer, clean: Tokens, corrupted: Tokens, metric: Metric, spec: PatchSweepSpec, opts: SweepOptions = {},
): Promise<SweepResult> {
  const cfg = model.cfg;
  const [B, P] = checkPair(model, clean, corrupted);
  const layout = sweepLayout(cfg, P, spec);
  const template = hookTemplate(spec);
  const values = new Float64Array(layout.cells.length).fill(NaN);
  const result: SweepResult = { values, dims: layout.dims, axes: layout.axes, coords: layout.coords, hook: template };
  const byLayer = new Map<number, PatchCell[]>();
  for (const c of layout.cells) {
    const list = byLayer.get(c.layer) ?? [];
    list.push(c);
    byLayer.set(c.layer, list);
  }
  const layers = [...byLayer.keys()];
  const d = cfg.d_model;
  const n = cfg.n_layers;

  // Only what this sweep reads is cached: the patched hook from the clean run and the
  // residual streams the cells start from in the corrupted run.
  // Head patches at layer L leave ln1 and the projections of layer L as the corrupted run has
  // them: the cells' block L starts from the cached hook_q / hook_k / hook_v (RunOptions.qkv),
  // with the patched head's values there for q / k / v patches (then no intervention at all).
  const headQkv = spec.kind === 'head' && !opts.noRankOne && model.attachedSaes().length === 0;
  const cleanNames = new Set<OutputName>();
  const corrNames = new Set<OutputName>();
  for (const l of layers) {
    if (spec.kind === 'layer_pos') {
      cleanNames.add(hookAt(template, l));
      const needs: Record<ResidComponent, string[]> = {
        resid_pre: ['hook_resid_pre'],
        // resid_mid and attn_out: the cells start after block L's MLP (at their position only).
        resid_mid: ['hook_resid_mid', 'hook_resid_post'],
        resid_post: ['hook_resid_post'],
        attn_out: cfg.attn_only ? ['hook_resid_pre', 'hook_resid_post'] : cfg.parallel_attn_mlp ? ['hook_resid_pre', 'hook_mlp_out', 'hook_resid_post'] : ['hook_resid_pre', 'hook_resid_mid', 'hook_resid_post'],
        mlp_out: cfg.parallel_attn_mlp ? ['hook_resid_pre', 'hook_attn_out', 'hook_resid_post'] : ['hook_resid_mid', 'hook_resid_post'],
      };
      for (const s of needs[spec.hook]) corrNames.add(`blocks.${l}.${s}` as HookName);
    } else if (spec.kind === 'head') {
      cleanNames.add(hookAt(template, l));
      corrNames.add(`blocks.${l}.hook_resid_pre` as HookName);
      // The block starts from the corrupted run's q, k, v (headQkv), patched there for q / k / v.
      if (headQkv) for (const w of ['q', 'k', 'v']) corrNames.add(`blocks.${l}.attn.hook_${w}` as HookName);
      // By position: cells whose clean value equals the corrupted one are not run.
      if (spec.by === 'pos') corrNames.add(hookAt(template, l));
    } else {
      // Neurons: a patch of hook_pre or hook_post at neuron n gives the clean post activation
      // there (the activation function is elementwise), so both read the clean hook_post.
      cleanNames.add(`blocks.${l}.mlp.hook_post` as HookName);
      // Parallel blocks have no resid_mid: resid_post = (resid_pre + attn_out) + mlp_out there too.
      for (const s of [...(cfg.parallel_attn_mlp ? ['hook_resid_pre', 'hook_attn_out'] : ['hook_resid_mid']), 'mlp.hook_post', 'hook_mlp_out']) corrNames.add(`blocks.${l}.${s}` as HookName);
    }
  }
  // Positions before the first token where clean and corrupted differ are shared by every run;
  // a cell patched at position p leaves every earlier position as the corrupted run has it too.
  // Both are read from the corrupted run's keys and values instead of being recomputed.
  const prefixLen = opts.noPrefix ? 0 : sharedPrefixLength(clean, corrupted);
  const perPosition = spec.kind === 'layer_pos' || (spec.kind === 'head' && spec.by === 'pos');
  const usePrefix = !opts.noPrefix && P > 1 && (prefixLen > 0 || perPosition);
  if (usePrefix) for (let l = 0; l < n; l++) corrNames.add(`blocks.${l}.attn.hook_k` as HookName).add(`blocks.${l}.attn.hook_v` as HookName);
  const cleanStop = Math.max(...layers) + 1;
  const corrStop = usePrefix ? n : cleanStop;
  // When both runs go through the same layers they ask for the same hooks, so that they run one
  // compiled session (compiling it is most of such a run's time on short prompts), and with a
  // last-position metric the corrupted run's logits there give the corrupted value too.
  const lp = metric.lastPosition;
  // Not when asking each run for the other's hooks would hold much more (long prompts: every
  // layer's hook_pattern is B x heads x P^2 floats).
  const bytesOf = (names: Iterable<OutputName>) => [...names].reduce((t, nm) => t + 4 * hookDims(nm, cfg, B, P).reduce((a, b) => a * b, 1), 0);
  const extraBytes = bytesOf([...corrNames].filter((nm) => !cleanNames.has(nm))) + bytesOf([...cleanNames].filter((nm) => !corrNames.has(nm)));
  const shared = cleanStop === corrStop && extraBytes <= SHARED_SETUP_MAX_EXTRA_BYTES;
  const withLogits = shared && corrStop === n && lp !== undefined;
  const setup = (names: Set<OutputName>, stopAtLayer: number) =>
    ({ names: shared ? [...new Set([...cleanNames, ...corrNames])] : [...names], stopAtLayer, ...(withLogits ? { lastPositionOnly: true, vocab: lp.vocab ?? undefined } : { noLogits: true }) });
  const cleanActs = (await model.run(clean, setup(cleanNames, cleanStop))).cache;
  const corrRun = await model.run(corrupted, setup(corrNames, corrStop));
  const corrActs = corrRun.cache;
  const prefix = usePrefix ? sharedPrefix(model, Math.min(prefixLen, P - 1), corrActs) : null;
  const get = (m: Map<OutputName, F32>, name: string) => m.get(name as OutputName)!;

  const groups: CellGroup[] = [];
  const unchanged: number[] = [];
  for (const l of layers) {
    const cells = byLayer.get(l)!;
    const hook = hookAt(template, l);
    if (spec.kind === 'neuron') {
      const beforeMlp = cfg.parallel_attn_mlp ? addTensors(get(corrActs, `blocks.${l}.hook_resid_pre`), get(corrActs, `blocks.${l}.hook_attn_out`)) : get(corrActs, `blocks.${l}.hook_resid_mid`);
      groups.push(await neuronGroup(model, cells, B, P, l, get(cleanActs, `blocks.${l}.mlp.hook_post`), beforeMlp, get(corrActs, `blocks.${l}.mlp.hook_post`), get(corrActs, `blocks.${l}.hook_mlp_out`), opts.noRankOne === true));
      continue;
    }
    const src = get(cleanActs, hook);
    if (spec.kind === 'layer_pos') {
      // The residual the cells start from, and how the patched position's value is formed.
      let startLayer = l;
      let fromMid = false;
      let base: F32;
      let patched: (b: number, p: number) => Float32Array;
      const pre = () => get(corrActs, `blocks.${l}.hook_resid_pre`);
      const mid = () => get(corrActs, `blocks.${l}.hook_resid_mid`);
      const post = () => get(corrActs, `blocks.${l}.hook_resid_post`);
      switch (spec.hook) {
        case 'resid_pre': base = pre(); patched = (b, p) => row(src, b, p); break;
        case 'resid_mid': base = mid(); fromMid = true; patched = (b, p) => row(src, b, p); break;
        case 'resid_post': base = post(); startLayer = l + 1; patched = (b, p) => row(src, b, p); break;
        case 'attn_out':
          if (cfg.parallel_attn_mlp) {
            // resid_post = (resid_pre + attn_out) + mlp_out, and the MLP reads resid_pre: unchanged.
            base = post(); startLayer = l + 1;
            patched = (b, p) => add32(add32(row(pre(), b, p), row(src, b, p)), row(get(corrActs, `blocks.${l}.hook_mlp_out`), b, p));
            break;
          }
          // resid_mid (resid_post when attention-only) = resid_pre + attn_out, at the patched position.
          if (cfg.attn_only) { base = post(); startLayer = l + 1; } else { base = mid(); fromMid = true; }
          patched = (b, p) => add32(row(pre(), b, p), row(src, b, p));
          break;
        case 'mlp_out':
          base = post(); startLayer = l + 1;
          patched = cfg.parallel_attn_mlp
            ? (b, p) => add32(add32(row(pre(), b, p), row(get(corrActs, `blocks.${l}.hook_attn_out`), b, p)), row(src, b, p))
            : (b, p) => add32(row(mid(), b, p), row(src, b, p));
          break;
      }
      // A cell whose patched rows equal the corrupted ones (positions before the first token
      // where clean and corrupted differ: a causal model computes them identically) *is* the
      // corrupted run: it takes the corrupted run's value instead of being run again.
      const run: PatchCell[] = [];
      for (const c of cells) {
        const p = c.select.pos![0]!;
        let same = true;
        for (let b = 0; b < B && same; b++) {
          const a = patched(b, p);
          const o = row(base!, b, p);
          for (let i = 0; i < d && same; i++) same = a[i] === o[i];
        }
        if (same) unchanged.push(c.index);
        else run.push(c);
      }
      if (run.length === 0) continue;
      const runCells = run;
      if (fromMid && l < n - 1) {
        // A patch of resid_mid (or attn_out, which adds to it) at position p changes block L's
        // MLP input only there (the MLP is position-wise): that MLP runs for the cells' own
        // positions alone, one row per cell and prompt, and the cells start at block L+1 from
        // the corrupted resid_post with their position replaced. (In the last block, the cells
        // run its MLP at the last position only anyway.)
        const m = f32([runCells.length * B, 1, d]);
        runCells.forEach((c, ci) => {
          const p = c.select.pos![0]!;
          for (let b = 0; b < B; b++) m.data.set(patched(b, p), (ci * B + b) * d);
        });
        const after = (await model.run(null, { residual: m, startAtLayer: l, startAtResidMid: true, stopAtLayer: l + 1, names: [] })).residual!;
        const at = new Map(runCells.map((c, ci) => [c.select.pos![0]!, ci]));
        base = post();
        startLayer = l + 1;
        fromMid = false;
        patched = (b, p) => after.data.subarray((at.get(p)! * B + b) * d, (at.get(p)! * B + b + 1) * d);
      }
      groups.push({
        cells: runCells.map((c) => c.index),
        bytesPerCell: 4 * B * P * d,
        build: (chunk): CellRun => {
          const cells = runCells;
          const resid = tileBatch(base, chunk.length);
          chunk.forEach((ci, c) => {
            const p = cells[ci]!.select.pos![0]!;
            setPos(resid, c, B, P, p, (b) => patched(b, p));
          });
          return { startLayer: Math.min(startLayer, n), fromMid, residual: resid, interventions: [], firstChanged: Math.min(...chunk.map((ci) => cells[ci]!.select.pos![0]!)) };
        },
        // Cells of a layer come in position order (sweepLayout).
        firstChanged: (i) => runCells[i]!.select.pos![0]!,
        joinable: true,
      });
    } else {
      const start = get(corrActs, `blocks.${l}.hook_resid_pre`);
      const axes = spec.activation === 'pattern' ? ['batch', 'head_index', 'query_pos', 'key_pos'] : ['batch', 'pos', 'head_index', 'd_head'];
      const posOf = (c: PatchCell): number | undefined => c.select.pos?.[0] ?? c.select.query_pos?.[0];
      let runCells = cells;
      if (spec.kind === 'head' && spec.by === 'pos') {
        // By position, two kinds of cell are the corrupted run itself and are not run: a patch
        // whose clean values equal the corrupted ones (positions before the first token where
        // the prompts differ), and a patch of z, q or the pattern in the last layer at a position
        // before the last (it changes only that position's output, which no later layer reads).
        const corr = get(corrActs, hook);
        const onlyItsPosition = spec.activation === 'z' || spec.activation === 'q' || spec.activation === 'pattern';
        runCells = [];
        for (const c of cells) {
          if ((onlyItsPosition && l === n - 1 && posOf(c)! < P - 1) || sameSelection(src, corr, axes, c.select)) unchanged.push(c.index);
          else runCells.push(c);
        }
        // Cells in position order, so that a batch's first changed position is as late as it can be.
        runCells.sort((a, b) => posOf(a)! - posOf(b)!);
        if (runCells.length === 0) continue;
      }
      // Mask [cells*B, ...]: size 1 on axes no cell indexes, so it broadcasts.
      const indexed = new Set(Object.keys(cells[0]!.select));
      const maskDimsOf = (rows: number) => src.dims.map((s, i) => (i === 0 ? rows : indexed.has(axes[i]!) ? s : 1));
      const srcBytes = 4 * src.data.length;
      const cells2 = runCells;
      groups.push({
        cells: cells2.map((c) => c.index),
        bytesPerCell: 4 * B * P * d + srcBytes * 2,
        build: (chunk): CellRun => {
          const cells = cells2;
          const md = maskDimsOf(chunk.length * B);
          const mask = f32(md);
          const strides = md.map((_, i) => md.slice(i + 1).reduce((a, b) => a * b, 1));
          chunk.forEach((ci, c) => {
            const sel = cells[ci]!.select;
            for (let b = 0; b < B; b++) {
              let off = (c * B + b) * strides[0]!;
              axes.forEach((a, i) => {
                const idx = sel[a as keyof InterventionIndex];
                if (i > 0 && idx) off += idx[0]! * strides[i]!;
              });
              mask.data[off] = 1;
            }
          });
          const given = headQkv && (spec.activation === 'q' || spec.activation === 'k' || spec.activation === 'v');
          const run: CellRun = {
            startLayer: l,
            residual: tileBatch(start, chunk.length),
            interventions: given ? [] : [{ kind: 'patch', hook, mask, source: tileBatch(src, chunk.length) }],
            ...(posOf(cells[chunk[0]!]!) !== undefined ? { firstChanged: Math.min(...chunk.map((ci) => posOf(cells[ci]!)!)) } : {}),
          };
          if (headQkv) {
            run.qkv = async (from) => {
              const [q, k, v] = (['q', 'k', 'v'] as const).map((w) => {
                const t = tileBatch(slicePositions(get(corrActs, `blocks.${l}.attn.hook_${w}`), from, P), chunk.length);
                if (given && w === spec.activation) {
                  // The clean values of each cell's head (at its position, or all), as the mask selects.
                  const [, n, Hs, dh] = t.dims as [number, number, number, number];
                  chunk.forEach((ci, c) => {
                    const sel = cells[ci]!.select;
                    const h = sel.head_index![0]!;
                    for (let b = 0; b < B; b++) {
                      for (let p = from; p < P; p++) {
                        if (sel.pos && sel.pos[0] !== p) continue;
                        const at = ((b * P + p) * Hs + h) * dh;
                        t.data.set(src.data.subarray(at, at + dh), (((c * B + b) * n + p - from) * Hs + h) * dh);
                      }
                    }
                  });
                }
                return t;
              }) as [F32, F32, F32];
              return { q, k, v };
            };
          }
          return run;
        },
        ...(spec.by === 'pos' ? { firstChanged: (i: number) => posOf(cells2[i]!)! } : {}),
        // By position, joined waves run each position's cells over its positions only (30-35%
        // faster on the GPT-2-small-shaped bench prompts). Over all positions every cell computes
        // the same positions, and joining them only makes batches larger: 3-12% slower there.
        joinable: spec.by === 'pos',
      });
    }
  }
  if (unchanged.length > 0) {
    const v = withLogits ? lastPositionScore(corrRun.logits!, metric) : await corruptedValue(model, corrupted, metric);
    for (const i of unchanged) values[i] = v;
  }
  await runGroups(model, groups, B, P, metric, values, opts, () => result, prefix);
  return result;
}

/** Whether the clean and corrupted hook values agree on every prompt at a cell's selection (its head and position, all of its last axis). */
function sameSelection(a: F32, b: F32, axes: readonly string[], select: InterventionIndex): boolean {
  const dims = a.dims;
  const strides = dims.map((_, i) => dims.slice(i + 1).reduce((x, y) => x * y, 1));
  const last = dims[dims.length - 1]!;
  for (let bi = 0; bi < dims[0]!; bi++) {
    let off = bi * strides[0]!;
    for (let i = 1; i < axes.length - 1; i++) off += (select[axes[i] as keyof InterventionIndex]?.[0] ?? 0) * strides[i]!;
    for (let j = 0; j < last; j++) if (a.data[off + j] !== b.data[off + j]) return false;
  }
  return true;
}

/** The metric of the unpatched corrupted run (computed the way the cells are: last-position logits). */
async function corruptedValue(model: HookedTransformer, corrupted: Tokens, metric: Metric): Promise<number> {
  const lp = metric.lastPosition;
  const r = await model.run(corrupted, { lastPositionOnly: lp !== undefined, vocab: lp?.vocab ?? undefined });
  return lastPositionScore(r.logits!, metric);
}

/** The metric of logits [batch, pos, vocab] (pos 1 and the metric's vocabulary with a last-position reader). */
function lastPositionScore(logits: F32, metric: Metric): number {
  const lp = metric.lastPosition;
  return lp ? lp.score(f32([logits.dims[0]!, logits.dims[2]!], logits.data)) : metric(logits);
}

/** a + b element-wise in float32 (same dims). */
function addTensors(a: F32, b: F32): F32 {
  const out = new Float32Array(a.data.length);
  for (let i = 0; i < out.length; i++) out[i] = a.data[i]! + b.data[i]!;
  return f32([...a.dims], out);
}

/**
 * Single-neuron patches of layer L (all positions): the MLP output is linear in hook_post, so
 * patching neuron n changes it by (post_clean[.., n] - post_corr[.., n]) * W_out[n, :] and the
 * cells start at layer L+1 from
 *   resid_post' = resid_mid + (mlp_out + delta_n (x) W_out[n])      [batch, pos, d_model]
 * instead of recomputing the layer's 2 x d_model x d_mlp MLP per cell. This equals the naive
 * loop up to float32 rounding of the sum (the naive GEMM adds the same terms in another order).
 * Block L+1's attention is then taken from that rank-one change too (rankOneAttention.ts) where
 * the family allows it, so the cells start at its MLP.
 */
async function neuronGroup(model: HookedTransformer, cells: readonly PatchCell[], B: number, P: number, layer: number, cleanPost: F32, residMid: F32, corrPost: F32, mlpOut: F32, noRankOne: boolean): Promise<CellGroup> {
  const cfg = model.cfg;
  const d = cfg.d_model;
  const N = cfg.d_mlp!;
  const Wout = model.params.get(`blocks.${layer}.mlp.W_out`)!.data; // [d_mlp, d_model]
  const neuronOf = (ci: number) => cells[ci]!.select.d_mlp![0]!;
  /** alpha [cells, batch, pos]: each cell's clean - corrupted activation of its neuron. */
  const alphaOf = (chunk: readonly number[]): F32 => {
    const alpha = f32([chunk.length, B, P]);
    chunk.forEach((ci, c) => {
      const n = neuronOf(ci);
      for (let r = 0; r < B * P; r++) alpha.data[c * B * P + r] = cleanPost.data[r * N + n]! - corrPost.data[r * N + n]!;
    });
    return alpha;
  };
  // Block L+1's whole attention from the rank-one change of its input (rankOneAttention.ts):
  // the cells start at its MLP. Not for the families whose attention that path does not model,
  // nor with SAEs attached (they may splice into that block).
  if (!noRankOne && layer + 1 < cfg.n_layers && model.attachedSaes().length === 0 && rankOneAttentionUnsupported(cfg, layer + 1) === null) {
    const dirs = f32([cells.length, d]);
    cells.forEach((_, ci) => dirs.data.set(Wout.subarray(neuronOf(ci) * d, (neuronOf(ci) + 1) * d), ci * d));
    const attn = await rankOneAttention(model, layer + 1, residMid, mlpOut, dirs);
    return {
      cells: cells.map((c) => c.index),
      bytesPerCell: 4 * B * P * d,
      build: (chunk): CellRun => {
        const alpha = alphaOf(chunk);
        return { startLayer: layer + 1, interventions: [], midAt: { rows: chunk.length * B, positions: P, at: (from) => attn.residMid(chunk, alpha, from) } };
      },
    };
  }
  return {
    cells: cells.map((c) => c.index),
    bytesPerCell: 4 * B * P * d,
    build: (chunk): CellRun => {
      const resid = f32([chunk.length * B, P, d]);
      const alpha = alphaOf(chunk);
      chunk.forEach((ci, c) => {
        const w = Wout.subarray(neuronOf(ci) * d, (neuronOf(ci) + 1) * d);
        for (let r = 0; r < B * P; r++) {
          const delta = alpha.data[c * B * P + r]!;
          const o = (c * B * P + r) * d;
          for (let j = 0; j < d; j++) {
            const mlp = Math.fround(mlpOut.data[r * d + j]! + delta * w[j]!);
            resid.data[o + j] = residMid.data[r * d + j]! + mlp;
          }
        }
      });
      return { startLayer: layer + 1, residual: resid, interventions: [] };
    },
  };
}

/**
 * The reference the sweeps are tested against: one full forward per cell with the clean
 * activation patched in (TransformerLens's generic_activation_patch loop). Returns the metric.
 */
export async function naivePatchCell(model: HookedTransformer, cleanCache: ReadonlyMap<string, F32>, corrupted: Tokens, metric: Metric, cell: PatchCell): Promise<number> {
  const source = cleanCache.get(cell.hook);
  if (!source) throw new Error(`naivePatchCell: the clean cache lacks ${cell.hook}`);
  const logits = await model.runWithHooks(corrupted, [{ kind: 'patch', hook: cell.hook, index: cell.select, source }]);
  return metric(logits);
}

/**
 * Patch clean blocks.L.hook_resid_pre at each (layer, position) into the corrupted run.
 * Returns [layer][pos] metric values (TL get_act_patch_resid_pre).
 */
export async function patchResidPreByLayerPos(model: HookedTransformer, clean: Tokens, corrupted: Tokens, metric: Metric, opts: SweepOptions = {}): Promise<number[][]> {
  const r = await runPatchSweep(model, clean, corrupted, metric, { kind: 'layer_pos', hook: 'resid_pre' }, opts);
  return nest(r.values, r.dims) as number[][];
}

/**
 * Patch one head's clean activation (all positions) at `blocks.L.attn.hook_<which>` into the
 * corrupted run, for every layer and head. Returns [layer][head_index] (TL get_act_patch_attn_head_*_all_pos).
 */
export async function patchHeadAllPos(
  model: HookedTransformer, clean: Tokens, corrupted: Tokens, metric: Metric, which: HeadActivation = 'z', opts: SweepOptions = {},
): Promise<number[][]> {
  const r = await runPatchSweep(model, clean, corrupted, metric, { kind: 'head', activation: which, by: 'all_pos' }, opts);
  return nest(r.values, r.dims) as number[][];
}
