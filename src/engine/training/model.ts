/**
 * The hooked transformer as ONE differentiable ONNX graph, for training and for gradient-based
 * analyses (attribution patching), built from the same graph components (graph/components: embed,
 * norm, attention, mlp, unembed) as the inference segments in graph/segments.ts, so every
 * registered family trains (test/unit/training.test.ts checks logits and every hook against
 * HookedTransformer), but assembled for autodiff:
 *  - parameters come from a callback, so they can be graph inputs (a flat trainable vector that
 *    the optimizer updates in-graph) or initializers (a loaded model);
 *  - the whole model is one graph, so one backward pass reaches every parameter and hook;
 *  - LayerNorm is onnx LayerNormalization (one kernel whose saved mean / inv-std feed an
 *    explicit backward rule) instead of the element-wise chain the hook graphs use, and Q/K/V
 *    come from one packed GEMM (every reshape target constant, as shape inference needs).
 */
import type { HookedTransformerConfig } from '../model/config.js';
import { getParam, type Params } from '../model/params.js';
import type { HookName } from '../hooks/hooks.js';
import type { GraphBuilder } from '../graph/builder.js';
import type { Dim } from '../graph/autodiff.js';
import { f32, type F32 } from '../tensor/tensor.js';
import { OnnxDType } from '../graph/onnxProto.js';
import { emitAttention } from '../graph/components/attention.js';
import { emitEmbed, emitUnembed } from '../graph/components/embed.js';
import type { Emitter } from '../graph/components/emitter.js';
import { emitFeedForward } from '../graph/components/moe.js';
import { emitNorm, emitPostNorm, emitPreNorm } from '../graph/components/norm.js';

// The parameter list is model/paramSpecs.ts's, shared with loading, processing and built-in models.
export { paramSpecs, type ParamSpec } from '../model/paramSpecs.js';
import { kvParamName, paramSpecs, type ParamSpec } from '../model/paramSpecs.js';
import { TIED_P, TIED_Q, TIED_SCALE } from '../model/unembed.js';

/** Where each trainable parameter lives in the flat vector the optimizer updates. */
export interface ParamLayout {
  specs: ParamSpec[];
  offsets: number[];
  total: number;
}

export function makeLayout(specs: ParamSpec[]): ParamLayout {
  const offsets: number[] = [];
  let total = 0;
  for (const s of specs) {
    offsets.push(total);
    total += s.dims.reduce((a, b) => a * b, 1);
  }
  return { specs, offsets, total };
}

/** Params -> flat [total] vector in layout order (throws naming a missing or misshapen param). */
export function flatten(layout: ParamLayout, params: Params): Float32Array {
  const out = new Float32Array(layout.total);
  layout.specs.forEach((s, i) => {
    const t = params.get(s.name);
    if (!t) throw new Error(`parameter ${s.name} is missing`);
    if (t.dims.length !== s.dims.length || t.dims.some((d, j) => d !== s.dims[j])) {
      throw new Error(`parameter ${s.name} has shape [${t.dims.join(', ')}], expected [${s.dims.join(', ')}]`);
    }
    out.set(t.data, layout.offsets[i]!);
  });
  return out;
}

/** Flat [total] vector -> Params (copies, so the result outlives the vector). */
export function unflatten(layout: ParamLayout, flat: Float32Array): Params {
  const p: Params = new Map();
  layout.specs.forEach((s, i) => {
    const off = layout.offsets[i]!;
    const n = s.dims.reduce((a, b) => a * b, 1);
    p.set(s.name, f32(s.dims, flat.slice(off, off + n), s.axes));
  });
  return p;
}

/**
 * Emits Split + Reshape that view a flat [total] parameter vector as the named parameters.
 * Split's gradient is a Concat, so d(loss)/d(flat) comes out as one [total] vector.
 */
export function emitFlatParams(g: GraphBuilder, flat: string, layout: ParamLayout): Map<string, string> {
  const sizes = layout.specs.map((s) => s.dims.reduce((a, b) => a * b, 1));
  const parts = layout.specs.length === 1 ? [flat] : g.opN('Split', [flat, g.constI64(sizes)], sizes.length, { axis: 0 });
  const out = new Map<string, string>();
  layout.specs.forEach((s, i) => {
    out.set(s.name, s.dims.length === 1 ? parts[i]! : g.op('Reshape', [parts[i]!, g.constI64(s.dims)]));
  });
  return out;
}

/**
 * A parameter source backed by a loaded model's weights: initializers (onnxruntime folds and
 * pre-packs them, at the cost of a copy per session) or, with `asInput`, zero-copy graph inputs
 * that share the engine's arrays (GraphBuilder.weightInputs; session creation skips serialising
 * hundreds of MB).
 */
export function initializerParams(g: GraphBuilder, params: Params, opts: { asInput?: boolean } = {}): (name: string) => string {
  const made = new Map<string, string>();
  return (name) => {
    const hit = made.get(name);
    if (hit) return hit;
    const t = params.get(name);
    if (!t) throw new Error(`model parameter ${name} is missing`);
    const v = g.weight(`param:${name}`, t, undefined, opts.asInput ?? false);
    made.set(name, v);
    return v;
  };
}

export interface ForwardOptions {
  /** Batch and position dims of the tokens: numbers for a fixed-shape (training) graph, or symbols. */
  batch: Dim;
  pos: Dim;
  /** Hooks to expose as graph values named exactly as TransformerLens names them. */
  hooks?: ReadonlySet<string>;
  /** Add W_pos (false when positional embeddings are zeroed and frozen, or absent). */
  usePos: boolean;
  /**
   * A [batch, k, pos] float input selecting (weighting) positions before ln_final: logits are then
   * [batch, k, d_vocab_out] for the k selected positions only (e.g. the last one for a logit
   * difference), which skips the unembedding of every other position.
   */
  selectPositions?: string;
  /**
   * The params keep a tied W_U as factors of W_E (model/unembed.ts, tiedFactorsUsed): which of
   * them the unembedding reads instead of unembed.W_U (a loaded model's params, not a trainer's).
   */
  tiedUnembed?: { scale: boolean; rank: boolean };
  /**
   * Pre-packed W_QKV [d_model, (head_index + 2 kv_head) * d_head] and b_QKV of a
   * layer (packQKV's layout below, kv_head = n_key_value_heads or n_heads), used instead of packing W_Q/W_K/W_V in the graph: for
   * weights fed as inputs, whose in-graph packing would be redone on every run.
   */
  packedQKV?: (layer: number) => { W: string; b: string };
}

export interface ForwardValues {
  /** [batch, pos, d_vocab_out], or [batch, k, d_vocab_out] with selectPositions */
  logits: string;
  /** Requested hook name -> graph value name (equal to the hook name). */
  hooks: Map<HookName, string>;
}

/**
 * Emits the forward pass tokens [batch, pos] (int32 or int64 ids) -> logits into g. `param(name)`
 * gives the graph value of a TransformerLens parameter.
 */
export function emitForward(g: GraphBuilder, cfg: HookedTransformerConfig, param: (name: string) => string, tokens: string, opts: ForwardOptions): ForwardValues {
  const hooks = new Map<HookName, string>();
  const hook = (name: string, v: string): string => {
    if (!opts.hooks?.has(name)) return v;
    const out = g.alias(v, name);
    hooks.set(name as HookName, out);
    return out;
  };
  if (cfg.act_fn === 'solu_ln') throw new Error('act_fn solu_ln is not supported by the differentiable graph');

  // The blocks come from the same components as the inference segments (graph/components),
  // with LayerNorm as one LayerNormalization kernel (autodiff has its explicit backward rule).
  const reshaped = new Map<string, string>();
  const e: Emitter = {
    g,
    cfg,
    w: (name, dims) => {
      if (!dims) return param(name);
      const key = `${name}[${dims.join(',')}]`;
      let v = reshaped.get(key);
      if (!v) reshaped.set(key, (v = g.op('Reshape', [param(name), g.constI64(dims)])));
      return v;
    },
    hook: (name, v) => hook(name, v),
    wants: (name) => opts.hooks?.has(name) ?? false,
    fusedLayerNorm: true,
  };

  let resid = emitEmbed(e, tokens, { usePos: opts.usePos, ...(typeof opts.pos === 'number' ? { pos: opts.pos } : {}) });

  for (let l = 0; l < cfg.n_layers; l++) {
    const P = `blocks.${l}`;
    const residPre = hook(`${P}.hook_resid_pre`, resid);
    const attnOut = hook(`${P}.hook_attn_out`, emitPostNorm(e, P, 'ln1', emitAttention(e, emitPreNorm(e, P, 'ln1', residPre), {
      layer: l, lastPos: false, past: null, useAttnResult: false, resultIntervened: false,
      packedQKV: opts.packedQKV ? opts.packedQKV(l) : 'pack',
    })));
    if (cfg.attn_only) {
      resid = hook(`${P}.hook_resid_post`, g.op('Add', [residPre, attnOut]));
      continue;
    }
    const mlpOut = (from: string) => hook(`${P}.hook_mlp_out`, emitPostNorm(e, P, 'ln2', emitFeedForward(e, P, emitPreNorm(e, P, 'ln2', from), false)));
    if (cfg.parallel_attn_mlp) {
      resid = hook(`${P}.hook_resid_post`, g.op('Add', [g.op('Add', [residPre, attnOut]), mlpOut(residPre)]));
    } else {
      const residMid = hook(`${P}.hook_resid_mid`, g.op('Add', [residPre, attnOut]));
      resid = hook(`${P}.hook_resid_post`, g.op('Add', [residMid, mlpOut(residMid)]));
    }
  }
  if (opts.selectPositions) resid = g.op('MatMul', [opts.selectPositions, resid]); // [batch, k, d_model]
  const xf = emitNorm(e, 'ln_final', resid);
  const tied = opts.tiedUnembed;
  const logits = emitUnembed(e, xf, undefined, tied ? { WE: param('embed.W_E'), scale: tied.scale ? param(TIED_SCALE) : null, P: tied.rank ? param(TIED_P) : null, Q: tied.rank ? param(TIED_Q) : null } : undefined);
  return { logits, hooks };
}

/** A [batch, pos] int64 token-id input. */
export function tokenInput(g: GraphBuilder, name: string, batch: Dim, pos: Dim): string {
  return g.input(name, OnnxDType.INT64, [batch, pos]);
}


/**
 * TransformerLens's default ('gpt2') initialisation: every W_* ~ N(0, initializer_range^2) with
 * initializer_range = 0.8 / sqrt(d_model); biases 0; LayerNorm weights 1. W_pos is zero when
 * positional embeddings are zeroed and frozen (the original notebook's deactivate_position).
 */
export function initParams(cfg: HookedTransformerConfig, rng: { normal(): number }, opts: { zeroPos: boolean }): Params {
  const std = 0.8 / Math.sqrt(cfg.d_model);
  const p: Params = new Map();
  const withPos = cfg.positional_embedding_type === 'standard';
  for (const s of paramSpecs(cfg, { includePos: withPos })) {
    const n = s.dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const last = s.name.split('.').pop()!;
    if (s.name === 'pos_embed.W_pos' && opts.zeroPos) {
      // stays zero
    } else if (last.startsWith('W_') || last.startsWith('_W_')) {
      for (let i = 0; i < n; i++) data[i] = rng.normal() * std;
    } else if (last === 'w') {
      data.fill(1);
    }
    p.set(s.name, f32(s.dims, data, s.axes));
  }
  return p;
}

/**
 * W_Q/W_K/W_V [head_index, d_model, d_head] -> W_QKV [d_model, 3 * head_index * d_head] with
 * columns ordered (Q|K|V, head, d_head), and b_QKV [3 * head_index * d_head], so one MatMul
 * computes q, k and v and each third reshapes to [batch, pos, head_index, d_head].
 */
export function packQKV(params: Params, P: string, cfg: HookedTransformerConfig): { W: F32; b: F32 } {
  const H = cfg.n_heads, d = cfg.d_model, dh = cfg.d_head;
  const KV = cfg.n_key_value_heads ?? H;
  // Columns (Q|K|V, head, d_head); K and V have n_key_value_heads heads under grouped-query attention.
  const parts = [['W_Q', 'b_Q', H], [kvParamName(cfg, 'W_K'), kvParamName(cfg, 'b_K'), KV], [kvParamName(cfg, 'W_V'), kvParamName(cfg, 'b_V'), KV]] as const;
  const cols = (H + 2 * KV) * dh;
  const W = new Float32Array(d * cols);
  const bias = new Float32Array(cols);
  let colBase = 0;
  for (const [wName, bName, heads] of parts) {
    const src = getParam(params, `${P}.attn.${wName}`).data;
    const bsrc = getParam(params, `${P}.attn.${bName}`).data;
    for (let hh = 0; hh < heads; hh++) {
      const c0 = colBase + hh * dh;
      for (let r = 0; r < d; r++) {
        const srcOff = (hh * d + r) * dh;
        const dstOff = r * cols + c0;
        for (let c = 0; c < dh; c++) W[dstOff + c] = src[srcOff + c]!;
      }
      for (let c = 0; c < dh; c++) bias[c0 + c] = bsrc[hh * dh + c]!;
    }
    colBase += heads * dh;
  }
  return { W: f32([d, cols], W), b: f32([cols], bias) };
}
