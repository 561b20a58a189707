/**
 * An SAE or transcoder spliced into a segment graph: ONNX nodes that replace the value at its
 * output hook by the reconstruction (optionally plus the error term), computed exactly as
 * SAELens's SAE.encode / decode and HookedSAETransformer's wrapper compute it:
 *
 *   x [batch, pos, d_in]    the input hook's value (after any intervention there)  -> hook_sae_input
 *   x' = norm_in(x) - (apply_b_dec_to_input ? b_dec : 0)
 *        norm_in: layer_norm (x - mean) / (std + 1e-5), std unbiased; constant_norm_rescale
 *        x · sqrt(d_in) / |x|; none
 *   pre [batch, pos, d_sae] = x' @ W_enc + b_enc                                  -> hook_sae_acts_pre
 *        gated: pre = x' @ (W_enc ⊙ exp(r_mag)) + b_mag, gate = (x' @ W_enc + b_gate > 0)
 *   acts [batch, pos, d_sae]                                                        -> hook_sae_acts_post
 *        standard, transcoder: relu(pre); jumprelu: relu(pre) · (pre > threshold);
 *        gated: gate · relu(pre); topk: the k largest of pre (times the decoder rows' norms with
 *        rescale_acts_by_decoder_norm), relu'd, the rest 0
 *   recons [batch, pos, d_out] = acts (/ decoder norms with rescale) @ W_dec + b_dec -> hook_sae_recons
 *   out = norm_out(recons)   (the inverse of norm_in; transcoders skip it, as SAELens's do)
 *   error = y - out_clean    (y: the output hook's own value; out_clean: `out` without any
 *                             intervention on the SAE's hooks)                      -> hook_sae_error
 *   output = out (+ error)                                                          -> hook_sae_output
 *
 * The structure (architecture, sizes, options) is compiled in; the weights are named
 * `sae.<id>.<tensor>`: the two big matrices as initializers (PREPACK), the vectors as graph inputs
 * fed zero-copy from the loaded SAE. One loaded SAE compiles once per segment variant.
 */
import type { GraphBuilder } from '../graph/builder.js';
import type { HookName, OutputName, SaeHookSuffix } from '../hooks/hooks.js';
import { OnnxDType } from '../graph/onnxProto.js';
import { f32, type F32 } from '../tensor/tensor.js';
import { isTranscoder, type SaeArchitecture, type SaeNormalization } from './config.js';
import type { Sae } from './sae.js';

/** The compiled shape of one spliced SAE (JSON: part of a segment variant's cache key). */
export interface SaeSlot {
  /** The loaded SAE's id (its weights are looked up by it). */
  id: string;
  hookIn: HookName;
  hookOut: HookName;
  architecture: SaeArchitecture;
  d_in: number;
  d_sae: number;
  d_out: number;
  k: number | null;
  normalize: SaeNormalization;
  applyBDecToInput: boolean;
  rescale: boolean;
  useErrorTerm: boolean;
}

export function saeSlot(sae: Sae, hookIn: HookName, hookOut: HookName, useErrorTerm: boolean): SaeSlot {
  const c = sae.cfg;
  return {
    id: sae.id, hookIn, hookOut, architecture: c.architecture, d_in: c.d_in, d_sae: c.d_sae, d_out: c.d_out, k: c.k,
    normalize: c.normalize_activations, applyBDecToInput: c.apply_b_dec_to_input, rescale: c.rescale_acts_by_decoder_norm, useErrorTerm,
  };
}

/** Name of an SAE hook: `<output hook>.<suffix>`, as HookedSAETransformer caches it. */
export function saeHookName(slot: Pick<SaeSlot, 'hookOut'>, suffix: SaeHookSuffix): OutputName {
  return `${slot.hookOut}.${suffix}` as OutputName;
}

/** Width of an SAE hook's last axis. */
export function saeHookWidth(slot: Pick<SaeSlot, 'd_in' | 'd_sae' | 'd_out'>, suffix: SaeHookSuffix): number {
  if (suffix === 'hook_sae_input') return slot.d_in;
  if (suffix === 'hook_sae_acts_pre' || suffix === 'hook_sae_acts_post') return slot.d_sae;
  return slot.d_out;
}

/** The SAE hooks a splice produces (hook_sae_error only with the error term). */
export function saeHooksOf(slot: Pick<SaeSlot, 'hookOut' | 'useErrorTerm'>): OutputName[] {
  const s: SaeHookSuffix[] = ['hook_sae_input', 'hook_sae_acts_pre', 'hook_sae_acts_post', 'hook_sae_recons'];
  if (slot.useErrorTerm) s.push('hook_sae_error');
  s.push('hook_sae_output');
  return s.map((x) => saeHookName(slot, x));
}

/** Derived constants of an SAE, computed once per loaded SAE (float32, as torch computes them). */
interface Derived {
  /** |W_dec[i]| [d_sae] and its inverse (topk with rescale_acts_by_decoder_norm). */
  decNorm: F32;
  invDecNorm: F32;
  /** W_enc ⊙ exp(r_mag) [d_in, d_sae] (gated). */
  W_enc_mag: F32 | null;
}
const derivedCache = new WeakMap<Sae, Derived>();

function derived(sae: Sae): Derived {
  const hit = derivedCache.get(sae);
  if (hit) return hit;
  const { d_in, d_sae, d_out } = sae.cfg;
  const W = sae.weights.W_dec.data;
  const norm = new Float32Array(d_sae);
  const inv = new Float32Array(d_sae);
  for (let i = 0; i < d_sae; i++) {
    let s = 0;
    for (let j = 0; j < d_out; j++) s += W[i * d_out + j]! ** 2;
    norm[i] = Math.sqrt(s);
    inv[i] = 1 / norm[i]!;
  }
  let mag: F32 | null = null;
  if (sae.cfg.architecture === 'gated') {
    const e = sae.weights.r_mag!.data.map((v) => Math.exp(v));
    const We = sae.weights.W_enc.data;
    const m = new Float32Array(d_in * d_sae);
    for (let r = 0; r < d_in; r++) for (let c = 0; c < d_sae; c++) m[r * d_sae + c] = We[r * d_sae + c]! * e[c]!;
    mag = f32([d_in, d_sae], m);
  }
  const d = { decNorm: f32([d_sae], norm), invDecNorm: f32([d_sae], inv), W_enc_mag: mag };
  derivedCache.set(sae, d);
  return d;
}

/**
 * The encoder and decoder matrices are compiled in as initializers: onnxruntime pre-packs them
 * once for its GEMM kernels instead of re-packing a graph input on every run (see
 * buildUnembedGraph); the price is one copy per compiled session.
 */
const PREPACK = new Set(['W_enc', 'W_dec', 'W_enc_mag']);

/** What emitSae needs from the segment builder. */
export interface SaeEmitter {
  readonly g: GraphBuilder;
  /** Names `value` as SAE hook `name` (applying interventions there) and returns the hooked value. */
  saeHook(name: OutputName, value: string, width: number): string;
  /** True when an intervention of this variant targets one of this SAE's hooks. */
  intervenesOn(slot: SaeSlot): boolean;
}

/** Names (and may intervene on) an SAE hook value; returns the value to use downstream. */
export type SaeHookFn = (suffix: SaeHookSuffix, v: string, width: number) => string;

/** The SAE's weights as graph values (each added once), by tensor name. */
export function saeWeightNames(g: GraphBuilder, slot: SaeSlot, sae: Sae): (name: keyof Sae['weights'] | 'decNorm' | 'invDecNorm' | 'W_enc_mag') => string {
  const made = new Map<string, string>();
  return (name) => {
    const hit = made.get(name);
    if (hit) return hit;
    const t = name === 'decNorm' || name === 'invDecNorm' || name === 'W_enc_mag' ? derived(sae)[name]! : sae.weights[name]!;
    const v = g.weight(`sae.${slot.id}.${name}`, t, undefined, !PREPACK.has(name));
    made.set(name, v);
    return v;
  };
}

/**
 * The encoder: x [batch, pos, d_in] -> feature activations `post` [batch, pos, d_sae] (every
 * architecture's are >= 0), and the input normalisation's saved statistics for the decoder.
 */
export function emitSaeEncoder(g: GraphBuilder, w: ReturnType<typeof saeWeightNames>, slot: SaeSlot, x: string, hook: SaeHookFn): { post: string; mu: string | null; std: string | null; coeff: string | null } {
  const lastAxis = { axes: [-1], keepdims: 1 };
  const sin = hook('hook_sae_input', x, slot.d_in);
  let xn = sin;
  // Saved statistics for the inverse normalisation of the output.
  let mu: string | null = null;
  let std: string | null = null;
  let coeff: string | null = null;
  if (slot.normalize === 'layer_norm') {
    mu = g.op('ReduceMean', [sin], lastAxis);
    const xc = g.op('Sub', [sin, mu]);
    // torch's std is unbiased: |x - mean| / sqrt(d_in - 1).
    std = g.op('Div', [g.op('ReduceL2', [xc], lastAxis), g.constF([Math.sqrt(slot.d_in - 1)])]);
    xn = g.op('Div', [xc, g.op('Add', [std, g.constF([1e-5])])]);
  } else if (slot.normalize === 'constant_norm_rescale') {
    coeff = g.op('Div', [g.constF([Math.sqrt(slot.d_in)]), g.op('ReduceL2', [sin], lastAxis)]);
    xn = g.op('Mul', [sin, coeff]);
  }
  if (slot.applyBDecToInput) xn = g.op('Sub', [xn, w('b_dec')]);

  let acts: string;
  if (slot.architecture === 'gated') {
    const pre = hook('hook_sae_acts_pre', g.op('Add', [g.op('MatMul', [xn, w('W_enc_mag')]), w('b_mag')]), slot.d_sae);
    const gate = g.op('Cast', [g.op('Greater', [g.op('Add', [g.op('MatMul', [xn, w('W_enc')]), w('b_gate')]), g.constF([0])])], { to: OnnxDType.FLOAT });
    acts = g.op('Mul', [gate, g.op('Relu', [pre])]);
  } else {
    const pre = hook('hook_sae_acts_pre', g.op('Add', [g.op('MatMul', [xn, w('W_enc')]), w('b_enc')]), slot.d_sae);
    switch (slot.architecture) {
      case 'standard':
      case 'transcoder':
        acts = g.op('Relu', [pre]);
        break;
      case 'jumprelu':
      case 'jumprelu_transcoder':
        acts = g.op('Mul', [g.op('Relu', [pre]), g.op('Cast', [g.op('Greater', [pre, w('threshold')])], { to: OnnxDType.FLOAT })]);
        break;
      case 'topk': {
        const p = slot.rescale ? g.op('Mul', [pre, w('decNorm')]) : pre;
        const [vals, idx] = g.opN('TopK', [p, g.constI64([slot.k!])], 2, { axis: -1, largest: 1, sorted: 1 });
        const zeros = g.op('ConstantOfShape', [g.op('Shape', [p])]);
        acts = g.op('ScatterElements', [zeros, idx!, g.op('Relu', [vals!])], { axis: -1 });
        break;
      }
    }
  }
  const post = hook('hook_sae_acts_post', acts, slot.d_sae);
  return { post, mu, std, coeff };
}

/**
 * Emits the splice. x: the input hook's value [batch, pos, d_in]; y: the output hook's value
 * [batch, pos, d_out] (x itself for an SAE). Returns the value that replaces y downstream.
 */
export function emitSae(e: SaeEmitter, slot: SaeSlot, sae: Sae, x: string, y: string): string {
  const g = e.g;
  const w = saeWeightNames(g, slot, sae);
  const transcoder = isTranscoder(slot.architecture);

  /** One pass through the SAE; `hook` names (and may intervene on) its hook values. */
  const pass = (hook: SaeHookFn) => {
    const { post, mu, std, coeff } = emitSaeEncoder(g, w, slot, x, hook);
    const decIn = slot.rescale ? g.op('Mul', [post, w('invDecNorm')]) : post;
    const recons = hook('hook_sae_recons', g.op('Add', [g.op('MatMul', [decIn, w('W_dec')]), w('b_dec')]), slot.d_out);
    let out = recons;
    if (!transcoder && mu !== null && std !== null) out = g.op('Add', [g.op('Mul', [out, std]), mu]);
    if (!transcoder && coeff !== null) out = g.op('Div', [out, coeff]);
    return out;
  };

  const named = (suffix: SaeHookSuffix, v: string, width: number) => e.saeHook(saeHookName(slot, suffix), v, width);
  const out = pass(named);
  let output = out;
  if (slot.useErrorTerm) {
    // SAELens computes the error with the SAE's hooks off, so that an edit of the features
    // changes the output by exactly the edit's effect on the reconstruction.
    const clean = e.intervenesOn(slot) ? pass((_s, v) => v) : out;
    const err = named('hook_sae_error', g.op('Sub', [y, clean]), slot.d_out);
    output = g.op('Add', [out, err]);
  }
  return named('hook_sae_output', output, slot.d_out);
}
