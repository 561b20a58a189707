/**
 * Hugging Face state dict -> TransformerLens parameters, the part every family shares: a family
 * (src/engine/arch/<family>.ts) lists rules "these HF tensors, of these shapes, make these
 * TransformerLens params", and convertWeights checks every source's shape first (reporting all
 * problems in one error that names each tensor with its expected and actual shape), then reads
 * the tensors one rule at a time (a lazy state dict never holds the checkpoint twice) and checks
 * that the result is exactly paramSpecs(cfg). Layout helpers below are the einops rearranges of
 * TransformerLens's weight conversions, on row-major Float32Arrays.
 */
import { f32, type F32 } from '../tensor/tensor.js';
import type { HookedTransformerConfig } from './config.js';
import type { Params } from './params.js';
import { paramSpecs } from './paramSpecs.js';
import { tiedIdentityFactors } from './unembed.js';

/**
 * A read-only view of a state dict. A Map<string, F32> is one; a lazy reader over safetensors
 * files is another (it reads a tensor only when asked, so a checkpoint is never held twice).
 */
export interface StateDict {
  keys(): Iterable<string>;
  get(name: string): F32 | undefined;
  /** Shape without reading the data, when the source can do that cheaply (used to validate first). */
  shapeOf?(name: string): readonly number[] | undefined;
  /**
   * True when every get() returns a new buffer that nothing else holds (a reader over files):
   * a rule may then keep it as a param instead of copying it.
   */
  readonly fresh?: boolean;
  /**
   * Streams a tensor as float32 rows of rowLength values, in order, in a reused buffer valid only
   * during visit (a file reader can, so a transposing rule never holds its source whole).
   */
  readRows?(name: string, rowLength: number, visit: (rows: Float32Array, firstRow: number) => void): void;
}

/** One conversion step: HF tensors (with the shapes they must have) -> TransformerLens params. */
export interface WeightRule {
  from: { name: string; dims: readonly number[] }[];
  to: string[];
  /**
   * The new params' data, one per `to`, in TransformerLens's row-major layout, in buffers no
   * other param shares: new ones, or a source itself when `fresh` (the state dict gave it to
   * this rule alone, see StateDict.fresh).
   */
  make: (src: Float32Array[], fresh: boolean) => Float32Array[];
  /**
   * Set when the rule is one batched transpose, its source [batch, rows, cols] -> its param
   * [batch, cols, rows] (what `make` computes): then a state dict that streams rows is read row
   * by row into the param, with no whole copy of the source alive beside it.
   */
  transpose?: readonly [batch: number, rows: number, cols: number];
  /** Set when the param is the source's bytes unchanged (copyRule). */
  identity?: boolean;
  /** Set when the param is the source times this float32 scalar, and nothing else (Gemma's W_E). */
  scaledBy?: number;
}

const fmt = (dims: readonly number[]): string => `[${dims.join(', ')}]`;

/** Same bytes, new buffer (dims come from paramSpecs). */
export const copyRule = (tl: string, hf: string, dims: readonly number[]): WeightRule => ({ from: [{ name: hf, dims }], to: [tl], make: ([s], fresh) => [fresh ? s! : s!.slice()], identity: true });

/** nn.Linear weight [d_out, d_in] -> TransformerLens W [d_in, d_out]. */
export const linearRule = (tl: string, hf: string, dOut: number, dIn: number): WeightRule => ({
  from: [{ name: hf, dims: [dOut, dIn] }], to: [tl], make: ([s]) => [transpose2(s!, dOut, dIn)], transpose: [1, dOut, dIn],
});

/** "(n h) m -> n m h": an nn.Linear projection weight [n·h, m] to per-head W [n, m, h] (see headsFromLinear). */
export const headsRule = (tl: string, hf: string, n: number, h: number, m: number): WeightRule => ({
  from: [{ name: hf, dims: [n * h, m] }], to: [tl], make: ([w]) => [headsFromLinear(w!, n, h, m)], transpose: [n, h, m],
});

/**
 * A batched transpose [batch, rows, cols] -> [batch, cols, rows] read row by row from a
 * streaming state dict: rows of the source go straight to their columns in the result.
 */
export function streamTranspose(sd: StateDict & Required<Pick<StateDict, 'readRows'>>, name: string, [B, R, C]: readonly [number, number, number]): Float32Array {
  const out = new Float32Array(B * R * C);
  sd.readRows(name, C, (rows, first) => {
    const k = rows.length / C;
    for (let i = 0; i < k; i++) {
      const row = first + i; // b·R + r
      const base = Math.floor(row / R) * R * C + (row % R);
      const src = i * C;
      for (let c = 0; c < C; c++) out[base + c * R] = rows[src + c]!;
    }
  });
  return out;
}

/** Zeros (TransformerLens fills biases a family does not have). */
export const zerosRule = (tl: string, size: number): WeightRule => ({ from: [], to: [tl], make: () => [new Float32Array(size)] });

/** [rows, cols] -> [cols, rows]. */
export function transpose2(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c]!;
  return out;
}

/** "(n h) m -> n m h": an nn.Linear projection weight [n·h, m] to per-head W [n, m, h]. */
export function headsFromLinear(src: Float32Array, n: number, h: number, m: number): Float32Array {
  const out = new Float32Array(n * h * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < h; j++) {
    const row = (i * h + j) * m;
    for (let k = 0; k < m; k++) out[(i * m + k) * h + j] = src[row + k]!;
  }
  return out;
}

/** "m (n h) -> n h m": an output projection weight [m, n·h] to W_O [n, h, m] (a transpose). */
export function headsToLinearOut(src: Float32Array, m: number, nh: number): Float32Array {
  return transpose2(src, m, nh);
}

/**
 * Converts with `rules` and checks the result against paramSpecs(cfg). `family` names the
 * architecture in errors; `extraLayerKey(n_layers)` is an HF key that exists only when the
 * checkpoint has more layers than the config says.
 */
export function convertWeights(sd: StateDict, cfg: HookedTransformerConfig, rules: WeightRule[], family: string, extraLayerKey?: string): Params {
  const keys = new Set(sd.keys());
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const r of rules) for (const s of r.from) {
    if (seen.has(s.name)) continue;
    seen.add(s.name);
    const got = keys.has(s.name) ? (sd.shapeOf ? sd.shapeOf(s.name) : sd.get(s.name)?.dims) : undefined;
    if (got === undefined) problems.push(`${s.name}: expected shape ${fmt(s.dims)}, but the tensor is missing`);
    else if (got.length !== s.dims.length || got.some((d, i) => d !== s.dims[i])) problems.push(`${s.name}: expected shape ${fmt(s.dims)}, got ${fmt(got)}`);
  }
  if (extraLayerKey !== undefined && keys.has(extraLayerKey)) {
    problems.push(`${extraLayerKey}: the weights have more layers than the config's n_layers = ${cfg.n_layers}`);
  }
  if (problems.length > 0) {
    // One line: callers such as the CLI show only an error's first line.
    const shown = problems.slice(0, 8).join('; ') + (problems.length > 8 ? `; and ${problems.length - 8} more` : '');
    throw new Error(`cannot convert ${family} weights to TransformerLens params, ${problems.length} problem(s): ${shown}`);
  }
  const specs = new Map(paramSpecs(cfg).map((s) => [s.name, s]));
  const params: Params = new Map();
  const tiedRule = tiedUnembedRule(cfg, rules);
  if (tiedRule) {
    // W_U would be W_E's source transposed: kept as factors of W_E instead (model/unembed.ts).
    specs.delete('unembed.W_U');
    for (const [n, t] of tiedIdentityFactors(cfg.d_model, cfg.d_vocab_out, tiedRule.unscale)) params.set(n, t);
  }
  for (const r of rules) {
    if (r === tiedRule?.rule) continue;
    if (r.transpose && sd.readRows && r.from.length === 1 && r.to.length === 1) {
      const spec = specs.get(r.to[0]!);
      if (!spec) throw new Error(`internal: ${family} conversion makes ${r.to[0]}, which the config's paramSpecs do not list`);
      params.set(r.to[0]!, f32(spec.dims, streamTranspose(sd as StateDict & Required<Pick<StateDict, 'readRows'>>, r.from[0]!.name, r.transpose), spec.axes));
      continue;
    }
    const src = r.from.map((s) => {
      const t = sd.get(s.name);
      if (!t) throw new Error(`${s.name}: tensor disappeared from the state dict while converting`);
      return t.data;
    });
    const outs = r.make(src, sd.fresh === true);
    r.to.forEach((name, i) => {
      const spec = specs.get(name);
      if (!spec) throw new Error(`internal: ${family} conversion makes ${name}, which the config's paramSpecs do not list`);
      const data = outs[i]!;
      const n = spec.dims.reduce((a, b) => a * b, 1);
      if (data.length !== n) throw new Error(`internal: ${family} conversion made ${name} with ${data.length} values, expected ${fmt(spec.dims)}`);
      params.set(name, f32(spec.dims, data, spec.axes));
    });
  }
  const missing = [...specs.keys()].filter((k) => !params.has(k));
  if (missing.length > 0) throw new Error(`internal: ${family} conversion does not make ${missing.slice(0, 5).join(', ')}`);
  return params;
}

/**
 * The rule making W_U when it is W_E transposed: the embeddings are tied, W_E is its source's
 * bytes unchanged (or times a scalar), and W_U is that same source transposed [d_vocab_out, d_model] ->
 * [d_model, d_vocab_out]; `unscale` is 1, or 1/c for a W_E scaled by c (Gemma). (A checkpoint that
 * stores lm_head apart keeps a W_U of its own.)
 */
function tiedUnembedRule(cfg: HookedTransformerConfig, rules: readonly WeightRule[]): { rule: WeightRule; unscale: number } | null {
  if (!cfg.tie_word_embeddings || cfg.d_vocab !== cfg.d_vocab_out) return null;
  const e = rules.find((r) => r.to.length === 1 && r.to[0] === 'embed.W_E');
  const u = rules.find((r) => r.to.length === 1 && r.to[0] === 'unembed.W_U');
  if (!e || !u || e.from.length !== 1 || u.from.length !== 1) return null;
  // W_E = source·c (Gemma's sqrt(d_model)): W_U = W_Eᵀ / c, within half a float32 ulp of the source.
  const unscale = e.identity === true ? 1 : e.scaledBy !== undefined && e.scaledBy !== 0 ? 1 / e.scaledBy : null;
  if (unscale === null) return null;
  const t = u.transpose;
  const ok = u.from[0]!.name === e.from[0]!.name && t !== undefined && t[0] === 1 && t[1] === cfg.d_vocab_out && t[2] === cfg.d_model;
  return ok ? { rule: u, unscale } : null;
}

/** The first of `names` present in the state dict (prefixed / unprefixed checkpoints). */
export function firstPresent(sd: StateDict, names: string[]): string {
  const keys = new Set(sd.keys());
  return names.find((n) => keys.has(n)) ?? names[0]!;
}
