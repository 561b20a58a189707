/**
 * ActivationCache: the activations of one forward pass (hook name -> tensor, TransformerLens
 * axis order, see hooks/hooks.ts) plus the config and params that produced them, with
 * TransformerLens's ActivationCache helpers for residual-stream analysis: accumulated_resid,
 * decompose_resid, stack_head_results, stack_neuron_results, apply_ln_to_stack, logit_attrs and
 * get_full_resid_decomposition, under the same argument names and the same semantics.
 *
 * Stacks are F32 tensors shaped [component, batch, pos, d_model] (axes named so), where
 *   - the batch axis is absent when the cache has no batch dim (hasBatchDim: false), and
 *   - the pos axis is absent when pos_slice picks a single position (a number), exactly as
 *     TransformerLens's Slice in "int" mode drops the dimension.
 * Below, "rows" means the batch and pos axes that survive (TransformerLens's
 * *batch_and_pos_dims); row r of a stack is one d_model vector per component.
 *
 * apply_ln follows TransformerLens: centre each component (LN / LNPre only: a folded model,
 * normalization_type 'LNPre', still centres) and divide it by the *cached* LayerNorm scale of
 * the layer the stack feeds (blocks.L.ln1/ln2.hook_scale, or ln_final.hook_scale for the
 * unembed). Because the scale is the one the real residual stream had, the normalised
 * components still sum to the normalised residual stream; this linearity is what makes direct
 * logit attribution additive. No LN weight or bias is applied (in a folded model they live in
 * W_U / b_U; in an unfolded one TransformerLens ignores them here too).
 *
 * Number crunching is plain loops over Float32Array with float64 accumulators; the only
 * allocations are the output tensors (and one d_model-sized scratch row where needed), so the
 * helpers stay usable on GPT-2 small caches ([8, 128, 768] per hook).
 */
import { f32, numel, type F32, type Tensor } from '../tensor/tensor.js';
import { parseHook } from '../hooks/hooks.js';
import type { HookedTransformerConfig } from '../model/config.js';
import type { Params } from '../model/params.js';
import { isTiedUnembed, unembedColumns, unembedDims } from '../model/unembed.js';

// ---------------------------------------------------------------------------------------------
// Slices
// ---------------------------------------------------------------------------------------------

/**
 * TransformerLens's SliceInput, for the pos axis (and the batch / neuron axes where offered):
 *   undefined / null        every index, axis kept              (TL: None)
 *   number                  one index, negative from the end; the axis is dropped (TL: int)
 *   {start?, stop?, step?}  a Python range slice, axis kept     (TL: a tuple, e.g. (2, 5))
 *   readonly number[]       these indices in this order, axis kept (TL: a list)
 * A JavaScript array cannot be told apart from a tuple, so ranges are written as objects.
 */
export type SliceInput =
  | number
  | readonly number[]
  | { readonly start?: number; readonly stop?: number; readonly step?: number }
  | null
  | undefined;

export interface ResolvedSlice {
  /** Indices into the axis, in output order, all in [0, length). */
  readonly indices: readonly number[];
  /** True for a single-number slice: the axis disappears from the output. */
  readonly collapse: boolean;
  /** True when the slice keeps the axis unchanged (no copy needed). */
  readonly identity: boolean;
}

/** Resolves a SliceInput against an axis of `length`, with Python's rules; throws on bad input. */
export function resolveSlice(s: SliceInput, length: number, what = 'pos_slice'): ResolvedSlice {
  const all = (): number[] => Array.from({ length }, (_, i) => i);
  if (s === undefined || s === null) return { indices: all(), collapse: false, identity: true };
  const checkIndex = (i: unknown): number => {
    if (typeof i !== 'number' || !Number.isInteger(i)) {
      throw new Error(`${what}: ${JSON.stringify(i)} is not an integer index`);
    }
    const j = i < 0 ? i + length : i;
    if (j < 0 || j >= length) {
      throw new Error(`${what}: index ${i} is out of range for an axis of length ${length} (valid: ${-length}..${length - 1})`);
    }
    return j;
  };
  if (typeof s === 'number') return { indices: [checkIndex(s)], collapse: true, identity: false };
  if (Array.isArray(s)) {
    const idx = (s as readonly unknown[]).map(checkIndex);
    return { indices: idx, collapse: false, identity: idx.length === length && idx.every((v, i) => v === i) };
  }
  if (typeof s === 'object') {
    const r = s as { start?: unknown; stop?: unknown; step?: unknown };
    for (const k of ['start', 'stop', 'step'] as const) {
      const v = r[k];
      if (v !== undefined && v !== null && (typeof v !== 'number' || !Number.isInteger(v))) {
        throw new Error(`${what}: range ${k} must be an integer, got ${JSON.stringify(v)}`);
      }
    }
    const step = (r.step as number | undefined) ?? 1;
    if (step === 0) throw new Error(`${what}: range step cannot be 0`);
    // Python's slice.indices(length).
    const norm = (v: number | undefined, dflt: number, lo: number, hi: number): number => {
      if (v === undefined || v === null) return dflt;
      const x = v < 0 ? v + length : v;
      return Math.min(Math.max(x, lo), hi);
    };
    const idx: number[] = [];
    if (step > 0) {
      const start = norm(r.start as number | undefined, 0, 0, length);
      const stop = norm(r.stop as number | undefined, length, 0, length);
      for (let i = start; i < stop; i += step) idx.push(i);
    } else {
      const start = norm(r.start as number | undefined, length - 1, -1, length - 1);
      const stop = norm(r.stop as number | undefined, -1, -1, length - 1);
      for (let i = start; i > stop; i += step) idx.push(i);
    }
    return { indices: idx, collapse: false, identity: idx.length === length && idx.every((v, i) => v === i) };
  }
  throw new Error(`${what}: expected a number, an array of indices, {start, stop, step} or null; got ${JSON.stringify(s)}`);
}

// ---------------------------------------------------------------------------------------------
// Tokens and residual directions
// ---------------------------------------------------------------------------------------------

/** A token id, a [n] list, a [batch, pos] grid, or an int32 tensor of any rank. */
export type TokenInput = number | readonly number[] | readonly (readonly number[])[] | Tensor<'int32'>;

function flattenTokens(tokens: TokenInput, what: string): { ids: ArrayLike<number>; dims: number[] } {
  if (typeof tokens === 'number') return { ids: [tokens], dims: [] };
  if (!Array.isArray(tokens)) {
    const t = tokens as Tensor<'int32'>;
    return { ids: t.data, dims: [...t.dims] };
  }
  const arr = tokens as readonly (number | readonly number[])[];
  if (arr.length > 0 && Array.isArray(arr[0])) {
    const rows = arr as readonly (readonly number[])[];
    const w = rows[0]!.length;
    const ids: number[] = [];
    for (const row of rows) {
      if (!Array.isArray(row) || row.length !== w) throw new Error(`${what}: rows must all be arrays of length ${w}`);
      ids.push(...row);
    }
    return { ids, dims: [rows.length, w] };
  }
  return { ids: arr as readonly number[], dims: [arr.length] };
}

/**
 * TransformerLens's model.tokens_to_residual_directions: the unembedding column of each token,
 * W_U[:, t], i.e. the residual direction whose dot product with the (normalised) final residual
 * is that token's logit (b_U excluded). Given incorrect_tokens (same shape), returns
 * W_U[:, t] - W_U[:, t'], the logit-difference direction.
 *   params: needs unembed.W_U [d_model, d_vocab_out] (or a tied one's factors, model/unembed.ts)
 *   tokens: scalar -> [d_model]; [n] -> [n, d_model]; [batch, pos] -> [batch, pos, d_model]
 */
export function tokensToResidualDirections(params: Params, tokens: TokenInput, incorrect_tokens?: TokenInput | null): F32 {
  if (!params.has('unembed.W_U') && !isTiedUnembed(params)) throw new Error('tokensToResidualDirections needs the model parameter unembed.W_U [d_model, d_vocab_out]');
  const W = params.get('unembed.W_U');
  if (W && W.dims.length !== 2) throw new Error(`unembed.W_U must be [d_model, d_vocab_out], got [${W.dims.join(', ')}]`);
  const [d, V] = unembedDims(params);
  const a = flattenTokens(tokens, 'tokens');
  const b = incorrect_tokens === undefined || incorrect_tokens === null ? null : flattenTokens(incorrect_tokens, 'incorrect_tokens');
  if (b && (a.dims.length !== b.dims.length || a.dims.some((x, i) => x !== b.dims[i]))) {
    throw new Error(`tokens and incorrect_tokens must have the same shape (tokens [${a.dims.join(', ')}], incorrect_tokens [${b.dims.join(', ')}])`);
  }
  const check = (t: number, what: string): number => {
    if (!Number.isInteger(t) || t < 0 || t >= V) throw new Error(`${what}: token id ${t} is not in 0..${V - 1} (d_vocab_out ${V})`);
    return t;
  };
  const n = a.ids.length;
  const ids: number[] = [];
  for (let j = 0; j < n; j++) {
    ids.push(check(a.ids[j]!, 'tokens'));
    if (b) ids.push(check(b.ids[j]!, 'incorrect_tokens'));
  }
  // The columns asked for, [d_model, n or 2n] (a tied W_U builds just these from W_E).
  const cols = unembedColumns(params, ids).data;
  const m = ids.length;
  const out = new Float32Array(n * d);
  for (let j = 0; j < n; j++) {
    const o = j * d;
    if (b) {
      for (let i = 0; i < d; i++) out[o + i] = cols[i * m + 2 * j]! - cols[i * m + 2 * j + 1]!;
    } else {
      for (let i = 0; i < d; i++) out[o + i] = cols[i * m + j]!;
    }
  }
  const axes = a.dims.length === 0 ? ['d_model'] : a.dims.length === 1 ? ['token', 'd_model'] : a.dims.length === 2 ? ['batch', 'pos', 'd_model'] : undefined;
  return f32([...a.dims, d], out, axes);
}

/**
 * Logit-difference directions for [correct, wrong] answer pairs:
 * answers [batch, 2] -> [batch, d_model], row b = W_U[:, correct_b] - W_U[:, wrong_b].
 */
export function answerResidualDirections(params: Params, answers: readonly (readonly number[])[]): F32 {
  const { correct, wrong } = splitAnswers(answers);
  return tokensToResidualDirections(params, correct, wrong);
}

/** answers [batch, 2] of [correct, wrong] -> the two columns. */
export function splitAnswers(answers: readonly (readonly number[])[]): { correct: number[]; wrong: number[] } {
  const correct: number[] = [];
  const wrong: number[] = [];
  answers.forEach((pair, i) => {
    if (!Array.isArray(pair) || pair.length !== 2) {
      throw new Error(`answers[${i}] must be a [correct, wrong] pair of token ids, got ${JSON.stringify(pair)}`);
    }
    correct.push(pair[0]!);
    wrong.push(pair[1]!);
  });
  return { correct, wrong };
}

/**
 * TransformerLens's model.accumulated_bias: the sum of the output biases (b_O of every attention
 * layer, b_out of every MLP when include_mlp_biases) written into the residual stream before the
 * input of `layer` (in [0, n_layers]); mlp_input adds that layer's own b_O. Shape [d_model].
 */
export function accumulatedBias(params: Params, cfg: HookedTransformerConfig, layer: number, mlp_input = false, include_mlp_biases = true): F32 {
  if (!Number.isInteger(layer) || layer < 0 || layer > cfg.n_layers) {
    throw new Error(`accumulatedBias: layer must be in 0..${cfg.n_layers}, got ${layer}`);
  }
  if (mlp_input && layer >= cfg.n_layers) throw new Error('accumulatedBias: mlp_input needs a layer below n_layers (the unembed has no MLP)');
  const d = cfg.d_model;
  const acc = new Float64Array(d);
  const add = (name: string): void => {
    const t = params.get(name);
    if (!t) throw new Error(`accumulatedBias: model parameter ${name} is missing`);
    for (let i = 0; i < d; i++) acc[i]! += t.data[i]!;
  };
  for (let l = 0; l < layer; l++) {
    add(`blocks.${l}.attn.b_O`);
    if (include_mlp_biases && !cfg.attn_only) add(`blocks.${l}.mlp.b_out`);
  }
  if (mlp_input) add(`blocks.${layer}.attn.b_O`);
  return f32([d], Float32Array.from(acc), ['d_model']);
}

// ---------------------------------------------------------------------------------------------
// Kernels (flat loops; no per-element allocation)
// ---------------------------------------------------------------------------------------------

/** Above this many floats (2 GiB) a stack is refused with advice rather than an opaque RangeError. */
const MAX_STACK_FLOATS = 2 ** 29;

function allocStack(n: number, what: string): Float32Array {
  if (n > MAX_STACK_FLOATS) {
    throw new Error(
      `${what} would hold ${n.toLocaleString('en-US')} floats (${((n * 4) / 2 ** 30).toFixed(1)} GiB); ` +
        'narrow it with pos_slice (e.g. -1), fewer layers, expand_neurons: false or project_output_onto',
    );
  }
  return new Float32Array(n);
}

/**
 * Copies src viewed as [outer, axisLen, inner] with the axis gathered at `idx` into dst at
 * dstOff ([outer, idx.length, inner] row-major); returns the offset after the copy.
 */
function gatherAxis(src: Float32Array, outer: number, axisLen: number, inner: number, idx: readonly number[], dst: Float32Array, dstOff: number): number {
  let o = dstOff;
  for (let a = 0; a < outer; a++) {
    const base = a * axisLen;
    for (const p of idx) {
      const s = (base + p) * inner;
      for (let i = 0; i < inner; i++) dst[o + i] = src[s + i]!;
      o += inner;
    }
  }
  return o;
}

/**
 * In place: for each of nComp x rows d-vectors x, x <- (x - mean(x)) / scale[row] (centring only
 * when `center`). scale has one entry per row; the rows repeat for every component.
 */
function lnRowsInPlace(data: Float32Array, nComp: number, rows: number, d: number, scale: Float32Array, center: boolean): void {
  let o = 0;
  for (let c = 0; c < nComp; c++) {
    for (let r = 0; r < rows; r++, o += d) {
      let mean = 0;
      if (center) {
        for (let i = 0; i < d; i++) mean += data[o + i]!;
        mean /= d;
      }
      const s = scale[r]!;
      for (let i = 0; i < d; i++) data[o + i] = (data[o + i]! - mean) / s;
    }
  }
}

/**
 * Projects nComp x rows d-vectors (src from srcOff) onto P [d, K]: dst[c, r, k] = x . P[:, k],
 * or with LN (scale given) ((x - mean(x)) . P[:, k]) / scale[r] = (x . P[:, k] - mean(x) sumP[k]) / scale[r].
 * acc is a K-long float64 scratch row.
 */
function projectRows(
  src: Float32Array, srcOff: number, nComp: number, rows: number, d: number,
  P: Float32Array, K: number, sumP: Float64Array, scale: Float32Array | null, center: boolean,
  dst: Float32Array, dstOff: number, acc: Float64Array,
): number {
  let s = srcOff;
  let o = dstOff;
  for (let c = 0; c < nComp; c++) {
    for (let r = 0; r < rows; r++, s += d, o += K) {
      acc.fill(0);
      let mean = 0;
      for (let i = 0; i < d; i++) {
        const x = src[s + i]!;
        mean += x;
        const pi = i * K;
        for (let k = 0; k < K; k++) acc[k]! += x * P[pi + k]!;
      }
      mean /= d;
      if (scale) {
        const sc = scale[r]!;
        const m = center ? mean : 0;
        for (let k = 0; k < K; k++) dst[o + k] = (acc[k]! - m * sumP[k]!) / sc;
      } else {
        for (let k = 0; k < K; k++) dst[o + k] = acc[k]!;
      }
    }
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// The cache
// ---------------------------------------------------------------------------------------------

export interface LabeledStack {
  /** [component, batch, pos, d_model] (batch / pos absent as described at the top of the file). */
  stack: F32;
  /** One label per component, TransformerLens's labels. */
  labels: string[];
}

export interface ActivationCacheOptions {
  /** false when every activation lacks the leading batch axis (TL's remove_batch_dim). Default true. */
  hasBatchDim?: boolean;
}

/** Geometry of the cached run: batch size (1 when there is no batch axis) and sequence length. */
interface Geometry {
  batch: number;
  pos: number;
}

/** Rows a stack keeps after slicing pos: their dims / axis names and how to gather them. */
interface Rows {
  ps: ResolvedSlice;
  /** Product of the surviving batch and pos dims. */
  count: number;
  dims: number[];
  axes: string[];
}

/** Optional projection of every component onto P [d_model, K] (or a [d_model] vector, K = 1, squeezed). */
interface Projection {
  P: Float32Array;
  K: number;
  squeeze: boolean;
  sumP: Float64Array;
}

export class ActivationCache {
  readonly cfg: HookedTransformerConfig;
  readonly params: Params;
  readonly hasBatchDim: boolean;
  /** Own copy of the map, so computeHeadResults never mutates the caller's map. */
  private readonly acts: Map<string, F32>;

  /**
   * acts: hook name -> activation in TransformerLens axis order (see hooks.ts), all from one run.
   * params: the parameters of the model that ran (W_U for directions, W_O / W_out / b_O / b_out
   * for head and neuron results and biases). The cache keeps references; it copies no tensor.
   */
  constructor(acts: Map<string, F32> | Iterable<[string, F32]>, cfg: HookedTransformerConfig, params: Params, opts: ActivationCacheOptions = {}) {
    this.acts = new Map(acts);
    this.cfg = cfg;
    this.params = params;
    this.hasBatchDim = opts.hasBatchDim ?? true;
  }

  // ----- dictionary access -------------------------------------------------------------------

  has(name: string): boolean {
    return this.acts.has(name);
  }

  keys(): string[] {
    return [...this.acts.keys()];
  }

  get size(): number {
    return this.acts.size;
  }

  entries(): IterableIterator<[string, F32]> {
    return this.acts.entries();
  }

  /** The cached activation `name` (a full TransformerLens hook name); throws listing what is cached. */
  get(name: string): F32 {
    const t = this.acts.get(name);
    if (t) return t;
    throw new Error(this.missingMessage(name));
  }

  /** Summary of the cached names, with per-layer names folded: blocks.{0-11}.hook_resid_pre. */
  describeKeys(): string {
    const bySuffix = new Map<string, number[]>();
    const plain: string[] = [];
    for (const k of this.acts.keys()) {
      const m = /^blocks\.(\d+)\.(.+)$/.exec(k);
      if (!m) {
        plain.push(k);
        continue;
      }
      const list = bySuffix.get(m[2]!) ?? [];
      list.push(Number(m[1]));
      bySuffix.set(m[2]!, list);
    }
    const ranges = (ls: number[]): string => {
      const s = [...new Set(ls)].sort((a, b) => a - b);
      const parts: string[] = [];
      for (let i = 0; i < s.length; ) {
        let j = i;
        while (j + 1 < s.length && s[j + 1] === s[j]! + 1) j++;
        parts.push(j > i ? `${s[i]}-${s[j]}` : String(s[i]));
        i = j + 1;
      }
      return parts.length === 1 && !parts[0]!.includes('-') ? parts[0]! : `{${parts.join(',')}}`;
    };
    const folded = [...bySuffix.entries()].map(([suf, ls]) => `blocks.${ranges(ls)}.${suf}`);
    return [...plain, ...folded].join(', ');
  }

  private missingMessage(name: string): string {
    let why = '';
    if (parseHook(name, this.cfg) === null) {
      const m = /^blocks\.(\d+)\./.exec(name);
      why =
        m && Number(m[1]) >= this.cfg.n_layers
          ? ` (the model has ${this.cfg.n_layers} layers, 0..${this.cfg.n_layers - 1})`
          : ' (not a TransformerLens hook name: use full names such as blocks.0.hook_resid_pre or ln_final.hook_scale)';
    } else {
      why = ' (cache this hook when running the model)';
    }
    const held = this.acts.size === 0 ? 'the cache is empty' : `the cache holds ${this.acts.size}: ${this.describeKeys()}`;
    return `ActivationCache has no activation ${JSON.stringify(name)}${why}; ${held}`;
  }

  // ----- geometry helpers --------------------------------------------------------------------

  /** Number of leading batch axes on every cached activation (1 or 0). */
  private get nb(): number {
    return this.hasBatchDim ? 1 : 0;
  }

  /** Batch size and sequence length, read from a residual-stream hook. */
  private geometry(): Geometry {
    for (const name of ['hook_embed', 'blocks.0.hook_resid_pre', 'hook_pos_embed', `blocks.${this.cfg.n_layers - 1}.hook_resid_post`]) {
      const t = this.acts.get(name);
      if (t) return this.residGeometry(name, t);
    }
    return this.residGeometry('blocks.0.hook_resid_pre', this.get('blocks.0.hook_resid_pre'));
  }

  /** Validates a [batch, pos, d_model] (or [pos, d_model]) activation and returns its geometry. */
  private residGeometry(name: string, t: F32): Geometry {
    const want = 2 + this.nb;
    if (t.dims.length !== want || t.dims[want - 1] !== this.cfg.d_model) {
      throw new Error(`${name}: expected [${this.hasBatchDim ? 'batch, ' : ''}pos, d_model=${this.cfg.d_model}], got [${t.dims.join(', ')}]`);
    }
    return { batch: this.hasBatchDim ? t.dims[0]! : 1, pos: t.dims[want - 2]! };
  }

  /** A residual-shaped activation, checked against the run's geometry. */
  private resid(name: string, g: Geometry): F32 {
    const t = this.get(name);
    const tg = this.residGeometry(name, t);
    if (tg.batch !== g.batch || tg.pos !== g.pos) {
      throw new Error(`${name}: shape [${t.dims.join(', ')}] does not match the cache's batch ${g.batch} / pos ${g.pos}`);
    }
    return t;
  }

  private rows(g: Geometry, pos_slice: SliceInput): Rows {
    const ps = resolveSlice(pos_slice, g.pos, 'pos_slice');
    const dims: number[] = [];
    const axes: string[] = [];
    if (this.hasBatchDim) {
      dims.push(g.batch);
      axes.push('batch');
    }
    if (!ps.collapse) {
      dims.push(ps.indices.length);
      axes.push('pos');
    }
    return { ps, count: g.batch * ps.indices.length, dims, axes };
  }

  /** Resolves TL's layer argument: undefined / null / -1 mean n_layers (the unembed input). */
  private resolveLayer(layer: number | null | undefined, fn: string): number {
    const n = this.cfg.n_layers;
    if (layer === undefined || layer === null || layer === -1) return n;
    if (!Number.isInteger(layer) || layer < 0 || layer > n) {
      throw new Error(`${fn}: layer must be an integer in 0..${n} (${n}, -1 or undefined = the input to the unembed), got ${layer}`);
    }
    return layer;
  }

  /** The residual stream that is the input to `layer` (its resid_pre, or the final resid_post). */
  private residInputName(layer: number, mlp_input: boolean): string {
    if (mlp_input) return `blocks.${layer}.hook_resid_mid`;
    return layer < this.cfg.n_layers ? `blocks.${layer}.hook_resid_pre` : `blocks.${this.cfg.n_layers - 1}.hook_resid_post`;
  }

  private projection(p: F32 | null | undefined): Projection | null {
    if (!p) return null;
    const d = this.cfg.d_model;
    if (p.dims[0] !== d || p.dims.length < 1 || p.dims.length > 2) {
      throw new Error(`project_output_onto must be [d_model=${d}] or [d_model=${d}, n_outputs], got [${p.dims.join(', ')}]`);
    }
    const K = p.dims.length === 2 ? p.dims[1]! : 1;
    const sumP = new Float64Array(K);
    for (let i = 0; i < d; i++) for (let k = 0; k < K; k++) sumP[k]! += p.data[i * K + k]!;
    return { P: p.data, K, squeeze: p.dims.length === 1, sumP };
  }

  // ----- stacks ------------------------------------------------------------------------------

  /** Stacks residual-shaped activations, pos-sliced, into [component, ...rows, d_model]. */
  private stackResid(names: readonly string[], g: Geometry, rows: Rows, what: string): F32 {
    const d = this.cfg.d_model;
    const out = allocStack(names.length * rows.count * d, what);
    let o = 0;
    for (const name of names) {
      const t = this.resid(name, g);
      o = gatherAxis(t.data, g.batch, g.pos, d, rows.ps.indices, out, o);
    }
    return f32([names.length, ...rows.dims, d], out, ['component', ...rows.axes, 'd_model']);
  }

  /**
   * TL accumulated_resid: the residual stream at the input of each layer up to `layer`
   * (blocks.l.hook_resid_pre, labelled 'l_pre'), with incl_mid also each earlier resid_mid
   * ('l_mid'), with mlp_input also resid_mid of `layer` itself, and for layer = n_layers the
   * final blocks.(n-1).hook_resid_post ('final_post').
   * Returns stack [component, batch, pos, d_model].
   *
   * apply_ln: normalise with the cached scale of `layer`'s LN (ln_final for n_layers), as
   * TransformerLens 2.x does; this is what reproduces the logit lens in expected.json.
   * recompute_ln (only for layer = n_layers, TransformerLens 3's default there): normalise each
   * component with its own mean and variance instead, then apply ln_final.w / .b when the model
   * has them, as if each partial stream were the final one.
   */
  accumulatedResid(
    layer?: number | null,
    opts: { incl_mid?: boolean; apply_ln?: boolean; pos_slice?: SliceInput; mlp_input?: boolean; recompute_ln?: boolean } = {},
  ): LabeledStack {
    const L = this.resolveLayer(layer, 'accumulatedResid');
    const n = this.cfg.n_layers;
    if (opts.mlp_input && L >= n) throw new Error('accumulatedResid: mlp_input needs a layer below n_layers');
    const names: string[] = [];
    const labels: string[] = [];
    for (let l = 0; l <= L; l++) {
      if (l === n) {
        names.push(`blocks.${n - 1}.hook_resid_post`);
        labels.push('final_post');
        continue;
      }
      names.push(`blocks.${l}.hook_resid_pre`);
      labels.push(`${l}_pre`);
      if ((opts.incl_mid && l < L) || (opts.mlp_input && l === L)) {
        names.push(`blocks.${l}.hook_resid_mid`);
        labels.push(`${l}_mid`);
      }
    }
    const g = this.geometry();
    const rows = this.rows(g, opts.pos_slice);
    let stack = this.stackResid(names, g, rows, 'accumulatedResid');
    if (opts.recompute_ln) {
      if (L !== n) throw new Error('accumulatedResid: recompute_ln applies only to the final layer (layer = n_layers)');
      if (opts.apply_ln === false) throw new Error('accumulatedResid: recompute_ln needs apply_ln');
      this.recomputeFinalLnInPlace(stack);
    } else if (opts.apply_ln) {
      stack = this.applyLnToStack(stack, L, { pos_slice: opts.pos_slice, mlp_input: opts.mlp_input ?? false });
    }
    return { stack, labels };
  }

  /** ln_final applied to each d_model row with its own statistics (plus w / b when present). */
  private recomputeFinalLnInPlace(stack: F32): void {
    const type = this.cfg.normalization_type;
    if (type === null) return;
    const d = this.cfg.d_model;
    const w = this.params.get('ln_final.w')?.data;
    const b = this.params.get('ln_final.b')?.data;
    const x = stack.data;
    // RMSNorm (RMS / RMSPre) neither centres nor has a bias: x / sqrt(mean(x^2) + eps) (* w).
    const centre = this.centers();
    for (let o = 0; o < x.length; o += d) {
      let mean = 0;
      if (centre) for (let i = 0; i < d; i++) mean += x[o + i]!;
      mean /= d;
      let v = 0;
      for (let i = 0; i < d; i++) {
        const c = x[o + i]! - mean;
        v += c * c;
      }
      const s = Math.sqrt(v / d + this.cfg.eps);
      for (let i = 0; i < d; i++) {
        let y = (x[o + i]! - mean) / s;
        if (w) y *= w[i]!;
        if (b) y += b[i]!;
        x[o + i] = y;
      }
    }
  }

  /**
   * TL decompose_resid: the residual stream at the input of `layer` as a stack of the outputs
   * that were added into it: 'embed' (hook_embed), 'pos_embed' (hook_pos_embed) when
   * incl_embeds and cached, then for each l < layer 'l_attn_out' (blocks.l.hook_attn_out, unless
   * mode 'mlp') and 'l_mlp_out' (blocks.l.hook_mlp_out, unless mode 'attn' or attn-only), and
   * with mlp_input also `layer`'s attn_out. In mode 'all' with embeds the components sum to
   * blocks.(layer).hook_resid_pre (the final hook_resid_post for layer = n_layers).
   * Returns stack [component, batch, pos, d_model].
   */
  decomposeResid(
    layer?: number | null,
    opts: { mode?: 'all' | 'attn' | 'mlp'; incl_embeds?: boolean; apply_ln?: boolean; pos_slice?: SliceInput; mlp_input?: boolean } = {},
  ): LabeledStack {
    const L = this.resolveLayer(layer, 'decomposeResid');
    const mode = opts.mode ?? 'all';
    if (mode !== 'all' && mode !== 'attn' && mode !== 'mlp') throw new Error(`decomposeResid: mode must be 'all', 'attn' or 'mlp', got ${JSON.stringify(mode)}`);
    const mlp_input = opts.mlp_input ?? false;
    if (mlp_input && L >= this.cfg.n_layers) throw new Error('decomposeResid: mlp_input needs a layer below n_layers');
    const inclAttn = mode !== 'mlp';
    const inclMlp = mode !== 'attn' && !this.cfg.attn_only;
    const names: string[] = [];
    const labels: string[] = [];
    if (opts.incl_embeds ?? true) {
      if (this.acts.has('hook_embed')) {
        names.push('hook_embed');
        labels.push('embed');
      }
      if (this.acts.has('hook_pos_embed')) {
        names.push('hook_pos_embed');
        labels.push('pos_embed');
      }
    }
    for (let l = 0; l < L; l++) {
      if (inclAttn) {
        names.push(`blocks.${l}.hook_attn_out`);
        labels.push(`${l}_attn_out`);
      }
      if (inclMlp) {
        names.push(`blocks.${l}.hook_mlp_out`);
        labels.push(`${l}_mlp_out`);
      }
    }
    if (mlp_input && inclAttn) {
      names.push(`blocks.${L}.hook_attn_out`);
      labels.push(`${L}_attn_out`);
    }
    const g = this.geometry();
    const rows = this.rows(g, opts.pos_slice);
    let stack = this.stackResid(names, g, rows, 'decomposeResid');
    if (opts.apply_ln) stack = this.applyLnToStack(stack, L, { pos_slice: opts.pos_slice, mlp_input });
    return { stack, labels };
  }

  /**
   * Per-head outputs of one layer: blocks.l.attn.hook_result [batch, pos, head_index, d_model]
   * when cached; otherwise z @ W_O from blocks.l.attn.hook_z [batch, pos, head_index, d_head] and
   * blocks.l.attn.W_O [head_index, d_head, d_model]. Writes components (l, h) for h in 0..H-1,
   * each over the sliced rows, into dst at dstOff ([H, ...rows, d_model]); returns the end offset.
   * Computing from z only for the selected positions avoids materialising every head's result.
   */
  private writeHeadResults(l: number, g: Geometry, rows: Rows, dst: Float32Array, dstOff: number): number {
    const H = this.cfg.n_heads;
    const d = this.cfg.d_model;
    const idx = rows.ps.indices;
    const P = g.pos;
    const resultName = `blocks.${l}.attn.hook_result`;
    const cached = this.acts.get(resultName);
    let o = dstOff;
    if (cached) {
      this.checkDims(resultName, cached, [g.batch, P, H, d]);
      const src = cached.data;
      for (let h = 0; h < H; h++) {
        for (let b = 0; b < g.batch; b++) {
          for (const p of idx) {
            const s = (((b * P + p) * H) + h) * d;
            for (let i = 0; i < d; i++) dst[o + i] = src[s + i]!;
            o += d;
          }
        }
      }
      return o;
    }
    const zName = `blocks.${l}.attn.hook_z`;
    const z = this.acts.get(zName);
    if (!z) {
      throw new Error(`head results of layer ${l} need ${resultName} or ${zName} in the cache; ${this.missingMessage(zName).replace(/^.*?; /, '')}`);
    }
    const dh = this.cfg.d_head;
    this.checkDims(zName, z, [g.batch, P, H, dh]);
    const WO = this.params.get(`blocks.${l}.attn.W_O`);
    if (!WO) throw new Error(`head results of layer ${l}: ${resultName} is not cached and the parameter blocks.${l}.attn.W_O is missing`);
    if (WO.dims.length !== 3 || WO.dims[0] !== H || WO.dims[1] !== dh || WO.dims[2] !== d) {
      throw new Error(`blocks.${l}.attn.W_O must be [${H}, ${dh}, ${d}], got [${WO.dims.join(', ')}]`);
    }
    const zd = z.data;
    const w = WO.data;
    for (let h = 0; h < H; h++) {
      for (let b = 0; b < g.batch; b++) {
        for (const p of idx) {
          // dst row = sum_k z[b, p, h, k] * W_O[h, k, :]; dst starts zeroed (fresh allocation).
          // Four k at a time: a quarter of the read-modify-writes of the float32 row.
          const zs = ((b * P + p) * H + h) * dh;
          let k = 0;
          for (; k + 3 < dh; k += 4) {
            const z0 = zd[zs + k]!;
            const z1 = zd[zs + k + 1]!;
            const z2 = zd[zs + k + 2]!;
            const z3 = zd[zs + k + 3]!;
            const w0 = (h * dh + k) * d;
            const w1 = w0 + d;
            const w2 = w1 + d;
            const w3 = w2 + d;
            for (let i = 0; i < d; i++) dst[o + i]! += z0 * w[w0 + i]! + z1 * w[w1 + i]! + z2 * w[w2 + i]! + z3 * w[w3 + i]!;
          }
          for (; k < dh; k++) {
            const zk = zd[zs + k]!;
            const ws = (h * dh + k) * d;
            for (let i = 0; i < d; i++) dst[o + i]! += zk * w[ws + i]!;
          }
          o += d;
        }
      }
    }
    return o;
  }

  /** Checks an activation's dims against the run's, allowing for the absent batch axis. */
  private checkDims(name: string, t: F32, withBatch: number[]): void {
    const want = this.hasBatchDim ? withBatch : withBatch.slice(1);
    if (t.dims.length !== want.length || t.dims.some((x, i) => x !== want[i])) {
      throw new Error(`${name}: expected shape [${want.join(', ')}], got [${t.dims.join(', ')}]`);
    }
  }

  /**
   * TL compute_head_results: caches blocks.l.attn.hook_result [batch, pos, head_index, d_model]
   * = hook_z @ W_O for every layer that lacks it. Optional: stackHeadResults computes what it
   * needs on the fly; call this only to read the per-head results with get().
   */
  computeHeadResults(): void {
    const g = this.geometry();
    const rows = this.rows(g, null);
    const H = this.cfg.n_heads;
    const d = this.cfg.d_model;
    for (let l = 0; l < this.cfg.n_layers; l++) {
      const name = `blocks.${l}.attn.hook_result`;
      if (this.acts.has(name)) continue;
      const tmp = allocStack(H * rows.count * d, name);
      this.writeHeadResults(l, g, rows, tmp, 0);
      // tmp is [head, batch, pos, d_model]; the hook is [batch, pos, head, d_model].
      const out = new Float32Array(tmp.length);
      const R = rows.count;
      for (let h = 0; h < H; h++) for (let r = 0; r < R; r++) {
        const s = (h * R + r) * d;
        const t = (r * H + h) * d;
        for (let i = 0; i < d; i++) out[t + i] = tmp[s + i]!;
      }
      const dims = this.hasBatchDim ? [g.batch, g.pos, H, d] : [g.pos, H, d];
      const axes = this.hasBatchDim ? ['batch', 'pos', 'head_index', 'd_model'] : ['pos', 'head_index', 'd_model'];
      this.acts.set(name, f32(dims, out, axes));
    }
  }

  /**
   * TL stack_head_results: every attention head's output (its contribution to the residual
   * stream, without b_O) for the layers before `layer`, labels 'L{l}H{h}' in layer-major order.
   * Returns stack [n_layers_covered * n_heads, batch, pos, d_model]. Summed over one layer's
   * heads plus b_O it equals blocks.l.hook_attn_out. incl_remainder appends 'remainder': the
   * residual input of `layer` minus all heads. apply_ln: see applyLnToStack (layer `layer`).
   */
  stackHeadResults(layer?: number | null, opts: { pos_slice?: SliceInput; apply_ln?: boolean; incl_remainder?: boolean } = {}): LabeledStack {
    const L = this.resolveLayer(layer, 'stackHeadResults');
    const H = this.cfg.n_heads;
    const d = this.cfg.d_model;
    const g = this.geometry();
    const rows = this.rows(g, opts.pos_slice);
    const nComp = L * H + (opts.incl_remainder ? 1 : 0);
    const out = allocStack(nComp * rows.count * d, 'stackHeadResults');
    const labels: string[] = [];
    let o = 0;
    for (let l = 0; l < L; l++) {
      o = this.writeHeadResults(l, g, rows, out, o);
      for (let h = 0; h < H; h++) labels.push(`L${l}H${h}`);
    }
    if (opts.incl_remainder) {
      this.writeRemainder(this.residInputName(L, false), g, rows, out, o, L * H);
      labels.push('remainder');
    }
    let stack = f32([nComp, ...rows.dims, d], out, ['component', ...rows.axes, 'd_model']);
    if (opts.apply_ln) stack = this.applyLnToStack(stack, L, { pos_slice: opts.pos_slice });
    return { stack, labels };
  }

  /** Writes target (pos-sliced) minus the sum of the first nPrev components of dst at dstOff. */
  private writeRemainder(target: string, g: Geometry, rows: Rows, dst: Float32Array, dstOff: number, nPrev: number): void {
    const t = this.resid(target, g);
    const d = this.cfg.d_model;
    gatherAxis(t.data, g.batch, g.pos, d, rows.ps.indices, dst, dstOff);
    const block = rows.count * d;
    for (let c = 0; c < nPrev; c++) {
      const s = c * block;
      for (let i = 0; i < block; i++) dst[dstOff + i]! -= dst[s + i]!;
    }
  }

  /** blocks.l.mlp.hook_post [batch, pos, d_mlp] and blocks.l.mlp.W_out [d_mlp, d_model], checked. */
  private neuronInputs(l: number, g: Geometry): { post: Float32Array; W: Float32Array; N: number } {
    const N = this.cfg.d_mlp;
    if (this.cfg.attn_only || N === null) throw new Error('neuron results need an MLP; this model is attention-only');
    const postName = `blocks.${l}.mlp.hook_post`;
    const post = this.get(postName);
    this.checkDims(postName, post, [g.batch, g.pos, N]);
    const W = this.params.get(`blocks.${l}.mlp.W_out`);
    if (!W) throw new Error(`neuron results of layer ${l} need the parameter blocks.${l}.mlp.W_out`);
    if (W.dims.length !== 2 || W.dims[0] !== N || W.dims[1] !== this.cfg.d_model) {
      throw new Error(`blocks.${l}.mlp.W_out must be [${N}, ${this.cfg.d_model}], got [${W.dims.join(', ')}]`);
    }
    return { post: post.data, W: W.data, N };
  }

  /** TL's neuron_slice: an int selects one neuron but keeps the axis (so layers can be concatenated). */
  private neuronIndices(neuron_slice: SliceInput): number[] {
    const N = this.cfg.d_mlp ?? 0;
    const ns = resolveSlice(neuron_slice, N, 'neuron_slice');
    return [...ns.indices];
  }

  /**
   * Neuron results of layers l < L: component (l, n) row r = post[r, n] * W_out[n, :], written as
   * [L * |neurons|, ...rows, d_model], or with a projection [.., K] (value post[r, n] * (W_out[n] .
   * P[:, k]), and with LN (post[r, n] / scale[r]) * (W_out[n] . P[:, k] - mean(W_out[n]) sumP[k]),
   * the cached-scale LN being linear), so the d_mlp x d_model expansion is never materialised.
   */
  private writeNeuronResults(
    L: number, g: Geometry, rows: Rows, neurons: readonly number[], dst: Float32Array, dstOff: number,
    proj: Projection | null, lnScale: Float32Array | null,
  ): number {
    const d = this.cfg.d_model;
    const idx = rows.ps.indices;
    const P = g.pos;
    const center = this.cfg.normalization_type === 'LN' || this.cfg.normalization_type === 'LNPre';
    let o = dstOff;
    for (let l = 0; l < L; l++) {
      const { post, W, N } = this.neuronInputs(l, g);
      if (!proj) {
        for (const n of neurons) {
          const ws = n * d;
          for (let b = 0; b < g.batch; b++) {
            for (const p of idx) {
              const a = post[(b * P + p) * N + n]!;
              for (let i = 0; i < d; i++) dst[o + i] = a * W[ws + i]!;
              o += d;
            }
          }
        }
        continue;
      }
      const K = proj.K;
      const lin = new Float64Array(K);
      for (const n of neurons) {
        // lin[k] = W_out[n] . P[:, k]  (minus mean(W_out[n]) * sumP[k] when LN centres).
        lin.fill(0);
        let mean = 0;
        const ws = n * d;
        for (let i = 0; i < d; i++) {
          const wv = W[ws + i]!;
          mean += wv;
          for (let k = 0; k < K; k++) lin[k]! += wv * proj.P[i * K + k]!;
        }
        mean /= d;
        if (lnScale && center) for (let k = 0; k < K; k++) lin[k]! -= mean * proj.sumP[k]!;
        let r = 0;
        for (let b = 0; b < g.batch; b++) {
          for (const p of idx) {
            let a = post[(b * P + p) * N + n]!;
            if (lnScale) a /= lnScale[r]!;
            for (let k = 0; k < K; k++) dst[o + k] = a * lin[k]!;
            o += K;
            r++;
          }
        }
      }
    }
    return o;
  }

  /**
   * TL stack_neuron_results: every MLP neuron's output (post activation times its W_out row, no
   * b_out) for layers before `layer`, labels 'L{l}N{n}'. Returns [n_layers_covered * n_neurons,
   * batch, pos, d_model], or [.., n_outputs] / [..] with project_output_onto [d_model, n_outputs] /
   * [d_model]. incl_remainder appends the residual input of `layer` (resid_mid with mlp_input)
   * minus all neurons. apply_ln uses `layer`'s ln1 (ln2 with mlp_input) cached scale.
   * Beware: unprojected, this is d_mlp components per layer (GPT-2 small: 3072 x 8 x 128 x 768).
   */
  stackNeuronResults(
    layer?: number | null,
    opts: { pos_slice?: SliceInput; neuron_slice?: SliceInput; apply_ln?: boolean; mlp_input?: boolean; incl_remainder?: boolean; project_output_onto?: F32 | null } = {},
  ): LabeledStack {
    const L = this.resolveLayer(layer, 'stackNeuronResults');
    const mlp_input = opts.mlp_input ?? false;
    if (mlp_input && L >= this.cfg.n_layers) throw new Error('stackNeuronResults: mlp_input needs a layer below n_layers');
    const g = this.geometry();
    const rows = this.rows(g, opts.pos_slice);
    const neurons = this.neuronIndices(opts.neuron_slice);
    const proj = this.projection(opts.project_output_onto);
    const labels: string[] = [];
    for (let l = 0; l < L; l++) for (const n of neurons) labels.push(`L${l}N${n}`);
    const d = this.cfg.d_model;
    const width = proj ? proj.K : d;
    const nComp = L * neurons.length + (opts.incl_remainder ? 1 : 0);
    const out = allocStack(nComp * rows.count * width, 'stackNeuronResults');
    const ln = opts.apply_ln ? this.lnScaleRows(L, mlp_input, opts.pos_slice, null, g) : null;
    let o = this.writeNeuronResults(L, g, rows, neurons, out, 0, proj, proj ? ln : null);
    if (opts.incl_remainder) {
      const target = this.residInputName(L, mlp_input);
      if (!proj) {
        this.writeRemainder(target, g, rows, out, o, L * neurons.length);
      } else {
        const tmp = allocStack(rows.count * d, 'stackNeuronResults remainder');
        gatherAxis(this.resid(target, g).data, g.batch, g.pos, d, rows.ps.indices, tmp, 0);
        o = projectRows(tmp, 0, 1, rows.count, d, proj.P, proj.K, proj.sumP, ln, this.centers(), out, o, new Float64Array(proj.K));
        const block = rows.count * proj.K;
        const rs = o - block;
        for (let c = 0; c < L * neurons.length; c++) for (let i = 0; i < block; i++) out[rs + i]! -= out[c * block + i]!;
      }
      labels.push('remainder');
    }
    if (opts.apply_ln && !proj && ln) lnRowsInPlace(out, nComp, rows.count, d, ln, this.centers());
    const tail = proj ? (proj.squeeze ? [] : [proj.K]) : [d];
    const tailAxes = proj ? (proj.squeeze ? [] : ['output']) : ['d_model'];
    return { stack: f32([nComp, ...rows.dims, ...tail], out, ['component', ...rows.axes, ...tailAxes]), labels };
  }

  private centers(): boolean {
    return this.cfg.normalization_type === 'LN' || this.cfg.normalization_type === 'LNPre';
  }

  /**
   * The cached LN scale for the input of `layer` (ln_final for n_layers, else ln1, or ln2 with
   * mlp_input), pos- and batch-sliced, flattened to one value per row. null without LayerNorm.
   */
  private lnScaleRows(layer: number, mlp_input: boolean, pos_slice: SliceInput, batch_slice: SliceInput, g: Geometry): Float32Array | null {
    if (this.cfg.normalization_type === null) return null;
    return this.lnScale(layer, mlp_input, pos_slice, batch_slice, g).data;
  }

  /** The cached scale, sliced, as [batch, pos] without the trailing 1 (axes as in a stack's rows). */
  private lnScale(layer: number, mlp_input: boolean, pos_slice: SliceInput, batch_slice: SliceInput, g: Geometry): F32 {
    const n = this.cfg.n_layers;
    if (mlp_input && layer >= n) throw new Error('apply_ln: mlp_input needs a layer below n_layers (the unembed uses ln_final)');
    const key = layer === n ? 'ln_final.hook_scale' : `blocks.${layer}.ln${mlp_input ? 2 : 1}.hook_scale`;
    if (!this.acts.has(key)) {
      throw new Error(`apply_ln needs the cached LayerNorm scale ${key} [batch, pos, 1]; ${this.missingMessage(key).replace(/^.*?; /, '')}`);
    }
    const t = this.acts.get(key)!;
    this.checkDims(key, t, [g.batch, g.pos, 1]);
    const rows = this.rows(g, pos_slice);
    let data = new Float32Array(rows.count);
    gatherAxis(t.data, g.batch, g.pos, 1, rows.ps.indices, data, 0);
    let dims = rows.dims;
    if (this.hasBatchDim && batch_slice !== undefined && batch_slice !== null) {
      const bs = resolveSlice(batch_slice, g.batch, 'batch_slice');
      const per = rows.ps.indices.length;
      const picked = new Float32Array(bs.indices.length * per);
      gatherAxis(data, 1, g.batch, per, bs.indices, picked, 0);
      data = picked;
      dims = bs.collapse ? dims.slice(1) : [bs.indices.length, ...dims.slice(1)];
    }
    return f32(dims, data);
  }

  /**
   * TL apply_ln_to_stack: treats each component of `stack` [component, batch, pos, d_model] as
   * part of the input to `layer` (0..n_layers; n_layers / -1 / undefined = the unembed, i.e.
   * ln_final; mlp_input = ln2 instead of ln1) and applies that LayerNorm with its cached scale:
   * x <- (x - mean(x)) / scale (centring for LN and LNPre). Returns a new tensor; a model without
   * LayerNorm gets the stack back unchanged.
   * pos_slice / batch_slice must be the slices the stack was built with (they are applied to the
   * scale only; batch_slice is also applied to the stack's axis 1 when has_batch_dim).
   */
  applyLnToStack(
    stack: F32,
    layer?: number | null,
    opts: { mlp_input?: boolean; pos_slice?: SliceInput; batch_slice?: SliceInput; has_batch_dim?: boolean } = {},
  ): F32 {
    if (this.cfg.normalization_type === null) return stack;
    const L = this.resolveLayer(layer, 'applyLnToStack');
    const d = this.cfg.d_model;
    if (stack.dims.length < 2 || stack.dims[stack.dims.length - 1] !== d) {
      throw new Error(`applyLnToStack: stack must be [component, ..., d_model=${d}], got [${stack.dims.join(', ')}]`);
    }
    const g = this.geometry();
    const s = this.batchSliceStack(stack, opts.batch_slice, opts.has_batch_dim ?? true);
    const scale = this.lnScale(L, opts.mlp_input ?? false, opts.pos_slice, opts.batch_slice, g);
    const mid = s.dims.slice(1, -1);
    if (mid.length !== scale.dims.length || mid.some((x, i) => x !== scale.dims[i])) {
      throw new Error(
        `applyLnToStack: the stack's batch/pos dims [${mid.join(', ')}] do not match the LayerNorm scale after pos_slice/batch_slice ` +
          `[${scale.dims.join(', ')}]; pass the pos_slice (and batch_slice) the stack was built with`,
      );
    }
    const out = s === stack ? new Float32Array(stack.data) : s.data;
    lnRowsInPlace(out, s.dims[0]!, numel(mid), d, scale.data, this.centers());
    return f32(s.dims, out, s.axes);
  }

  /** TL: with has_batch_dim, batch_slice also selects along the stack's axis 1. */
  private batchSliceStack(stack: F32, batch_slice: SliceInput, has_batch_dim: boolean): F32 {
    if (!has_batch_dim || batch_slice === undefined || batch_slice === null) return stack;
    if (stack.dims.length < 3) throw new Error(`batch_slice needs a stack with a batch axis (axis 1), got [${stack.dims.join(', ')}]`);
    const B = stack.dims[1]!;
    const bs = resolveSlice(batch_slice, B, 'batch_slice');
    const C = stack.dims[0]!;
    const inner = numel(stack.dims.slice(2));
    const out = new Float32Array(C * bs.indices.length * inner);
    gatherAxis(stack.data, C, B, inner, bs.indices, out, 0);
    const dims = bs.collapse ? [C, ...stack.dims.slice(2)] : [C, bs.indices.length, ...stack.dims.slice(2)];
    const axes = stack.axes ? (bs.collapse ? [stack.axes[0]!, ...stack.axes.slice(2)] : [...stack.axes]) : undefined;
    return f32(dims, out, axes);
  }

  /**
   * TL logit_attrs: how much each component of `stack` [component, batch, pos, d_model] writes
   * along the unembedding direction of `tokens` (or of tokens minus incorrect_tokens): the stack
   * is normalised with the final LayerNorm's cached scale (as applyLnToStack with layer
   * n_layers; pass a stack WITHOUT apply_ln) and dotted with W_U[:, token] (b_U excluded).
   * Directions broadcast against the stack's rows from the right, as torch does, with TL's rule
   * that a [batch] token list against a [component, batch, pos, d_model] stack applies per example
   * to every position. Returns [component, batch, pos] (the stack's dims without d_model).
   * Fused: per row it computes (x . u - mean(x) sum(u)) / scale, with no normalised copy.
   */
  logitAttrs(
    stack: F32,
    tokens: TokenInput,
    incorrect_tokens?: TokenInput | null,
    opts: { pos_slice?: SliceInput; batch_slice?: SliceInput; has_batch_dim?: boolean } = {},
  ): F32 {
    const d = this.cfg.d_model;
    if (stack.dims.length < 2 || stack.dims[stack.dims.length - 1] !== d) {
      throw new Error(`logitAttrs: stack must be [component, ..., d_model=${d}], got [${stack.dims.join(', ')}]`);
    }
    const hasBatch = opts.has_batch_dim ?? true;
    const dir = tokensToResidualDirections(this.params, tokens, incorrect_tokens);
    const s = this.batchSliceStack(stack, opts.batch_slice, hasBatch);
    const mid = s.dims.slice(1, -1);
    const rows = numel(mid);
    let scale: Float32Array | null = null;
    if (this.cfg.normalization_type !== null) {
      const sc = this.lnScale(this.cfg.n_layers, false, opts.pos_slice, opts.batch_slice, this.geometry());
      if (mid.length !== sc.dims.length || mid.some((x, i) => x !== sc.dims[i])) {
        throw new Error(
          `logitAttrs: the stack's batch/pos dims [${mid.join(', ')}] do not match ln_final.hook_scale after pos_slice/batch_slice ` +
            `[${sc.dims.join(', ')}]; pass the pos_slice (and batch_slice) the stack was built with`,
        );
      }
      scale = sc.data;
    }
    // Map each stack row to a direction row by right-aligned broadcasting.
    let ddims = dir.dims.slice(0, -1);
    const batchSliceIsInt = typeof opts.batch_slice === 'number';
    if (hasBatch && !batchSliceIsInt && s.dims.length === 4 && ddims.length === 1 && ddims[0] === s.dims[1]) ddims = [ddims[0]!, 1];
    if (ddims.length > mid.length) {
      throw new Error(`logitAttrs: token directions [${dir.dims.slice(0, -1).join(', ')}] have more axes than the stack's batch/pos dims [${mid.join(', ')}]`);
    }
    const off = mid.length - ddims.length;
    const dstr = new Array<number>(mid.length).fill(0);
    let acc = 1;
    for (let i = ddims.length - 1; i >= 0; i--) {
      const dd = ddims[i]!;
      const md = mid[off + i]!;
      if (dd !== md && dd !== 1) {
        throw new Error(`logitAttrs: token directions [${dir.dims.slice(0, -1).join(', ')}] do not broadcast against the stack's batch/pos dims [${mid.join(', ')}]`);
      }
      dstr[off + i] = dd === 1 ? 0 : acc;
      acc *= dd;
    }
    const dirRow = new Int32Array(rows);
    for (let r = 0; r < rows; r++) {
      let rem = r;
      let o = 0;
      for (let i = mid.length - 1; i >= 0; i--) {
        const m = mid[i]!;
        o += (rem % m) * dstr[i]!;
        rem = Math.floor(rem / m);
      }
      dirRow[r] = o;
    }
    const nDir = dir.data.length / d;
    const dsum = new Float64Array(nDir);
    for (let j = 0; j < nDir; j++) {
      let t = 0;
      for (let i = 0; i < d; i++) t += dir.data[j * d + i]!;
      dsum[j] = t;
    }
    const C = s.dims[0]!;
    const out = new Float32Array(C * rows);
    const x = s.data;
    const u = dir.data;
    const center = this.centers();
    for (let c = 0; c < C; c++) {
      for (let r = 0; r < rows; r++) {
        const xo = (c * rows + r) * d;
        const dj = dirRow[r]!;
        const uo = dj * d;
        let dot = 0;
        let sum = 0;
        for (let i = 0; i < d; i++) {
          const xv = x[xo + i]!;
          dot += xv * u[uo + i]!;
          sum += xv;
        }
        if (scale) {
          const m = center ? sum / d : 0;
          out[c * rows + r] = (dot - m * dsum[dj]!) / scale[r]!;
        } else {
          out[c * rows + r] = dot;
        }
      }
    }
    return f32([C, ...mid], out, s.axes ? s.axes.slice(0, -1) : undefined);
  }

  /**
   * TL get_full_resid_decomposition: the residual stream at the input of `layer` (mlp_input: of
   * its MLP) split into every attention head ('L{l}H{h}', from stackHeadResults), every neuron
   * ('L{l}N{n}', expand_neurons) or every MLP layer ('{l}_mlp_out'), 'embed', 'pos_embed', and
   * 'bias' (accumulatedBias: b_O of each layer, plus b_out when neurons are expanded since a
   * neuron result carries no bias). The components sum to the residual stream exactly.
   * Returns [component, batch, pos, d_model]; with project_output_onto [d_model, n_outputs]
   * (or [d_model]) each component is projected as it is produced, [component, batch, pos,
   * n_outputs] (or without the last axis), which keeps expand_neurons affordable on real models.
   * apply_ln: applyLnToStack with `layer` (before any projection).
   */
  getFullResidDecomposition(
    layer?: number | null,
    opts: { mlp_input?: boolean; expand_neurons?: boolean; apply_ln?: boolean; pos_slice?: SliceInput; project_output_onto?: F32 | null } = {},
  ): LabeledStack {
    const L = this.resolveLayer(layer, 'getFullResidDecomposition');
    const mlp_input = opts.mlp_input ?? false;
    if (mlp_input && L >= this.cfg.n_layers) throw new Error('getFullResidDecomposition: mlp_input needs a layer below n_layers (the unembed has no MLP)');
    const expand = opts.expand_neurons ?? true;
    const g = this.geometry();
    const rows = this.rows(g, opts.pos_slice);
    const d = this.cfg.d_model;
    const H = this.cfg.n_heads;
    const proj = this.projection(opts.project_output_onto);
    const width = proj ? proj.K : d;
    const center = this.centers();
    const ln = opts.apply_ln ? this.lnScaleRows(L, mlp_input, opts.pos_slice, null, g) : null;

    const headLayers = L + (mlp_input ? 1 : 0);
    const hasMlp = !this.cfg.attn_only && L > 0;
    const neurons = hasMlp && expand ? this.neuronIndices(null) : [];
    const embeds = ['hook_embed', 'hook_pos_embed'].filter((k) => this.acts.has(k));
    const labels: string[] = [];
    for (let l = 0; l < headLayers; l++) for (let h = 0; h < H; h++) labels.push(`L${l}H${h}`);
    if (hasMlp) {
      if (expand) for (let l = 0; l < L; l++) for (const n of neurons) labels.push(`L${l}N${n}`);
      else for (let l = 0; l < L; l++) labels.push(`${l}_mlp_out`);
    }
    for (const e of embeds) labels.push(e === 'hook_embed' ? 'embed' : 'pos_embed');
    labels.push('bias');

    const nComp = labels.length;
    const block = rows.count * width;
    const out = allocStack(nComp * block, 'getFullResidDecomposition');
    // Dense components (heads per layer, mlp_out, embeds, bias) go through a one-layer scratch
    // buffer when projecting, so at most n_heads d_model-wide components exist at once.
    const scratch = proj ? new Float32Array(Math.max(H, 1) * rows.count * d) : null;
    const acc = proj ? new Float64Array(proj.K) : null;
    let o = 0;
    const emitDense = (nc: number, fill: (dst: Float32Array, off: number) => void): void => {
      if (!proj) {
        fill(out, o);
        o += nc * rows.count * d;
        return;
      }
      scratch!.fill(0, 0, nc * rows.count * d);
      fill(scratch!, 0);
      o = projectRows(scratch!, 0, nc, rows.count, d, proj.P, proj.K, proj.sumP, ln, center, out, o, acc!);
    };
    for (let l = 0; l < headLayers; l++) emitDense(H, (dst, off) => void this.writeHeadResults(l, g, rows, dst, off));
    if (hasMlp) {
      if (expand) {
        o = this.writeNeuronResults(L, g, rows, neurons, out, o, proj, proj ? ln : null);
      } else {
        for (let l = 0; l < L; l++) {
          const t = this.resid(`blocks.${l}.hook_mlp_out`, g);
          emitDense(1, (dst, off) => void gatherAxis(t.data, g.batch, g.pos, d, rows.ps.indices, dst, off));
        }
      }
    }
    for (const e of embeds) {
      const t = this.resid(e, g);
      emitDense(1, (dst, off) => void gatherAxis(t.data, g.batch, g.pos, d, rows.ps.indices, dst, off));
    }
    const bias = accumulatedBias(this.params, this.cfg, L, mlp_input, expand).data;
    emitDense(1, (dst, off) => {
      for (let r = 0; r < rows.count; r++) dst.set(bias, off + r * d);
    });
    if (ln && !proj) lnRowsInPlace(out, nComp, rows.count, d, ln, center);
    const tail = proj ? (proj.squeeze ? [] : [proj.K]) : [d];
    const tailAxes = proj ? (proj.squeeze ? [] : ['output']) : ['d_model'];
    return { stack: f32([nComp, ...rows.dims, ...tail], out, ['component', ...rows.axes, ...tailAxes]), labels };
  }
}
