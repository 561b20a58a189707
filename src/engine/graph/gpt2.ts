/**
 * The hooked GPT-2 as ONNX graphs, one segment at a time: `embed` (tokens -> residual stream),
 * one graph per transformer block, and `final` (ln_final + unembed). Chaining per-segment
 * sessions means an intervention at layer L only recompiles block L, and start/stop at a layer
 * is just running a sub-chain; runs without interventions fuse the chain into one session
 * (fuseSegments) because handing over between sessions' thread pools costs ~2 ms each.
 *
 * Every hook value in a graph is named exactly as TransformerLens names it
 * (`blocks.3.attn.hook_pattern`) and has TransformerLens's axis order; interventions are applied
 * to a hook's value before anything downstream reads it, so cached values are post-intervention
 * (as TransformerLens's cache hooks registered after the intervention hooks would see them).
 */
import type { HookedTransformerConfig } from '../model/config.js';
import { getParam, type Params } from '../model/params.js';
import { hookAxes, type HookName, type OutputName } from '../hooks/hooks.js';
import type { InterventionKind } from '../interventions/plan.js';
import { f32, type F32 } from '../tensor/tensor.js';
import { GraphBuilder } from './builder.js';
import { OnnxDType, type OnnxGraph, type OnnxNode, type OnnxTensor, type OnnxValueInfo } from './onnxProto.js';

/** The compiled shape of one intervention: which hook, which kind, which axes its mask indexes. */
export interface InterventionSlot {
  hook: HookName;
  kind: InterventionKind;
  over?: 'batch' | 'supplied';
  /** For each axis of the hook: true when the mask varies along it (else it is broadcast, size 1). */
  maskAxes: readonly boolean[];
}

export type Segment = { kind: 'embed' } | { kind: 'block'; layer: number } | { kind: 'final' };

export interface SegmentVariant {
  /** Hook values this session returns (subset of the segment's hooks), plus 'logits' for final. */
  outputs: readonly OutputName[];
  /** Compute per-head results (attn.hook_result) and sum them, as TransformerLens's use_attn_result. */
  useAttnResult: boolean;
  slots: readonly InterventionSlot[];
  /**
   * Only the last position's output is computed (the patching metrics read nothing else): in a
   * block, its query row, attention and MLP (keys and values still cover every position), giving
   * resid_out [batch, 1, d_model]; in `final`, ln_final and the unembedding of that position,
   * giving logits [batch, 1, ...]. Such a variant has no hook outputs or interventions after
   * the slice.
   */
  lastPos?: boolean;
  /** final only: logits for the token ids fed as VOCAB_IDS [K] instead of all of d_vocab_out. */
  vocab?: boolean;
  /**
   * final only: stop before the unembedding and output ln_final's result as FINAL_X
   * [batch, pos, d_model]; the logits come from the shared unembed session (buildUnembedGraph).
   */
  unembedApart?: boolean;
  /** block only: the input is blocks.L.hook_resid_mid and only the MLP half runs. */
  fromMid?: boolean;
  /**
   * block only: the input holds only the positions after a prefix whose keys and values are fed
   * as PAST_K / PAST_V [batch, prefix, head_index, d_head] (a prefix that every patched run shares
   * with the cached corrupted run, so it is not recomputed). No hook outputs or interventions.
   */
  prefix?: boolean;
}

/** A segment's ONNX graph plus the weights it expects as inputs. */
export type SegmentGraph = OnnxGraph & { weightInputs: Map<string, F32> };

/** Name of the graph input that carries the residual stream into a block / the final segment. */
export const RESID_IN = 'resid_in';
export const RESID_OUT = 'resid_out';
export const TOKENS = 'tokens';
/** Keys and values of the positions before the input, for `prefix` blocks. */
export const PAST_K = 'past_k';
export const PAST_V = 'past_v';
/** ln_final's output [batch, pos, d_model], the input of the unembed session. */
export const FINAL_X = 'final_x';
/** int64 [K]: the token ids whose logits a `vocab` final segment computes. */
export const VOCAB_IDS = 'vocab_ids';

/** End index meaning "to the end" in an ONNX Slice. */
const SLICE_END = Number.MAX_SAFE_INTEGER;

export function slotInputName(i: number, what: 'mask' | 'source' | 'mean' | 'vector' | 'factor'): string {
  return `iv${i}.${what}`;
}

/** Symbolic dims of a hook's axes for graph value_info. */
function symDims(name: OutputName, cfg: HookedTransformerConfig): (number | string)[] {
  return hookAxes(name, cfg).map((a) => {
    switch (a) {
      case 'batch': return 'batch';
      case 'pos': return 'pos';
      case 'query_pos': return 'pos';
      case 'key_pos': return 'pos';
      case 'd_model': return cfg.d_model;
      case 'head_index': return cfg.n_heads;
      case 'd_head': return cfg.d_head;
      case 'd_mlp': return cfg.d_mlp ?? 0;
      case 'd_vocab': return cfg.d_vocab_out;
      case 'one': return 1;
    }
  });
}

class SegmentBuilder {
  readonly g: GraphBuilder;
  private readonly produced = new Set<OutputName>();

  constructor(readonly cfg: HookedTransformerConfig, readonly params: Params, readonly v: SegmentVariant, name: string) {
    this.g = new GraphBuilder(name);
  }

  private readonly weights = new Map<string, string>();

  /** A parameter, optionally viewed with other dims (same bytes, own name). */
  w(name: string, dims?: readonly number[], t: F32 = getParam(this.params, name)): string {
    const key = dims ? `${name}[${dims.join(',')}]` : name;
    const hit = this.weights.get(key);
    if (hit) return hit;
    const v = this.g.weight(key, t, dims, true);
    this.weights.set(key, v);
    return v;
  }

  /** Applies the variant's interventions at this hook, then names the value after the hook. */
  hook(name: OutputName, value: string): string {
    let cur = value;
    const rank = hookAxes(name, this.cfg).length;
    this.v.slots.forEach((s, i) => {
      if (s.hook !== name) return;
      const g = this.g;
      const maskDims = s.maskAxes.map((m, ax) => (m ? `m${i}_${ax}` : 1));
      const mask = g.input(slotInputName(i, 'mask'), OnnxDType.FLOAT, maskDims);
      let target: string;
      switch (s.kind) {
        case 'patch':
          target = g.input(slotInputName(i, 'source'), OnnxDType.FLOAT, symDims(name, this.cfg));
          break;
        case 'zero':
          target = g.constF([0]);
          break;
        case 'mean':
          target = s.over === 'supplied'
            ? g.input(slotInputName(i, 'mean'), OnnxDType.FLOAT, symDims(name, this.cfg).slice(1))
            : g.op('ReduceMean', [cur], { axes: [0], keepdims: 1 });
          break;
        case 'add': {
          const vec = g.input(slotInputName(i, 'vector'), OnnxDType.FLOAT, [symDims(name, this.cfg)[rank - 1]!]);
          target = g.op('Add', [cur, vec]);
          break;
        }
        case 'scale': {
          const f = g.input(slotInputName(i, 'factor'), OnnxDType.FLOAT, []);
          target = g.op('Mul', [cur, f]);
          break;
        }
      }
      // h' = M ? target : h (a select, so patched entries are bit-exact copies of the source).
      cur = g.op('Where', [g.op('Cast', [mask], { to: OnnxDType.BOOL }), target, cur]);
    });
    const named = this.g.alias(cur, name);
    this.produced.add(name);
    return named;
  }

  /** `plain`: the same computation without naming hooks (values after a lastPos slice). */
  layerNorm(prefix: string, x: string, paramPrefix: string, plain = false): string {
    const g = this.g;
    const cfg = this.cfg;
    if (cfg.normalization_type === null) return x;
    // TransformerLens LayerNorm / LayerNormPre: centre, scale = sqrt(mean(x^2) + eps), divide;
    // LN then applies w and b. hook_scale is [batch, pos, 1]. hook_normalized is the value
    // before w and b (TransformerLens 3's HookedTransformer, as its RMSNorm always did).
    const mean = g.op('ReduceMean', [x], { axes: [-1], keepdims: 1 });
    const xc = g.op('Sub', [x, mean]);
    const var_ = g.op('ReduceMean', [g.op('Mul', [xc, xc])], { axes: [-1], keepdims: 1 });
    const sq = g.op('Sqrt', [g.op('Add', [var_, g.constF([cfg.eps])])]);
    const scale = plain ? sq : this.hook(`${prefix}.hook_scale` as OutputName, sq);
    const div = g.op('Div', [xc, scale]);
    const y = plain ? div : this.hook(`${prefix}.hook_normalized` as OutputName, div);
    if (cfg.normalization_type !== 'LN') return y;
    return g.op('Add', [g.op('Mul', [y, this.w(`${paramPrefix}.w`)]), this.w(`${paramPrefix}.b`)]);
  }

  /**
   * The MLP activation. GELUs use onnxruntime's fused contrib kernels (com.microsoft FastGelu is
   * exactly gelu_new's tanh form; Gelu is the erf form): the same numbers as the element-wise
   * formula, but one vectorised pass, and it stays fast when hook_pre is also a graph output
   * (which otherwise blocks onnxruntime's own fusion and costs ~4 ms per GPT-2-small block).
   */
  act(x: string): string {
    const g = this.g;
    switch (this.cfg.act_fn) {
      case 'relu':
        return g.op('Relu', [x]);
      case 'gelu':
        return g.op('Gelu', [x], undefined, undefined, 'com.microsoft');
      case 'gelu_new':
      case 'gelu_fast':
      case 'solu_ln':
        return g.op('FastGelu', [x], undefined, undefined, 'com.microsoft');
    }
  }

  finish(extraOutputs: { name: string; dims: (number | string)[] }[]): SegmentGraph {
    for (const o of this.v.outputs) {
      if (!this.produced.has(o)) throw new Error(`internal: segment ${this.g.name} does not produce ${o}`);
      this.g.output(o, OnnxDType.FLOAT, symDims(o, this.cfg));
    }
    for (const e of extraOutputs) this.g.output(e.name, OnnxDType.FLOAT, e.dims);
    return this.g.build();
  }
}

export function buildEmbedGraph(cfg: HookedTransformerConfig, params: Params, v: SegmentVariant): SegmentGraph {
  const b = new SegmentBuilder(cfg, params, v, 'embed');
  const g = b.g;
  const tokens = g.input(TOKENS, OnnxDType.INT64, ['batch', 'pos']);
  // hook_embed [batch, pos, d_model] = W_E[tokens]
  const embed = b.hook('hook_embed', g.op('Gather', [b.w('embed.W_E'), tokens], { axis: 0 }));
  let resid = embed;
  if (cfg.positional_embedding_type === 'standard') {
    // hook_pos_embed [batch, pos, d_model] = W_pos[0:pos] broadcast over batch
    const pos = g.op('Slice', [g.op('Shape', [tokens]), g.constI64([1]), g.constI64([2])]);
    const wpos = g.op('Slice', [b.w('pos_embed.W_pos'), g.constI64([0]), pos, g.constI64([0])]);
    const posEmbed = b.hook('hook_pos_embed', g.op('Expand', [wpos, g.op('Shape', [embed])]));
    resid = g.op('Add', [embed, posEmbed]);
  }
  g.alias(resid, RESID_OUT);
  return b.finish([{ name: RESID_OUT, dims: ['batch', 'pos', cfg.d_model] }]);
}

/** Lower-triangular [n_ctx, n_ctx] mask, sliced to [pos, pos] in the graph. */
function causalMask(n: number): boolean[] {
  const m = new Array<boolean>(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m[i * n + j] = j <= i;
  return m;
}

export function buildBlockGraph(cfg: HookedTransformerConfig, params: Params, layer: number, v: SegmentVariant): SegmentGraph {
  const b = new SegmentBuilder(cfg, params, v, `block${layer}`);
  const g = b.g;
  const P = `blocks.${layer}`;
  const H = cfg.n_heads;
  const dh = cfg.d_head;
  const d = cfg.d_model;
  const h = (s: string) => `${P}.${s}` as OutputName;

  const residIn = g.input(RESID_IN, OnnxDType.FLOAT, ['batch', 'pos', d]);
  if ((v.lastPos || v.prefix) && (v.outputs.length > 0 || v.slots.length > 0)) {
    throw new Error(`internal: a lastPos / prefix variant of block ${layer} cannot have hook outputs or interventions`);
  }
  if (v.prefix && v.fromMid) throw new Error('internal: a block cannot both start at resid_mid and take a prefix');
  if (v.fromMid) {
    if (cfg.attn_only) throw new Error('internal: an attention-only block has no resid_mid to start from');
    const mlpHooks = new Set(['hook_resid_mid', 'ln2.hook_scale', 'ln2.hook_normalized', 'mlp.hook_pre', 'mlp.hook_post', 'hook_mlp_out', 'hook_resid_post'].map(h));
    const bad = [...v.outputs, ...v.slots.map((s) => s.hook)].find((n) => !mlpHooks.has(n));
    if (bad) throw new Error(`internal: block ${layer} starts at resid_mid, so ${bad} is not computed`);
  }
  // [batch, pos, ...] -> [batch, 1, ...]: the last position (lastPos variants).
  const lastOf = (x: string) => g.op('Slice', [x, g.constI64([-1]), g.constI64([SLICE_END]), g.constI64([1])]);

  let residPost: string;
  if (v.fromMid) {
    // resid_mid [batch, pos, d_model] is given: only ln2 and the MLP run.
    const residMid = v.lastPos ? lastOf(residIn) : b.hook(h('hook_resid_mid'), g.op('Identity', [residIn]));
    residPost = mlpHalf(b, P, residMid, v.lastPos === true);
  } else {
    const residPre = b.hook(h('hook_resid_pre'), g.op('Identity', [residIn]));
    const x = b.layerNorm(`${P}.ln1`, residPre, `${P}.ln1`);

    // q, k, v [batch, pos, head_index, d_head] = x @ W[h] + b[h], each as one MatMul batched over
    // heads on the weights as TransformerLens stores them: [1, batch*pos, d_model] x W
    // [head_index, d_model, d_head] -> [head_index, batch*pos, d_head]. No packed W_QKV copy
    // (85 MB for GPT-2 small), and measured as fast as one packed GEMM at 64 tokens (2.03 vs 1.99 ms).
    const xs = g.op('Reshape', [x, g.constI64([1, -1, d])]);
    const bphd = g.op('Concat', [g.op('Slice', [g.op('Shape', [x]), g.constI64([0]), g.constI64([2])]), g.constI64([H, dh])], { axis: 0 });
    const project = (which: 'Q' | 'K' | 'V'): string => {
      const y = g.op('Add', [g.op('MatMul', [xs, b.w(`${P}.attn.W_${which}`)]), b.w(`${P}.attn.b_${which}`, [H, 1, dh])]);
      return g.op('Reshape', [g.op('Transpose', [y], { perm: [1, 0, 2] }), bphd]);
    };
    const q = b.hook(h('attn.hook_q'), project('Q'));
    let k = b.hook(h('attn.hook_k'), project('K'));
    let vv = b.hook(h('attn.hook_v'), project('V'));
    // prefix: keys / values of the earlier positions come in, [batch, past + pos, head_index, d_head].
    let past: string | null = null;
    if (v.prefix) {
      const pk = g.input(PAST_K, OnnxDType.FLOAT, ['batch', 'past', H, dh]);
      const pv = g.input(PAST_V, OnnxDType.FLOAT, ['batch', 'past', H, dh]);
      past = g.op('Slice', [g.op('Shape', [pk]), g.constI64([1]), g.constI64([2])]);
      k = g.op('Concat', [pk, k], { axis: 1 });
      vv = g.op('Concat', [pv, vv], { axis: 1 });
    }

    // scores [batch, head_index, query_pos, key_pos] = q . k / sqrt(d_head), causal mask -> -inf.
    // lastPos: one query row [batch, head_index, 1, key_pos]; the last query sees every key, so no mask.
    const qT = g.op('Transpose', [v.lastPos ? lastOf(q) : q], { perm: [0, 2, 1, 3] });
    const kT = g.op('Transpose', [k], { perm: [0, 2, 3, 1] });
    let scores = g.op('MatMul', [qT, kT]);
    if (cfg.use_attn_scale) scores = g.op('Mul', [scores, g.constF([1 / Math.sqrt(dh)])]);
    if (!v.lastPos) {
      // Rows [past, past + pos) and columns [0, past + pos) of the causal mask.
      const n = cfg.n_ctx;
      const posLen = g.op('Slice', [g.op('Shape', [residIn]), g.constI64([1]), g.constI64([2])]);
      const first = past ?? g.constI64([0]);
      const total = past ? g.op('Add', [past, posLen]) : posLen;
      const starts = g.op('Concat', [first, g.constI64([0])], { axis: 0 });
      const ends = g.op('Concat', [total, total], { axis: 0 });
      const mask = g.op('Slice', [g.constBool(causalMask(n), [n, n]), starts, ends, g.constI64([0, 1])]);
      scores = g.op('Where', [mask, scores, g.constF([-Infinity])]);
    }
    // Values after the lastPos slice have one position, so they are not hooks (and never outputs).
    const hk = (name: string, value: string) => (v.lastPos ? value : b.hook(h(name), value));
    const attnScores = hk('attn.hook_attn_scores', scores);
    const pattern = hk('attn.hook_pattern', g.op('Softmax', [attnScores], { axis: -1 }));

    // z [batch, pos, head_index, d_head] = pattern @ v
    const vT = g.op('Transpose', [vv], { perm: [0, 2, 1, 3] });
    const zT = g.op('MatMul', [pattern, vT]); // [batch, head_index, pos, d_head]
    const z = hk('attn.hook_z', g.op('Transpose', [zT], { perm: [0, 2, 1, 3] }));

    let attnOut: string;
    const zFlat = g.op('Reshape', [z, g.constI64([0, 0, H * dh])]);
    const plainOut = () => g.op('Add', [g.op('MatMul', [zFlat, b.w(`${P}.attn.W_O`, [H * dh, d])]), b.w(`${P}.attn.b_O`)]);
    if (v.useAttnResult && !v.lastPos) {
      // result [batch, pos, head_index, d_model] = z[b,p,h,:] @ W_O[h], computed as head_index GEMMs
      // of [batch*pos, d_head] x [d_head, d_model] (one per head) rather than batch*head tiny ones.
      const zH = g.op('Transpose', [g.op('Reshape', [z, g.constI64([-1, H, dh])])], { perm: [1, 0, 2] }); // [head_index, batch*pos, d_head]
      const resH = g.op('MatMul', [zH, b.w(`${P}.attn.W_O`)]); // [head_index, batch*pos, d_model]
      const bp = g.op('Slice', [g.op('Shape', [z]), g.constI64([0]), g.constI64([2])]);
      const shape = g.op('Concat', [bp, g.constI64([H, d])], { axis: 0 });
      const result = b.hook(h('attn.hook_result'), g.op('Reshape', [g.op('Transpose', [resH], { perm: [1, 0, 2] }), shape]));
      // TransformerLens sums the per-head results when they are used; we only need to when an
      // intervention may have changed them, otherwise the single GEMM gives the same attn_out.
      attnOut = v.slots.some((s) => s.hook === h('attn.hook_result'))
        ? g.op('Add', [g.op('ReduceSum', [result, g.constI64([2])], { keepdims: 0 }), b.w(`${P}.attn.b_O`)])
        : plainOut();
    } else {
      attnOut = plainOut();
    }
    attnOut = hk('hook_attn_out', attnOut);

    const residPreOut = v.lastPos ? lastOf(residPre) : residPre;
    if (cfg.attn_only) {
      residPost = g.op('Add', [residPreOut, attnOut]);
    } else {
      residPost = mlpHalf(b, P, hk('hook_resid_mid', g.op('Add', [residPreOut, attnOut])), v.lastPos === true);
    }
  }
  const out = v.lastPos ? residPost : b.hook(h('hook_resid_post'), residPost);
  g.alias(out, RESID_OUT);
  return b.finish([{ name: RESID_OUT, dims: ['batch', v.lastPos ? 1 : 'pos', d] }]);
}

/**
 * ln2, the MLP and the residual add of block `P` on resid_mid [batch, pos, d_model]; returns
 * resid_post. `plain` values are not hooks (lastPos / fromMid variants have none).
 */
function mlpHalf(b: SegmentBuilder, P: string, residMid: string, plain: boolean): string {
  const g = b.g;
  const h = (s: string) => `${P}.${s}` as OutputName;
  const hk = (name: string, value: string) => (plain ? value : b.hook(h(name), value));
  const x2 = b.layerNorm(`${P}.ln2`, residMid, `${P}.ln2`, plain);
  const pre = hk('mlp.hook_pre', g.op('Add', [g.op('MatMul', [x2, b.w(`${P}.mlp.W_in`)]), b.w(`${P}.mlp.b_in`)]));
  const post = hk('mlp.hook_post', b.act(pre));
  const mlpOut = hk('hook_mlp_out', g.op('Add', [g.op('MatMul', [post, b.w(`${P}.mlp.W_out`)]), b.w(`${P}.mlp.b_out`)]));
  return g.op('Add', [residMid, mlpOut]);
}

export function buildFinalGraph(cfg: HookedTransformerConfig, params: Params, v: SegmentVariant): SegmentGraph {
  const b = new SegmentBuilder(cfg, params, v, 'final');
  const g = b.g;
  if (v.lastPos && (v.outputs.length > 0 || v.slots.length > 0)) throw new Error('internal: a lastPos final segment cannot have hook outputs or interventions');
  const residIn = g.input(RESID_IN, OnnxDType.FLOAT, ['batch', 'pos', cfg.d_model]);
  // lastPos: [batch, pos, d_model] -> [batch, 1, d_model] (a no-op when the last block already sliced).
  const resid = v.lastPos ? g.op('Slice', [residIn, g.constI64([-1]), g.constI64([SLICE_END]), g.constI64([1])]) : residIn;
  const x = b.layerNorm('ln_final', resid, 'ln_final', v.lastPos === true);
  if (v.unembedApart) {
    if (v.lastPos || v.vocab) throw new Error('internal: unembedApart is for full logits only');
    g.alias(x, FINAL_X);
    return b.finish([{ name: FINAL_X, dims: ['batch', 'pos', cfg.d_model] }]);
  }
  let WU: string, bU: string;
  if (v.vocab || v.lastPos) {
    // Patching sweeps read a few rows of logits: W_U stays a zero-copy input (not another
    // pre-packed copy of the largest matrix), and `vocab` gathers only the K columns needed:
    // W_U[:, ids] [d_model, K], b_U[ids] [K].
    WU = g.weight('unembed.W_U', getParam(params, 'unembed.W_U'), undefined, true);
    bU = b.w('unembed.b_U');
    if (v.vocab) {
      const ids = g.input(VOCAB_IDS, OnnxDType.INT64, ['K']);
      WU = g.op('Gather', [WU, ids], { axis: 1 });
      bU = g.op('Gather', [bU, ids], { axis: 0 });
    }
  } else {
    WU = b.w('unembed.W_U');
    bU = b.w('unembed.b_U');
  }
  // logits [batch, pos, d_vocab_out] (pos = 1 with lastPos, d_vocab_out = K with vocab) = x @ W_U + b_U
  g.op('Add', [g.op('MatMul', [x, WU]), bU], undefined, 'logits');
  return b.finish([{ name: 'logits', dims: ['batch', v.lastPos ? 1 : 'pos', v.vocab ? 'K' : cfg.d_vocab_out] }]);
}

/**
 * logits [batch, pos, d_vocab_out] = FINAL_X [batch, pos, d_model] @ W_U + b_U, with W_U compiled
 * in as an initializer: onnxruntime pre-packs it once for its GEMM kernel instead of re-packing
 * a graph input on every run (the largest GEMM of a forward: 768 x 50257 in GPT-2 small,
 * measured ~20 ms of a 64-token forward). One such session per model serves every full-logits
 * run, so the pre-packed copy exists once; lastPos / vocab runs keep W_U as a zero-copy input.
 */
export function buildUnembedGraph(cfg: HookedTransformerConfig, params: Params): SegmentGraph {
  const g = new GraphBuilder('unembed');
  const x = g.input(FINAL_X, OnnxDType.FLOAT, ['batch', 'pos', cfg.d_model]);
  const WU = g.weight('unembed.W_U', getParam(params, 'unembed.W_U'));
  const bU = g.weight('unembed.b_U', getParam(params, 'unembed.b_U'), undefined, true);
  g.op('Add', [g.op('MatMul', [x, WU]), bU], undefined, 'logits');
  g.output('logits', OnnxDType.FLOAT, ['batch', 'pos', cfg.d_vocab_out]);
  return g.build();
}

/**
 * W_Q/W_K/W_V [head_index, d_model, d_head] -> W_QKV [d_model, 3 * head_index * d_head] with
 * columns ordered (Q|K|V, head, d_head), and b_QKV [3 * head_index * d_head], so one MatMul
 * computes q, k and v and each third reshapes to [batch, pos, head_index, d_head].
 */
export function packQKV(params: Params, P: string, cfg: HookedTransformerConfig): { W: F32; b: F32 } {
  const H = cfg.n_heads, d = cfg.d_model, dh = cfg.d_head;
  const cols = 3 * H * dh;
  const W = new Float32Array(d * cols);
  const bias = new Float32Array(cols);
  (['Q', 'K', 'V'] as const).forEach((which, wi) => {
    const src = getParam(params, `${P}.attn.W_${which}`).data;
    const bsrc = getParam(params, `${P}.attn.b_${which}`).data;
    for (let hh = 0; hh < H; hh++) {
      const colBase = wi * H * dh + hh * dh;
      for (let r = 0; r < d; r++) {
        const srcOff = (hh * d + r) * dh;
        const dstOff = r * cols + colBase;
        for (let c = 0; c < dh; c++) W[dstOff + c] = src[srcOff + c]!;
      }
      for (let c = 0; c < dh; c++) bias[colBase + c] = bsrc[hh * dh + c]!;
    }
  });
  return { W: f32([d, cols], W), b: f32([cols], bias) };
}

/**
 * One graph from a chain of segment graphs (embed, blocks, final, in order): segment k's
 * RESID_OUT feeds segment k+1's RESID_IN inside the graph. Running a chain as one onnxruntime
 * session instead of one session per segment saves the hand-over between sessions' thread pools
 * (~30 ms of a 124M-parameter 8x8 forward on two cores, measured); per-segment sessions stay
 * for runs with interventions, where only the intervened block needs a new variant.
 *
 * Names: weight inputs and the segments' hook / logits outputs keep theirs (they are unique
 * across segments); every other value of segment k becomes `s<k>/<name>`, so a segment-local
 * input (an intervention slot, PAST_K, the first RESID_IN) is fed as fusedInputName(k, name).
 * The last segment's RESID_OUT, when it has one, stays RESID_OUT.
 */
export function fuseSegments(parts: readonly SegmentGraph[], name: string): SegmentGraph {
  const weightInputs = new Map<string, F32>();
  const inputs = new Map<string, OnnxValueInfo>();
  const outputs: OnnxValueInfo[] = [];
  const nodes: OnnxNode[] = [];
  const initializers: OnnxTensor[] = [];
  let opset = 0;
  const extra: Record<string, number> = {};
  parts.forEach((part, k) => {
    const last = k === parts.length - 1;
    const keep = new Set<string>([...part.weightInputs.keys(), ...part.outputs.map((o) => o.name).filter((n) => n !== RESID_OUT)]);
    const rename = (n: string): string => {
      if (n === '' || keep.has(n)) return n;
      if (n === RESID_IN && k > 0) return fusedInputName(k - 1, RESID_OUT);
      if (n === RESID_OUT && last) return RESID_OUT;
      return fusedInputName(k, n);
    };
    for (const [wn, t] of part.weightInputs) weightInputs.set(wn, t);
    for (const i of part.inputs) {
      if (k > 0 && i.name === RESID_IN) continue;
      const n = rename(i.name);
      if (!inputs.has(n)) inputs.set(n, { ...i, name: n });
    }
    for (const o of part.outputs) if (o.name !== RESID_OUT || last) outputs.push({ ...o, name: rename(o.name) });
    for (const t of part.initializers) initializers.push({ ...t, name: rename(t.name) });
    for (const n of part.nodes) nodes.push({ ...n, inputs: n.inputs.map(rename), outputs: n.outputs.map(rename), ...(n.name ? { name: rename(n.name) } : {}) });
    opset = Math.max(opset, part.opset);
    Object.assign(extra, part.extraOpsets ?? {});
  });
  return { name, nodes, initializers, inputs: [...inputs.values()], outputs, opset, extraOpsets: extra, weightInputs };
}

/** The fused graph's name for segment k's local value `name` (see fuseSegments). */
export function fusedInputName(k: number, name: string): string {
  return `s${k}/${name}`;
}
