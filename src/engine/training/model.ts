/**
 * The hooked transformer as ONE differentiable ONNX graph, for training and for gradient-based
 * analyses (attribution patching). Same maths and hook names as the inference segments in
 * graph/gpt2.ts (test/unit/training.test.ts checks logits and hooks against HookedTransformer),
 * but built for autodiff:
 *  - parameters come from a callback, so they can be graph inputs (a flat trainable vector that
 *    the optimizer updates in-graph) or initializers (a loaded model);
 *  - the whole model is one graph, so one backward pass reaches every parameter and hook;
 *  - LayerNorm is onnx LayerNormalization (one kernel whose saved mean / inv-std feed an
 *    explicit backward rule) instead of the element-wise chain the hook graphs use.
 */
import type { HookedTransformerConfig } from '../model/config.js';
import type { Params } from '../model/params.js';
import type { HookName } from '../hooks/hooks.js';
import type { GraphBuilder } from '../graph/builder.js';
import type { Dim } from '../graph/autodiff.js';
import { f32 } from '../tensor/tensor.js';
import { OnnxDType } from '../graph/onnxProto.js';

/** One parameter: TransformerLens name, dims and axis names, and whether AdamW decays it. */
export interface ParamSpec {
  name: string;
  dims: number[];
  axes: string[];
  /** Matrices (W_*) vs biases / LayerNorm weights; used by decay policy 'matrices'. */
  isMatrix: boolean;
}

/**
 * The parameters of a config in TransformerLens state-dict order (params.ts names), with dims
 * and axis names. W_pos is included only when `includePos` (it is not when positional
 * embeddings are absent, or zeroed and frozen for training).
 */
export function paramSpecs(cfg: HookedTransformerConfig, opts: { includePos: boolean }): ParamSpec[] {
  const { d_model: d, n_heads: H, d_head: dh, d_vocab: V, d_vocab_out: Vo, n_ctx } = cfg;
  const out: ParamSpec[] = [];
  const add = (name: string, dims: number[], axes: string[]) => out.push({ name, dims, axes, isMatrix: /\.W_/.test(`.${name.split('.').pop()}`) });
  add('embed.W_E', [V, d], ['d_vocab', 'd_model']);
  if (opts.includePos) add('pos_embed.W_pos', [n_ctx, d], ['n_ctx', 'd_model']);
  const ln = cfg.normalization_type === 'LN';
  for (let l = 0; l < cfg.n_layers; l++) {
    const b = `blocks.${l}`;
    if (ln) {
      add(`${b}.ln1.w`, [d], ['d_model']);
      add(`${b}.ln1.b`, [d], ['d_model']);
    }
    for (const w of ['Q', 'K', 'V']) add(`${b}.attn.W_${w}`, [H, d, dh], ['head_index', 'd_model', 'd_head']);
    add(`${b}.attn.W_O`, [H, dh, d], ['head_index', 'd_head', 'd_model']);
    for (const w of ['Q', 'K', 'V']) add(`${b}.attn.b_${w}`, [H, dh], ['head_index', 'd_head']);
    add(`${b}.attn.b_O`, [d], ['d_model']);
    if (!cfg.attn_only) {
      const dm = cfg.d_mlp!;
      if (ln) {
        add(`${b}.ln2.w`, [d], ['d_model']);
        add(`${b}.ln2.b`, [d], ['d_model']);
      }
      add(`${b}.mlp.W_in`, [d, dm], ['d_model', 'd_mlp']);
      add(`${b}.mlp.b_in`, [dm], ['d_mlp']);
      add(`${b}.mlp.W_out`, [dm, d], ['d_mlp', 'd_model']);
      add(`${b}.mlp.b_out`, [d], ['d_model']);
    }
  }
  if (ln) {
    add('ln_final.w', [d], ['d_model']);
    add('ln_final.b', [d], ['d_model']);
  }
  add('unembed.W_U', [d, Vo], ['d_model', 'd_vocab_out']);
  add('unembed.b_U', [Vo], ['d_vocab_out']);
  return out;
}

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
   * Pre-packed W_QKV [d_model, 3 * head_index * d_head] and b_QKV [3 * head_index * d_head] of a
   * layer (gpt2.ts's packQKV layout), used instead of packing W_Q/W_K/W_V in the graph: for
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
 * Transpose, or a free Reshape when the permutation only moves size-1 axes (with one head,
 * [batch, pos, 1, d_head] -> [batch, 1, pos, d_head] is the same memory).
 */
function permute(g: GraphBuilder, x: string, perm: number[], dims: readonly Dim[]): string {
  const order = (p: readonly number[]) => p.filter((a) => dims[a] !== 1);
  const kept = order(perm);
  if (kept.every((a, i) => i === 0 || a > kept[i - 1]!)) {
    const outDims = perm.map((a) => dims[a]!);
    // 0 copies a dim (symbolic batch/pos); only size-1 axes move, so copied positions line up.
    const shape = outDims.map((d, i) => (typeof d === 'number' ? d : dims[i] === d ? 0 : -1));
    if (shape.filter((d) => d === -1).length <= 1) return g.op('Reshape', [x, g.constI64(shape)]);
  }
  return g.op('Transpose', [x], { perm });
}

function causalMask(n: number): boolean[] {
  const m = new Array<boolean>(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m[i * n + j] = j <= i;
  return m;
}

/**
 * Emits the forward pass tokens [batch, pos] (int32 or int64 ids) -> logits into g. `param(name)`
 * gives the graph value of a TransformerLens parameter.
 */
export function emitForward(g: GraphBuilder, cfg: HookedTransformerConfig, param: (name: string) => string, tokens: string, opts: ForwardOptions): ForwardValues {
  const hooks = new Map<HookName, string>();
  const H = cfg.n_heads, dh = cfg.d_head, d = cfg.d_model;
  const hook = (name: string, v: string): string => {
    if (!opts.hooks?.has(name)) return v;
    const out = g.alias(v, name);
    hooks.set(name as HookName, out);
    return out;
  };
  if (cfg.act_fn === 'solu_ln') throw new Error('act_fn solu_ln is not supported by the differentiable graph');

  const layerNorm = (prefix: string, x: string, paramPrefix: string): string => {
    if (cfg.normalization_type === null) return x;
    // TransformerLens LayerNorm: (x - mean) / sqrt(var + eps) * w + b; LNPre stops before w, b.
    // hook_normalized is the value before w and b (TransformerLens 3), so when it is hooked the
    // affine runs after the kernel instead of inside it.
    const ln = cfg.normalization_type === 'LN';
    const hookNormalized = ln && (opts.hooks?.has(`${prefix}.hook_normalized`) ?? false);
    const fusedAffine = ln && !hookNormalized;
    const scale = fusedAffine ? param(`${paramPrefix}.w`) : g.constF(new Array<number>(d).fill(1), [d]);
    const inputs = fusedAffine ? [x, scale, param(`${paramPrefix}.b`)] : [x, scale];
    const wantScale = opts.hooks?.has(`${prefix}.hook_scale`) ?? false;
    const y = g.fresh('ln');
    const outputs = wantScale ? [y, g.fresh('ln_mean'), g.fresh('ln_invstd')] : [y];
    g.nodes.push({ op: 'LayerNormalization', inputs, outputs, attrs: { axis: { kind: 'int', v: -1 }, epsilon: { kind: 'float', v: cfg.eps } } });
    // hook_scale [batch, pos, 1] = sqrt(var + eps) = 1 / InvStdDev.
    if (wantScale) hook(`${prefix}.hook_scale`, g.op('Reciprocal', [outputs[2]!]));
    const normalized = hook(`${prefix}.hook_normalized`, y);
    if (!hookNormalized) return normalized;
    return g.op('Add', [g.op('Mul', [normalized, param(`${paramPrefix}.w`)]), param(`${paramPrefix}.b`)]);
  };

  const act = (x: string): string => {
    switch (cfg.act_fn) {
      case 'relu': return g.op('Relu', [x]);
      case 'gelu': return g.op('Gelu', [x], undefined, undefined, 'com.microsoft');
      default: return g.op('FastGelu', [x], undefined, undefined, 'com.microsoft');
    }
  };

  // Causal mask [pos, pos]: a constant when pos is fixed, else sliced from [n_ctx, n_ctx].
  let mask: string;
  if (typeof opts.pos === 'number') {
    mask = g.constBool(causalMask(opts.pos), [opts.pos, opts.pos]);
  } else {
    const posLen = g.op('Slice', [g.op('Shape', [tokens]), g.constI64([1]), g.constI64([2])]);
    const ends = g.op('Concat', [posLen, posLen], { axis: 0 });
    mask = g.op('Slice', [g.constBool(causalMask(cfg.n_ctx), [cfg.n_ctx, cfg.n_ctx]), g.constI64([0, 0]), ends, g.constI64([0, 1])]);
  }

  // hook_embed [batch, pos, d_model] = W_E[tokens]
  const embed = hook('hook_embed', g.op('Gather', [param('embed.W_E'), tokens], { axis: 0 }));
  let resid = embed;
  if (opts.usePos) {
    // W_pos[:pos] [pos, d_model], broadcast over batch by the Add.
    const end = typeof opts.pos === 'number' ? g.constI64([opts.pos]) : g.op('Slice', [g.op('Shape', [tokens]), g.constI64([1]), g.constI64([2])]);
    let posEmbed = g.op('Slice', [param('pos_embed.W_pos'), g.constI64([0]), end, g.constI64([0])]);
    if (opts.hooks?.has('hook_pos_embed')) posEmbed = hook('hook_pos_embed', g.op('Expand', [posEmbed, g.op('Shape', [embed])]));
    resid = g.op('Add', [embed, posEmbed]);
  }

  for (let l = 0; l < cfg.n_layers; l++) {
    const P = `blocks.${l}`;
    const residPre = hook(`${P}.hook_resid_pre`, resid);
    const x = layerNorm(`${P}.ln1`, residPre, `${P}.ln1`);
    // W_QKV [d_model, 3 * head_index * d_head]: columns (Q|K|V, head, d_head), as packQKV in gpt2.ts.
    let wqkv: string, bqkv: string;
    if (opts.packedQKV) {
      ({ W: wqkv, b: bqkv } = opts.packedQKV(l));
    } else {
      const wcols = (w: string) => g.op('Reshape', [g.op('Transpose', [param(w)], { perm: [1, 0, 2] }), g.constI64([d, H * dh])]);
      wqkv = g.op('Concat', [wcols(`${P}.attn.W_Q`), wcols(`${P}.attn.W_K`), wcols(`${P}.attn.W_V`)], { axis: 1 });
      const bflat = (b: string) => g.op('Reshape', [param(b), g.constI64([H * dh])]);
      bqkv = g.op('Concat', [bflat(`${P}.attn.b_Q`), bflat(`${P}.attn.b_K`), bflat(`${P}.attn.b_V`)], { axis: 0 });
    }
    const qkv = g.op('Add', [g.op('MatMul', [x, wqkv]), bqkv]); // [batch, pos, 3 * head_index * d_head]
    const [qf, kf, vf] = g.opN('Split', [qkv, g.constI64([H * dh, H * dh, H * dh])], 3, { axis: -1 });
    const shape4 = g.constI64([0, 0, H, dh]);
    const q = hook(`${P}.attn.hook_q`, g.op('Reshape', [qf!, shape4])); // [batch, pos, head_index, d_head]
    const k = hook(`${P}.attn.hook_k`, g.op('Reshape', [kf!, shape4]));
    const v = hook(`${P}.attn.hook_v`, g.op('Reshape', [vf!, shape4]));
    // scores [batch, head_index, query_pos, key_pos] = q . k / sqrt(d_head), future keys -> -inf.
    // One FusedMatMul (k transposed and the scale applied inside the GEMM); its gradient rule
    // needs no transposes either.
    const headsFirst = (t: string) => permute(g, t, [0, 2, 1, 3], [opts.batch, opts.pos, H, dh]); // [batch, head_index, pos, d_head]
    const alpha = cfg.use_attn_scale ? 1 / Math.sqrt(dh) : 1;
    let scores = g.op('FusedMatMul', [headsFirst(q), headsFirst(k)], { transB: 1, alpha }, undefined, 'com.microsoft');
    scores = hook(`${P}.attn.hook_attn_scores`, g.op('Where', [mask, scores, g.constF([-Infinity])]));
    const pattern = hook(`${P}.attn.hook_pattern`, g.op('Softmax', [scores], { axis: -1 }));
    // z [batch, pos, head_index, d_head] = pattern @ v
    const zT = g.op('MatMul', [pattern, headsFirst(v)]);
    const z = hook(`${P}.attn.hook_z`, permute(g, zT, [0, 2, 1, 3], [opts.batch, H, opts.pos, dh]));
    const zFlat = g.op('Reshape', [z, g.constI64([0, 0, H * dh])]);
    const wO = g.op('Reshape', [param(`${P}.attn.W_O`), g.constI64([H * dh, d])]);
    const attnOut = hook(`${P}.hook_attn_out`, g.op('Add', [g.op('MatMul', [zFlat, wO]), param(`${P}.attn.b_O`)]));
    if (cfg.attn_only) {
      resid = hook(`${P}.hook_resid_post`, g.op('Add', [residPre, attnOut]));
      continue;
    }
    const residMid = hook(`${P}.hook_resid_mid`, g.op('Add', [residPre, attnOut]));
    const x2 = layerNorm(`${P}.ln2`, residMid, `${P}.ln2`);
    const pre = hook(`${P}.mlp.hook_pre`, g.op('Add', [g.op('MatMul', [x2, param(`${P}.mlp.W_in`)]), param(`${P}.mlp.b_in`)]));
    const post = hook(`${P}.mlp.hook_post`, act(pre));
    const mlpOut = hook(`${P}.hook_mlp_out`, g.op('Add', [g.op('MatMul', [post, param(`${P}.mlp.W_out`)]), param(`${P}.mlp.b_out`)]));
    resid = hook(`${P}.hook_resid_post`, g.op('Add', [residMid, mlpOut]));
  }
  if (opts.selectPositions) resid = g.op('MatMul', [opts.selectPositions, resid]); // [batch, k, d_model]
  const xf = layerNorm('ln_final', resid, 'ln_final');
  // logits [batch, pos, d_vocab_out] = x @ W_U + b_U
  const logits = g.op('Add', [g.op('MatMul', [xf, param('unembed.W_U')]), param('unembed.b_U')]);
  return { logits, hooks };
}

/** A [batch, pos] int64 token-id input. */
export function tokenInput(g: GraphBuilder, name: string, batch: Dim, pos: Dim): string {
  return g.input(name, OnnxDType.INT64, [batch, pos]);
}


/**
 * TransformerLens's default ('gpt2') initialisation: every W_* ~ N(0, initializer_range^2) with
 * initializer_range = 0.8 / sqrt(d_model); biases 0; LayerNorm weights 1. W_pos is zero when
 * positional embeddings are zeroed and frozen (the seed's deactivate_position).
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
    } else if (last.startsWith('W_')) {
      for (let i = 0; i < n; i++) data[i] = rng.normal() * std;
    } else if (last === 'w') {
      data.fill(1);
    }
    p.set(s.name, f32(s.dims, data, s.axes));
  }
  return p;
}
