/**
 * Weight processing with TransformerLens's semantics (HookedTransformer.load_and_process_state_dict
 * and ProcessWeights.process_weights): fold_ln, center_writing_weights, center_unembed,
 * fold_value_biases and refactor_factored_attn_matrices, applied in that order and each only where
 * TransformerLens applies it. Every step leaves the model's log-probs unchanged (center_unembed
 * shifts every logit of a position by the same amount; the others leave logits unchanged) but
 * makes the weights easier to read: see TransformerLens's docs for why each exists.
 *
 * Param names and shapes are those of ../model/params.ts. Inputs are not mutated unless the
 * caller hands them over (`consume`): a changed tensor is a new tensor in the returned Map, an
 * unchanged one is shared with the input (treat params as immutable). Arithmetic is float64 per
 * operation, stored as float32.
 *
 * `consume` is for a loader's fresh tensors that nothing else reads (a model being loaded): the
 * steps then write into them instead of copying half a gigabyte of GPT-2 small first (the copy
 * and its page faults were a third of processing's time, measured). Tensors that share memory
 * with another parameter are still copied before their first write.
 */
import { isMoe, isPostNormArch, type HookedTransformerConfig } from '../model/config.js';
import type { Params, Processing } from '../model/params.js';
import { kvParamName, paramSpecs } from '../model/paramSpecs.js';
import { assertDims, f32, type F32 } from '../tensor/tensor.js';
import { factoredSvd, mat } from './linalg.js';
import { TIED_P, TIED_Q, TIED_SCALE, tiedUnembed } from '../model/unembed.js';

/** TransformerLens's flags; an omitted flag takes TransformerLens's default (all true but refactor). */
export interface ProcessingOptions {
  /** Fold each LayerNorm's w and b into the weights reading from it; LN becomes LNPre. */
  fold_ln?: boolean;
  /** Centre W_E, W_pos, W_O, b_O, W_out, b_out over d_model (LayerNorm models only). */
  center_writing_weights?: boolean;
  /** Centre W_U and b_U over the vocabulary. */
  center_unembed?: boolean;
  /** Move every head's b_V into the layer's b_O (attention patterns sum to 1). */
  fold_value_biases?: boolean;
  /** Re-factor W_Q W_Kᵀ and W_V W_O per head through their SVDs (default false). */
  refactor_factored_attn_matrices?: boolean;
}

export interface ProcessedWeights {
  cfg: HookedTransformerConfig;
  params: Params;
  /** Steps asked for but skipped, and why (TransformerLens logs these as warnings). */
  notes: string[];
}

/** The flags behind each processing mode ('default' is from_pretrained's defaults). */
export function processingOptions(mode: Processing): Required<ProcessingOptions> {
  switch (mode) {
    case 'none':
      return { fold_ln: false, center_writing_weights: false, center_unembed: false, fold_value_biases: false, refactor_factored_attn_matrices: false };
    case 'default':
      return { fold_ln: true, center_writing_weights: true, center_unembed: true, fold_value_biases: true, refactor_factored_attn_matrices: false };
    case 'default+refactor':
      return { fold_ln: true, center_writing_weights: true, center_unembed: true, fold_value_biases: true, refactor_factored_attn_matrices: true };
    default:
      throw new Error(`unknown processing mode ${JSON.stringify(mode)}; expected 'none', 'default' or 'default+refactor'`);
  }
}

/** `consume`: the caller hands the input tensors over to be modified in place (see the file header). */
export interface ProcessingCall {
  consume?: boolean;
}

export function applyProcessing(cfg: HookedTransformerConfig, params: Params, mode: Processing, call: ProcessingCall = {}): ProcessedWeights {
  return processWeights(cfg, params, processingOptions(mode), call);
}

export function processWeights(cfg: HookedTransformerConfig, params: Params, opts: ProcessingOptions = {}, call: ProcessingCall = {}): ProcessedWeights {
  const o = {
    fold_ln: opts.fold_ln ?? true,
    center_writing_weights: opts.center_writing_weights ?? true,
    center_unembed: opts.center_unembed ?? true,
    fold_value_biases: opts.fold_value_biases ?? true,
    refactor_factored_attn_matrices: opts.refactor_factored_attn_matrices ?? false,
  };
  const w = new Work(params, call.consume === true);
  const notes: string[] = [];
  let outCfg: HookedTransformerConfig = { ...cfg };
  checkShapes(cfg, w);
  // TransformerLens fills missing biases with zeros before processing (fill_missing_keys), so
  // every step below can assume them.
  fillMissingBiases(cfg, w);

  if (o.fold_ln) {
    const norm = cfg.normalization_type;
    if (isPostNormArch(cfg)) {
      notes.push(`fold_ln skipped: ${cfg.original_architecture} normalizes each sublayer's output, so no weight reads its norm's output (TransformerLens refuses it too)`);
    } else if (norm === null) {
      notes.push('fold_ln skipped: the model has no LayerNorm or RMSNorm (normalization_type is null)');
    } else if (![...w.names()].some((k) => /(^|\.)(ln1|ln2|ln_final)\.w$/.test(k))) {
      notes.push('fold_ln skipped: no LayerNorm weights in the params (already folded?)');
    } else {
      // RMSNorm has no bias and does not centre its input, so TransformerLens folds only its
      // weight and leaves the reading weights uncentred (fold_biases = center_weights = False).
      const rms = norm === 'RMS' || norm === 'RMSPre';
      foldLayerNorm(cfg, w, !rms);
      outCfg = { ...outCfg, normalization_type: rms ? 'RMSPre' : 'LNPre' };
    }
  }

  // Centring writing weights is only harmless when every reader of the residual stream
  // subtracts its mean first, i.e. behind a LayerNorm (folded or not).
  const canCentre = (outCfg.normalization_type === 'LN' || outCfg.normalization_type === 'LNPre') && !isPostNormArch(cfg);
  const centred = o.center_writing_weights && canCentre;
  if (o.center_writing_weights && !canCentre) {
    notes.push(`center_writing_weights skipped: only valid for LayerNorm models (normalization_type is ${JSON.stringify(outCfg.normalization_type)})`);
  }
  if (centred) centerWritingWeights(cfg, w);
  // A final-logit softcap is not shift-invariant (c·tanh((l - m) / c) is not c·tanh(l / c) - m),
  // so TransformerLens refuses to centre the unembedding of such a model; so do we.
  const softcap = cfg.output_logits_soft_cap !== null && cfg.output_logits_soft_cap > 0;
  if (o.center_unembed && softcap) notes.push('center_unembed skipped: the model softcaps its final logits, which a shift of the logits would change');
  if (o.center_unembed && !softcap) centerUnembed(w);
  if (o.fold_value_biases) {
    foldValueBiases(cfg, w);
    // b_O gained sum_h b_V W_O; with W_O centred that sum has zero mean already, but
    // TransformerLens re-centres b_O here regardless, and so do we.
    if (centred) {
      for (let l = 0; l < cfg.n_layers; l++) if (w.has(`blocks.${l}.attn.b_O`)) centerVector(w.mut(`blocks.${l}.attn.b_O`));
    }
  }
  if (o.refactor_factored_attn_matrices) refactorFactoredAttnMatrices(cfg, w);
  return { cfg: outCfg, params: w.params, notes };
}

/** The new Map being built; copies an input tensor the first time it is written. */
class Work {
  readonly params: Params;
  private readonly owned = new Set<string>();
  constructor(input: Params, consume: boolean) {
    this.params = new Map(input);
    if (consume) for (const n of unaliased(input)) this.owned.add(n);
  }
  names(): IterableIterator<string> {
    return this.params.keys();
  }
  has(name: string): boolean {
    return this.params.has(name);
  }
  get(name: string): F32 {
    const t = this.params.get(name);
    if (!t) throw new Error(`weight processing needs parameter ${name}, which is missing`);
    return t;
  }
  /** Writable data of `name`, owned by this run (never the caller's array). */
  mut(name: string): Float32Array {
    const t = this.get(name);
    if (this.owned.has(name)) return t.data;
    const copy = f32(t.dims, t.data.slice(), t.axes); // slice: a memcpy, unlike Float32Array.from
    this.params.set(name, copy);
    this.owned.add(name);
    return copy.data;
  }
  set(name: string, t: F32): void {
    this.params.set(name, t);
    this.owned.add(name);
  }
  delete(name: string): void {
    this.params.delete(name);
    this.owned.delete(name);
  }
}

/**
 * Names of the tensors whose bytes no other tensor of `params` shares (two views of one tied
 * array must not both be processed in place).
 */
function unaliased(params: Params): string[] {
  const byBuffer = new Map<ArrayBufferLike, { name: string; start: number; end: number }[]>();
  for (const [name, t] of params) {
    const d = t.data;
    let list = byBuffer.get(d.buffer);
    if (!list) byBuffer.set(d.buffer, (list = []));
    list.push({ name, start: d.byteOffset, end: d.byteOffset + d.byteLength });
  }
  const out: string[] = [];
  for (const list of byBuffer.values()) {
    list.sort((a, b) => a.start - b.start);
    let endBefore = -1; // the furthest end of the tensors that start earlier
    list.forEach((x, i) => {
      const next = list[i + 1];
      if (endBefore <= x.start && (!next || next.start >= x.end)) out.push(x.name);
      endBefore = Math.max(endBefore, x.end);
    });
  }
  return out;
}

/** Dims of every parameter the config can have (norm weights whether folded or not). */
function expectedDims(cfg: HookedTransformerConfig): Map<string, number[]> {
  const m = new Map<string, number[]>(paramSpecs({ ...cfg, normalization_type: 'LN', gated_mlp: cfg.gated_mlp }).map((s) => [s.name, s.dims]));
  if (cfg.d_mlp !== null) {
    for (let l = 0; l < cfg.n_layers; l++) {
      m.set(`blocks.${l}.mlp.ln.w`, [cfg.d_mlp]);
      m.set(`blocks.${l}.mlp.ln.b`, [cfg.d_mlp]);
    }
  }
  return m;
}

/** Fails early, naming the tensor, instead of producing garbage from a mis-shaped checkpoint. */
function checkShapes(cfg: HookedTransformerConfig, w: Work): void {
  for (const [name, dims] of expectedDims(cfg)) {
    const t = w.params.get(name);
    if (t) assertDims(name, t, dims);
  }
}

function fillMissingBiases(cfg: HookedTransformerConfig, w: Work): void {
  const { n_heads: H, d_model: D, d_head: E } = cfg;
  const fill = (weight: string, bias: string, dims: number[]): void => {
    if (w.has(weight) && !w.has(bias)) w.set(bias, f32(dims));
  };
  for (let l = 0; l < cfg.n_layers; l++) {
    const p = `blocks.${l}.`;
    fill(`${p}attn.W_Q`, `${p}attn.b_Q`, [H, E]);
    const KV = cfg.n_key_value_heads ?? H;
    fill(`${p}attn.${kvParamName(cfg, 'W_K')}`, `${p}attn.${kvParamName(cfg, 'b_K')}`, [KV, E]);
    fill(`${p}attn.${kvParamName(cfg, 'W_V')}`, `${p}attn.${kvParamName(cfg, 'b_V')}`, [KV, E]);
    fill(`${p}attn.W_O`, `${p}attn.b_O`, [D]);
    if (cfg.d_mlp !== null) {
      fill(`${p}mlp.W_in`, `${p}mlp.b_in`, [cfg.d_mlp]);
      fill(`${p}mlp.W_out`, `${p}mlp.b_out`, [D]);
    }
  }
  fill('unembed.W_U', 'unembed.b_U', [cfg.d_vocab_out]);
  fill(TIED_Q, 'unembed.b_U', [cfg.d_vocab_out]);
}

/** v -= mean(v). */
function centerVector(v: Float32Array): void {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]!;
  const mean = s / v.length;
  for (let i = 0; i < v.length; i++) v[i] = v[i]! - mean;
}

/**
 * For a row-major [rows, cols] block: subtract each row's mean (centre over the last axis). The
 * sum runs in four independent accumulators: one chain of dependent additions was the bound on
 * W_E and W_U (38.6M values each in GPT-2 small; ~30% of this step's time at load).
 */
function centerLastAxis(data: Float32Array, cols: number): void {
  const rows = data.length / cols;
  const n4 = cols - (cols % 4);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (let c = 0; c < n4; c += 4) {
      s0 += data[o + c]!;
      s1 += data[o + c + 1]!;
      s2 += data[o + c + 2]!;
      s3 += data[o + c + 3]!;
    }
    for (let c = n4; c < cols; c++) s0 += data[o + c]!;
    const mean = (s0 + s1 + (s2 + s3)) / cols;
    for (let c = 0; c < cols; c++) data[o + c] = data[o + c]! - mean;
  }
}

/**
 * Folds a LayerNorm (x -> normalized * lnW + lnB) into the weights that read its output:
 * W' = diag(lnW) W and b' = b + lnBᵀ W (with the original W), then, when `centre`, centres W'
 * over d_in (fold_layer_norm's center_weights: the LayerNorm's output has zero mean over d_in, so
 * that mean of a reading weight contributes nothing). `W` is [outer, d_in, inner] row-major
 * (outer = head_index for attention, 1 for MLP/unembed) and `b` is [outer, inner]. `lnW` null
 * means no LayerNorm weight to fold (centring only). One pass folds and sums, a second centres:
 * W_U [d_model, d_vocab] is large.
 */
function foldNormInto(W: Float32Array, b: Float32Array | null, lnW: Float32Array | null, lnB: Float32Array | null, dIn: number, inner: number, centre: boolean): void {
  const outer = W.length / (dIn * inner);
  const acc = new Float64Array(inner);
  const mean = new Float64Array(inner);
  const foldBias = b !== null && lnB !== null && lnW !== null;
  for (let o = 0; o < outer; o++) {
    acc.fill(0);
    mean.fill(0);
    for (let d = 0; d < dIn; d++) {
      const row = W.subarray((o * dIn + d) * inner, (o * dIn + d + 1) * inner);
      // One loop per case, so that no test runs per element (W_U alone is 38.6M in GPT-2 small).
      if (foldBias) foldRowWithBias(row, acc, mean, lnB[d]!, lnW[d]!);
      else if (lnW) foldRow(row, mean, lnW[d]!);
      else for (let i = 0; i < inner; i++) mean[i]! += row[i]!;
    }
    if (foldBias) for (let i = 0; i < inner; i++) b[o * inner + i] = b[o * inner + i]! + acc[i]!;
    if (!centre) continue;
    for (let i = 0; i < inner; i++) mean[i]! /= dIn;
    for (let d = 0; d < dIn; d++) {
      const row = (o * dIn + d) * inner;
      for (let i = 0; i < inner; i++) W[row + i] = W[row + i]! - mean[i]!;
    }
  }
}

/** acc += x·gb and x <- x·gw (stored as float32) over a row; mean += the stored values, which are what gets centred. */
function foldRowWithBias(row: Float32Array, acc: Float64Array, mean: Float64Array, gb: number, gw: number): void {
  for (let i = 0; i < row.length; i++) {
    const x = row[i]!;
    acc[i]! += x * gb;
    const y = Math.fround(x * gw);
    row[i] = y;
    mean[i]! += y;
  }
}

/** x <- x·gw (stored as float32) over a row; mean += the stored values. */
function foldRow(row: Float32Array, mean: Float64Array, gw: number): void {
  for (let i = 0; i < row.length; i++) {
    const y = Math.fround(row[i]! * gw);
    row[i] = y;
    mean[i]! += y;
  }
}

/**
 * `centre`: LayerNorm (fold biases, centre the reading weights); false for RMSNorm (its weight
 * only: it has no bias, and its input is not centred so neither may the weights be).
 */
function foldLayerNorm(cfg: HookedTransformerConfig, w: Work, centre: boolean): void {
  const { d_model: D, d_head: E } = cfg;
  const data = (n: string): Float32Array | null => (w.has(n) ? w.get(n).data : null);
  const bias = (n: string): Float32Array | null => (centre ? data(n) : null);
  for (let l = 0; l < cfg.n_layers; l++) {
    const p = `blocks.${l}.`;
    // ln1 -> W_Q, W_K, W_V [heads, d_model, d_head] and b_Q, b_K, b_V [heads, d_head]
    // (K and V have n_key_value_heads heads under grouped-query attention).
    if (w.has(`${p}attn.W_Q`)) {
      const ln1w = data(`${p}ln1.w`);
      const ln1b = bias(`${p}ln1.b`);
      foldNormInto(w.mut(`${p}attn.W_Q`), w.mut(`${p}attn.b_Q`), ln1w, ln1b, D, E, centre);
      for (const x of ['K', 'V'] as const) {
        foldNormInto(w.mut(`${p}attn.${kvParamName(cfg, `W_${x}`)}`), w.mut(`${p}attn.${kvParamName(cfg, `b_${x}`)}`), ln1w, ln1b, D, E, centre);
      }
    }
    // Mixture of experts: ln2's gain -> the router and every expert's W_in / W_gate, all nn.Linear
    // [d_out, d_model], so the gain scales their columns (TransformerLens folds it into all of
    // them or none: every expert reads ln2's output). MoE models are RMS-normalized (makeConfig).
    const ln2w = data(`${p}ln2.w`);
    if (isMoe(cfg) && ln2w) {
      const names = [`${p}mlp.W_gate.weight`];
      for (let ex = 0; ex < cfg.num_experts!; ex++) names.push(`${p}mlp.experts.${ex}.W_in.weight`, `${p}mlp.experts.${ex}.W_gate.weight`);
      for (const n of names) {
        const W = w.mut(n);
        for (let i = 0; i < W.length; i++) W[i] = W[i]! * ln2w[i % D]!;
      }
    }
    // ln2 -> W_in (and W_gate) [d_model, d_mlp], b_in [d_mlp]. A gated MLP's bias is added after
    // the product, so only W_in's bias path folds the norm's bias (none for RMS).
    if (!cfg.attn_only && cfg.d_mlp !== null && w.has(`${p}mlp.W_in`)) {
      const M = cfg.d_mlp;
      foldNormInto(w.mut(`${p}mlp.W_in`), w.mut(`${p}mlp.b_in`), data(`${p}ln2.w`), bias(`${p}ln2.b`), D, M, centre);
      if (cfg.gated_mlp && w.has(`${p}mlp.W_gate`)) foldNormInto(w.mut(`${p}mlp.W_gate`), null, data(`${p}ln2.w`), null, D, M, centre);
      // SoLU's LayerNorm over d_mlp -> W_out [d_mlp, d_model], b_out [d_model]; W_out is then
      // centred over d_mlp, the axis that LayerNorm normalizes.
      const lnw = data(`${p}mlp.ln.w`);
      if (cfg.act_fn === 'solu_ln' && lnw && w.has(`${p}mlp.W_out`)) {
        foldNormInto(w.mut(`${p}mlp.W_out`), w.mut(`${p}mlp.b_out`), lnw, data(`${p}mlp.ln.b`), M, D, true);
      }
    }
  }
  // ln_final -> W_U [d_model, d_vocab_out], b_U [d_vocab_out].
  const lnfw = data('ln_final.w');
  if (lnfw && w.has('unembed.W_U')) {
    foldNormInto(w.mut('unembed.W_U'), w.mut('unembed.b_U'), lnfw, bias('ln_final.b'), D, cfg.d_vocab_out, centre);
  } else if (lnfw && w.has(TIED_Q)) {
    foldNormIntoTied(w, lnfw, bias('ln_final.b'), centre);
  }
  // The model now runs LNPre (no affine): the LayerNorm params no longer exist.
  for (const k of [...w.names()]) {
    if (/(^|\.)(ln1|ln2|ln_final|mlp\.ln)\.[wb]$/.test(k)) w.delete(k);
  }
}

/**
 * Everything reading the residual stream sits behind a LayerNorm that subtracts the mean over
 * d_model, so each writer's mean component is invisible: remove it from W_E, W_pos,
 * W_O [head_index, d_head, d_model], b_O, W_out [d_mlp, d_model] and b_out.
 */
function centerWritingWeights(cfg: HookedTransformerConfig, w: Work): void {
  const D = cfg.d_model;
  if (w.has(TIED_Q)) centerTiedEmbedding(w);
  else centerLastAxis(w.mut('embed.W_E'), D);
  if (w.has('pos_embed.W_pos')) centerLastAxis(w.mut('pos_embed.W_pos'), D);
  for (let l = 0; l < cfg.n_layers; l++) {
    const p = `blocks.${l}.`;
    if (w.has(`${p}attn.W_O`)) {
      centerLastAxis(w.mut(`${p}attn.W_O`), D);
      if (w.has(`${p}attn.b_O`)) centerVector(w.mut(`${p}attn.b_O`));
    }
    if (!cfg.attn_only && w.has(`${p}mlp.W_out`)) {
      centerLastAxis(w.mut(`${p}mlp.W_out`), D);
      if (w.has(`${p}mlp.b_out`)) centerVector(w.mut(`${p}mlp.b_out`));
    }
  }
}

/** Softmax ignores a shift shared by all logits: centre W_U [d_model, d_vocab_out] and b_U over the vocabulary. */
function centerUnembed(w: Work): void {
  if (w.has(TIED_Q)) {
    centerTiedUnembed(w);
    if (w.has('unembed.b_U')) centerVector(w.mut('unembed.b_U'));
    return;
  }
  const W = w.get('unembed.W_U');
  centerLastAxis(w.mut('unembed.W_U'), W.dims[1]!);
  if (w.has('unembed.b_U')) centerVector(w.mut('unembed.b_U'));
}

// A tied W_U is kept as W_U = diag(scale) W_Eᵀ + P Q (model/unembed.ts). Each step below does
// to those factors what its untied twin does to W_U, adding one rank-one term P[:, k] Q[k, :]
// where the step subtracts a mean, so that the W_U they stand for is TransformerLens's.

/** P [d_model, K] and Q [K, d_vocab_out] extended by the rank-one term p qᵀ. */
function addTiedRankOne(w: Work, p: ArrayLike<number>, q: ArrayLike<number>): void {
  const P = w.get(TIED_P);
  const Q = w.get(TIED_Q);
  const [D, K] = P.dims as [number, number];
  const V = Q.dims[1]!;
  const P2 = new Float32Array(D * (K + 1));
  for (let d = 0; d < D; d++) {
    for (let k = 0; k < K; k++) P2[d * (K + 1) + k] = P.data[d * K + k]!;
    P2[d * (K + 1) + K] = p[d]!;
  }
  const Q2 = new Float32Array((K + 1) * V);
  Q2.set(Q.data);
  for (let v = 0; v < V; v++) Q2[K * V + v] = q[v]!;
  w.set(TIED_P, f32([D, K + 1], P2, P.axes));
  w.set(TIED_Q, f32([K + 1, V], Q2, Q.axes));
}

/**
 * For every token v: (Σ_d a[d]·W_E[v, d], Σ_d c[d]·W_E[v, d]) summed with the rank-one terms,
 * i.e. aᵀ W_U[:, v] and cᵀ W_U[:, v] in float64 (one pass over W_E for both).
 */
function tiedColumnDots(w: Work, a: ArrayLike<number> | null, c: ArrayLike<number> | null): { a: Float64Array; c: Float64Array } {
  const t = tiedUnembed(w.params)!;
  const { d: D, V, K } = t;
  const E = t.W_E.data;
  const s = (d: number): number => (t.scale ? t.scale[d]! : 1);
  const as = a ? Float64Array.from({ length: D }, (_, d) => a[d]! * s(d)) : null;
  const cs = c ? Float64Array.from({ length: D }, (_, d) => c[d]! * s(d)) : null;
  // aᵀ P [K] and cᵀ P [K]: the rank-one terms' share of each dot.
  const aP = new Float64Array(K);
  const cP = new Float64Array(K);
  for (let d = 0; d < D; d++) {
    for (let k = 0; k < K; k++) {
      if (a) aP[k]! += a[d]! * t.P.data[d * K + k]!;
      if (c) cP[k]! += c[d]! * t.P.data[d * K + k]!;
    }
  }
  const outA = new Float64Array(V);
  const outC = new Float64Array(V);
  for (let v = 0; v < V; v++) {
    const row = v * D;
    let sa = 0, sc = 0;
    if (as) for (let d = 0; d < D; d++) sa += as[d]! * E[row + d]!;
    if (cs) for (let d = 0; d < D; d++) sc += cs[d]! * E[row + d]!;
    for (let k = 0; k < K; k++) {
      sa += aP[k]! * t.Q.data[k * V + v]!;
      sc += cP[k]! * t.Q.data[k * V + v]!;
    }
    outA[v] = sa;
    outC[v] = sc;
  }
  return { a: outA, c: outC };
}

/**
 * fold_ln's ln_final step on a tied W_U: b_U += lnBᵀ W_U (with the W_U before folding), W_U <-
 * diag(lnW) W_U (scale and P's rows times lnW), then with `centre` W_U's columns lose their mean
 * over d_model (the rank-one term -1 · meanᵀ).
 */
function foldNormIntoTied(w: Work, lnW: Float32Array, lnB: Float32Array | null, centre: boolean): void {
  const t = tiedUnembed(w.params)!;
  const D = t.d;
  // Both sums read the W_U before folding: b_U gains lnBᵀ W_U, and the column sums of
  // diag(lnW) W_U are lnWᵀ W_U (one pass over W_E for the two).
  const dots = lnB || centre ? tiedColumnDots(w, lnB, centre ? lnW : null) : null;
  if (lnB) {
    const bU = w.mut('unembed.b_U');
    for (let v = 0; v < t.V; v++) bU[v] = bU[v]! + dots!.a[v]!;
  }
  const scale = new Float32Array(D);
  for (let d = 0; d < D; d++) scale[d] = lnW[d]! * (t.scale ? t.scale[d]! : 1);
  w.set(TIED_SCALE, f32([D], scale, ['d_model']));
  const P = w.mut(TIED_P);
  for (let d = 0; d < D; d++) for (let k = 0; k < t.K; k++) P[d * t.K + k] = P[d * t.K + k]! * lnW[d]!;
  if (!centre) return;
  addTiedRankOne(w, new Float32Array(D).fill(-1), Float32Array.from(dots!.c, (x) => x / D));
}

/**
 * center_writing_weights's W_E step when W_U is tied to it: W_E's rows lose their mean m (as for
 * any model), and W_U, which TransformerLens keeps apart, keeps the old rows: scale·m over the
 * vocabulary comes back as the rank-one term scale mᵀ.
 */
function centerTiedEmbedding(w: Work): void {
  const t = tiedUnembed(w.params)!;
  const { d: D, V } = t;
  const E = w.mut('embed.W_E');
  const means = new Float64Array(V);
  for (let v = 0; v < V; v++) {
    let s = 0;
    for (let d = 0; d < D; d++) s += E[v * D + d]!;
    means[v] = s / D;
  }
  centerLastAxis(E, D);
  addTiedRankOne(w, t.scale ?? new Float32Array(D).fill(1), means);
}

/** center_unembed on a tied W_U: each row loses its mean over the vocabulary (the rank-one term -mean 1ᵀ). */
function centerTiedUnembed(w: Work): void {
  const t = tiedUnembed(w.params)!;
  const { d: D, V, K } = t;
  const E = t.W_E.data;
  const colMeanE = new Float64Array(D);
  for (let v = 0; v < V; v++) for (let d = 0; d < D; d++) colMeanE[d]! += E[v * D + d]!;
  const qMean = new Float64Array(K);
  for (let k = 0; k < K; k++) {
    let s = 0;
    for (let v = 0; v < V; v++) s += t.Q.data[k * V + v]!;
    qMean[k] = s / V;
  }
  const rowMean = new Float64Array(D);
  for (let d = 0; d < D; d++) {
    let m = (t.scale ? t.scale[d]! : 1) * (colMeanE[d]! / V);
    for (let k = 0; k < K; k++) m += t.P.data[d * K + k]! * qMean[k]!;
    rowMean[d] = -m;
  }
  addTiedRankOne(w, rowMean, new Float32Array(V).fill(1));
}

/**
 * b_O += sum over (head_index, d_head) of b_V[h, e] W_O[h, e, :], then b_V = 0: attention
 * patterns sum to 1, so each head's value bias adds the constant b_V W_O to the layer output.
 */
function foldValueBiasesInLayer(cfg: HookedTransformerConfig, w: Work, l: number): void {
  const p = `blocks.${l}.attn.`;
  const bVName = `${p}${kvParamName(cfg, 'b_V')}`;
  if (!w.has(bVName) || !w.has(`${p}W_O`)) return;
  const { n_heads: H, d_head: E, d_model: D } = cfg;
  // Under grouped-query attention, query head h reads value head floor(h / (n_heads / kv_head)).
  const group = H / (cfg.n_key_value_heads ?? H);
  const bV = w.get(bVName).data;
  const WO = w.get(`${p}W_O`).data;
  const acc = new Float64Array(D);
  for (let h = 0; h < H; h++) {
    for (let e = 0; e < E; e++) {
      const b = bV[Math.floor(h / group) * E + e]!;
      if (b === 0) continue;
      const row = (h * E + e) * D;
      for (let d = 0; d < D; d++) acc[d]! += b * WO[row + d]!;
    }
  }
  const bO = w.mut(`${p}b_O`);
  for (let d = 0; d < D; d++) bO[d] = bO[d]! + acc[d]!;
  const old = w.get(bVName);
  w.set(bVName, f32([...old.dims], undefined, old.axes));
}

function foldValueBiases(cfg: HookedTransformerConfig, w: Work): void {
  for (let l = 0; l < cfg.n_layers; l++) foldValueBiasesInLayer(cfg, w, l);
}

/**
 * Per head, replaces the factorisations of W_QK and W_OV by "even" ones from their SVDs (the
 * products, hence the model's computation, are unchanged):
 *  - QK: with the biases as an extra input row, W_Q_eff = [W_Q; b_Q] and W_K_eff = [W_K; b_K]
 *    ([d_model+1, d_head]), so that (x W_Q + b_Q)(y W_K + b_K)ᵀ = [x,1] W_Q_eff W_K_effᵀ [y,1]ᵀ.
 *    If W_Q_eff W_K_effᵀ = U S Vᵀ, then W_Q_eff' = U sqrt(S) and W_K_eff' = V sqrt(S).
 *  - OV: b_O += sum_h b_V W_O and b_V = 0 (as fold_value_biases); then if W_V W_O = U S Vᵀ,
 *    W_V' = U S [d_model, d_head] and W_O' = Vᵀ [d_head, d_model] (W_O becomes a rotation).
 * Singular vectors carry a per-component sign of our choosing (see linalg.ts): q, k, v and z
 * agree with TransformerLens's up to a sign per d_head component; scores, patterns, head
 * results and everything downstream are unaffected.
 */
function refactorFactoredAttnMatrices(cfg: HookedTransformerConfig, w: Work): void {
  if ((cfg.positional_embedding_type as string) === 'rotary') {
    throw new Error("refactor_factored_attn_matrices can't be used with rotary embeddings: the QK matrix depends on the positions");
  }
  if (cfg.n_key_value_heads !== null) throw new Error('refactor_factored_attn_matrices is not supported with grouped-query attention');
  const { n_heads: H, d_model: D, d_head: E } = cfg;
  if (E > D) throw new Error(`refactor_factored_attn_matrices needs d_head <= d_model (got d_head ${E}, d_model ${D})`);
  for (let l = 0; l < cfg.n_layers; l++) {
    const p = `blocks.${l}.attn.`;
    if (!w.has(`${p}W_Q`)) continue;
    const WQ = w.mut(`${p}W_Q`);
    const WK = w.mut(`${p}W_K`);
    const bQ = w.mut(`${p}b_Q`);
    const bK = w.mut(`${p}b_K`);
    for (let h = 0; h < H; h++) {
      const qEff = mat(D + 1, E); // [d_model+1, d_head]
      const kEffT = mat(E, D + 1); // [d_head, d_model+1]
      for (let d = 0; d <= D; d++) {
        for (let e = 0; e < E; e++) {
          qEff.data[d * E + e] = d < D ? WQ[(h * D + d) * E + e]! : bQ[h * E + e]!;
          kEffT.data[e * (D + 1) + d] = d < D ? WK[(h * D + d) * E + e]! : bK[h * E + e]!;
        }
      }
      const { U, S, V } = factoredSvd(qEff, kEffT); // U, V [d_model+1, d_head]
      for (let d = 0; d <= D; d++) {
        for (let e = 0; e < E; e++) {
          const r = Math.sqrt(S[e]!);
          const q = U.data[d * E + e]! * r;
          const k = V.data[d * E + e]! * r;
          if (d < D) {
            WQ[(h * D + d) * E + e] = q;
            WK[(h * D + d) * E + e] = k;
          } else {
            bQ[h * E + e] = q;
            bK[h * E + e] = k;
          }
        }
      }
    }

    foldValueBiasesInLayer(cfg, w, l);
    const WV = w.mut(`${p}W_V`);
    const WO = w.mut(`${p}W_O`);
    for (let h = 0; h < H; h++) {
      const wv = mat(D, E, WV.subarray(h * D * E, (h + 1) * D * E)); // [d_model, d_head]
      const wo = mat(E, D, WO.subarray(h * E * D, (h + 1) * E * D)); // [d_head, d_model]
      const { U, S, V } = factoredSvd(wv, wo); // U, V [d_model, d_head]
      for (let d = 0; d < D; d++) {
        for (let e = 0; e < E; e++) {
          WV[(h * D + d) * E + e] = U.data[d * E + e]! * S[e]!;
          WO[(h * E + e) * D + d] = V.data[d * E + e]!;
        }
      }
    }
  }
}
