/**
 * The hooked transformer as ONNX graphs, one segment at a time, assembled from the shared
 * components (./components: embed, norm, attention, mlp, unembed) for every registered family: `embed` (tokens -> residual stream),
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
import { isPostNormArch, type HookedTransformerConfig } from '../model/config.js';
import { hookAxes, hookDims, isMoeHook, parseSaeHook, type HookName, type OutputName, type SaeHookName } from '../hooks/hooks.js';
import type { InterventionKind } from '../interventions/plan.js';
import type { F32 } from '../tensor/tensor.js';
import { emitSae, type SaeEmitter, type SaeSlot } from '../sae/graph.js';
import type { Sae } from '../sae/sae.js';
import { GraphBuilder } from './builder.js';
import { emitAttention } from './components/attention.js';
import { emitEmbed, emitLogits, emitTiedLogits, emitUnembed, type TiedWeights } from './components/embed.js';
import { lastPosition, SLICE_END, type Emitter } from './components/emitter.js';
import { emitFeedForward } from './components/moe.js';
import { emitNorm, emitPostNorm, emitPreNorm } from './components/norm.js';
import { isTiedUnembed, TIED_P, TIED_Q, TIED_SCALE, tiedUnembed, unembedMatrix } from '../model/unembed.js';
import { OnnxDType, type OnnxGraph, type OnnxNode, type OnnxTensor, type OnnxValueInfo } from './onnxProto.js';

/** The compiled shape of one intervention: which hook, which kind, which axes its mask indexes. */
export interface InterventionSlot {
  hook: HookName | SaeHookName;
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
   * with the cached corrupted run, so it is not recomputed). No hook outputs; interventions only
   * at hooks whose position axis is the input's (not attention scores / pattern, whose key axis
   * spans the prefix too, nor the rotated q / k, which a prefix block does not hook).
   */
  prefix?: boolean;
  /**
   * block only: hook_q / hook_k / hook_v are fed (Q_IN, K_IN, V_IN, [batch, pos, head_index |
   * kv_head, d_head]) instead of computed: ln1 and the projections do not run (their hooks are
   * not available). RESID_IN is still the block's resid_pre.
   */
  qkvIn?: boolean;
  /**
   * SAEs / transcoders spliced in this segment (src/engine/sae/graph.ts): at each slot's output
   * hook the value downstream is the SAE's output; the hook itself keeps the model's value.
   * Their hooks (`<hook>.hook_sae_*`) can be outputs and intervention targets.
   */
  saes?: readonly SaeSlot[];
}

/** Loaded SAEs by id: the weights of a variant's SAE slots. */
export type SaeSource = ReadonlyMap<string, Sae>;

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
/** The given hook_q / hook_k / hook_v of a `qkvIn` block. */
export const Q_IN = 'q_in';
export const K_IN = 'k_in';
export const V_IN = 'v_in';

/** Parameters by TransformerLens name (plain tensors: graph code does not depend on the model layer). */
export type ParamSource = ReadonlyMap<string, F32>;

function getParam(params: ParamSource, name: string): F32 {
  const t = params.get(name);
  if (!t) throw new Error(`model parameter ${name} is missing`);
  return t;
}

export function slotInputName(i: number, what: 'mask' | 'source' | 'mean' | 'vector' | 'factor'): string {
  return `iv${i}.${what}`;
}

/**
 * Symbolic dims of a hook's axes for graph value_info (every position axis is 'pos'). An SAE hook
 * is [batch, pos, width] with the width of its SAE (saeHookWidth).
 */
function symDims(name: OutputName, cfg: HookedTransformerConfig, saeWidths?: ReadonlyMap<string, number>): (number | string)[] {
  if (parseSaeHook(name)) {
    const w = saeWidths?.get(name);
    if (w === undefined) throw new Error(`internal: no SAE spliced in this segment produces ${name}`);
    return ['batch', 'pos', w];
  }
  return hookDims(name, cfg, 'batch', 'pos');
}

class SegmentBuilder implements Emitter, SaeEmitter {
  readonly g: GraphBuilder;
  private readonly produced = new Set<OutputName>();
  /** Width of each SAE hook emitted so far. */
  private readonly saeWidths = new Map<string, number>();
  /** The value each SAE slot reads (its input hook's), by slot id, once that hook is emitted. */
  private readonly saeInputs = new Map<string, string>();

  constructor(readonly cfg: HookedTransformerConfig, readonly params: ParamSource, readonly v: SegmentVariant, name: string, readonly saes: SaeSource = new Map()) {
    this.g = new GraphBuilder(name);
  }

  saeHook(name: OutputName, value: string, width: number): string {
    this.saeWidths.set(name, width);
    return this.applyHook(name, value, 3);
  }

  intervenesOn(slot: SaeSlot): boolean {
    return this.v.slots.some((s) => parseSaeHook(s.hook)?.base === slot.hookOut);
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

  /**
   * Applies the variant's interventions at this hook, then names the value after the hook; then
   * splices the SAE whose output hook this is (returning its output, which replaces the value
   * downstream) and keeps the value as the input of an SAE or transcoder reading this hook.
   */
  hook(name: OutputName, value: string): string {
    const named = this.applyHook(name, value, hookAxes(name, this.cfg).length);
    let out = named;
    for (const slot of this.v.saes ?? []) {
      if (slot.hookIn === name) this.saeInputs.set(slot.id, named);
      if (slot.hookOut === name) {
        const x = this.saeInputs.get(slot.id);
        if (x === undefined) throw new Error(`internal: ${slot.hookOut} is emitted before the input hook ${slot.hookIn} of its transcoder`);
        const sae = this.saes.get(slot.id);
        if (!sae) throw new Error(`internal: SAE ${slot.id} is spliced but its weights were not given to the graph builder`);
        out = emitSae(this, slot, sae, x, named);
      }
    }
    return out;
  }

  private applyHook(name: OutputName, value: string, rank: number): string {
    let cur = value;
    this.v.slots.forEach((s, i) => {
      if (s.hook !== name) return;
      const g = this.g;
      const maskDims = s.maskAxes.map((m, ax) => (m ? `m${i}_${ax}` : 1));
      const mask = g.input(slotInputName(i, 'mask'), OnnxDType.FLOAT, maskDims);
      let target: string;
      switch (s.kind) {
        case 'patch':
          target = g.input(slotInputName(i, 'source'), OnnxDType.FLOAT, symDims(name, this.cfg, this.saeWidths));
          break;
        case 'zero':
          target = g.constF([0]);
          break;
        case 'mean':
          target = s.over === 'supplied'
            ? g.input(slotInputName(i, 'mean'), OnnxDType.FLOAT, symDims(name, this.cfg, this.saeWidths).slice(1))
            : g.op('ReduceMean', [cur], { axes: [0], keepdims: 1 });
          break;
        case 'add': {
          const vec = g.input(slotInputName(i, 'vector'), OnnxDType.FLOAT, [symDims(name, this.cfg, this.saeWidths)[rank - 1]!]);
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

  finish(extraOutputs: { name: string; dims: (number | string)[] }[]): SegmentGraph {
    for (const o of this.v.outputs) {
      if (!this.produced.has(o)) throw new Error(`internal: segment ${this.g.name} does not produce ${o}`);
      this.g.output(o, OnnxDType.FLOAT, symDims(o, this.cfg, this.saeWidths));
    }
    for (const e of extraOutputs) this.g.output(e.name, OnnxDType.FLOAT, e.dims);
    return this.g.build();
  }
}

export function buildEmbedGraph(cfg: HookedTransformerConfig, params: ParamSource, v: SegmentVariant, saes?: SaeSource): SegmentGraph {
  const b = new SegmentBuilder(cfg, params, v, 'embed', saes);
  const g = b.g;
  const tokens = g.input(TOKENS, OnnxDType.INT64, ['batch', 'pos']);
  const resid = emitEmbed(b, tokens, { usePos: cfg.positional_embedding_type === 'standard' });
  g.alias(resid, RESID_OUT);
  return b.finish([{ name: RESID_OUT, dims: ['batch', 'pos', cfg.d_model] }]);
}

/**
 * Whether a prefix block (positions after a cached prefix only) can intervene at this hook: every
 * hook whose axes are [batch, pos, ...] over the block's own positions, i.e. all but the
 * attention scores and pattern (their key axis spans the prefix too), the rotated q / k and the
 * q/k norm hooks (not hooked in a prefix block; the norms' rows flatten pos away).
 */
export function prefixHookOk(hook: string): boolean {
  return !/\.attn\.(hook_(attn_scores|pattern|rot_q|rot_k)|[qk]_norm\.hook_\w+)$/.test(hook);
}

export function buildBlockGraph(cfg: HookedTransformerConfig, params: ParamSource, layer: number, v: SegmentVariant, saes?: SaeSource): SegmentGraph {
  const b = new SegmentBuilder(cfg, params, v, `block${layer}`, saes);
  const g = b.g;
  const P = `blocks.${layer}`;
  const d = cfg.d_model;
  const KV = cfg.n_key_value_heads ?? cfg.n_heads;
  const h = (s: string) => `${P}.${s}` as OutputName;

  const residIn = g.input(RESID_IN, OnnxDType.FLOAT, ['batch', 'pos', d]);
  if ((v.lastPos || v.prefix) && v.outputs.length > 0) throw new Error(`internal: a lastPos / prefix variant of block ${layer} cannot have hook outputs`);
  if (v.lastPos && (v.slots.length > 0 || (v.saes?.length ?? 0) > 0)) throw new Error(`internal: a lastPos variant of block ${layer} cannot have interventions or SAEs`);
  const notInPrefix = v.prefix ? v.slots.find((s) => !prefixHookOk(s.hook)) : undefined;
  if (notInPrefix) throw new Error(`internal: a prefix variant of block ${layer} cannot intervene at ${notInPrefix.hook}`);
  if (v.prefix && v.fromMid) throw new Error('internal: a block cannot both start at resid_mid and take a prefix');
  if (v.fromMid) {
    if (cfg.attn_only) throw new Error('internal: an attention-only block has no resid_mid to start from');
    if (cfg.parallel_attn_mlp) throw new Error(`block ${layer} runs attention and MLP in parallel: there is no resid_mid to start from`);
    const mlpHooks = new Set(['hook_resid_mid', 'ln2.hook_scale', 'ln2.hook_normalized', 'mlp.hook_pre', 'mlp.hook_pre_linear', 'mlp.hook_post', 'ln2_post.hook_scale', 'ln2_post.hook_normalized', 'hook_mlp_out', 'hook_resid_post'].map(h));
    const bad = [...v.outputs, ...v.slots.map((s) => s.hook), ...(v.saes ?? []).flatMap((s) => [s.hookIn, s.hookOut])].find((n) => !mlpHooks.has(parseSaeHook(n)?.base ?? n) && !isMoeHook(n));
    if (bad) throw new Error(`internal: block ${layer} starts at resid_mid, so ${bad} is not computed`);
  }
  const plain = v.lastPos === true;
  const hk = (name: string, value: string) => (plain ? value : b.hook(h(name), value));
  /** ln2, the MLP (hook_mlp_out) on `from` [batch, pos, d_model]. */
  const mlpOut = (from: string) => hk('hook_mlp_out', emitPostNorm(b, P, 'ln2', emitFeedForward(b, P, emitPreNorm(b, P, 'ln2', from, plain), plain), plain));

  let residPost: string;
  if (v.fromMid) {
    // resid_mid [batch, pos, d_model] is given: only ln2 and the MLP run.
    const residMid = plain ? lastPosition(g, residIn) : b.hook(h('hook_resid_mid'), g.op('Identity', [residIn]));
    residPost = g.op('Add', [residMid, mlpOut(residMid)]);
  } else {
    const residPre = b.hook(h('hook_resid_pre'), g.op('Identity', [residIn]));
    const past = v.prefix
      ? { k: g.input(PAST_K, OnnxDType.FLOAT, ['batch', 'past', KV, cfg.d_head]), v: g.input(PAST_V, OnnxDType.FLOAT, ['batch', 'past', KV, cfg.d_head]) }
      : null;
    let given: { q: string; k: string; v: string } | undefined;
    if (v.qkvIn) {
      if (v.fromMid) throw new Error('internal: a block cannot both start at resid_mid and take q, k, v');
      const bad = [...v.outputs, ...v.slots.map((s) => s.hook), ...(v.saes ?? []).flatMap((s) => [s.hookIn, s.hookOut])].find((n) => !isPostNormArch(cfg) && (parseSaeHook(n)?.base ?? n).startsWith(h('ln1.')));
      if (bad) throw new Error(`internal: block ${layer} takes q, k, v, so ${bad} is not computed`);
      given = { q: g.input(Q_IN, OnnxDType.FLOAT, ['batch', 'pos', cfg.n_heads, cfg.d_head]), k: g.input(K_IN, OnnxDType.FLOAT, ['batch', 'pos', KV, cfg.d_head]), v: g.input(V_IN, OnnxDType.FLOAT, ['batch', 'pos', KV, cfg.d_head]) };
    }
    const attnOut = hk('hook_attn_out', emitPostNorm(b, P, 'ln1', emitAttention(b, given ? residPre : emitPreNorm(b, P, 'ln1', residPre), {
      layer, lastPos: plain, past, useAttnResult: v.useAttnResult, ...(given ? { given } : {}),
      resultIntervened: v.slots.some((s) => s.hook === h('attn.hook_result')),
    }), plain));
    const residPreOut = plain ? lastPosition(g, residPre) : residPre;
    if (cfg.attn_only) {
      residPost = g.op('Add', [residPreOut, attnOut]);
    } else if (cfg.parallel_attn_mlp) {
      // GPT-NeoX / GPT-J: the MLP reads resid_pre too; resid_post = resid_pre + attn_out + mlp_out.
      residPost = g.op('Add', [g.op('Add', [residPreOut, attnOut]), mlpOut(residPreOut)]);
    } else {
      const residMid = hk('hook_resid_mid', g.op('Add', [residPreOut, attnOut]));
      residPost = g.op('Add', [residMid, mlpOut(residMid)]);
    }
  }
  const out = plain ? residPost : b.hook(h('hook_resid_post'), residPost);
  g.alias(out, RESID_OUT);
  return b.finish([{ name: RESID_OUT, dims: ['batch', plain ? 1 : 'pos', d] }]);
}

export function buildFinalGraph(cfg: HookedTransformerConfig, params: ParamSource, v: SegmentVariant, saes?: SaeSource): SegmentGraph {
  const b = new SegmentBuilder(cfg, params, v, 'final', saes);
  const g = b.g;
  if (v.lastPos && (v.outputs.length > 0 || v.slots.length > 0 || (v.saes?.length ?? 0) > 0)) throw new Error('internal: a lastPos final segment cannot have hook outputs or interventions');
  const residIn = g.input(RESID_IN, OnnxDType.FLOAT, ['batch', 'pos', cfg.d_model]);
  // lastPos: [batch, pos, d_model] -> [batch, 1, d_model] (a no-op when the last block already sliced).
  const resid = v.lastPos ? g.op('Slice', [residIn, g.constI64([-1]), g.constI64([SLICE_END]), g.constI64([1])]) : residIn;
  const x = emitNorm(b, 'ln_final', resid, v.lastPos === true);
  if (v.unembedApart) {
    if (v.lastPos || v.vocab) throw new Error('internal: unembedApart is for full logits only');
    g.alias(x, FINAL_X);
    return b.finish([{ name: FINAL_X, dims: ['batch', 'pos', cfg.d_model] }]);
  }
  const tied = tiedUnembed(params);
  if (v.vocab || v.lastPos) {
    // Patching sweeps read a few rows of logits: W_U (or the W_E it is tied to) stays a zero-copy
    // input (not another pre-packed copy of the largest matrix), and `vocab` gathers only the K
    // columns needed: W_U[:, ids] [d_model, K] (W_E[ids] [K, d_model], Q[:, ids]), b_U[ids] [K].
    let bU = b.w('unembed.b_U');
    const ids = v.vocab ? g.input(VOCAB_IDS, OnnxDType.INT64, ['K']) : null;
    if (ids) bU = g.op('Gather', [bU, ids], { axis: 0 });
    if (tied) {
      const t = tiedWeights(b, tied.K > 0);
      if (ids) {
        t.WE = g.op('Gather', [t.WE, ids], { axis: 0 });
        if (t.Q) t.Q = g.op('Gather', [t.Q, ids], { axis: 1 });
      }
      emitTiedLogits(g, cfg, x, t, bU, 'logits');
    } else {
      let WU = g.weight('unembed.W_U', getParam(params, 'unembed.W_U'), undefined, true);
      if (ids) WU = g.op('Gather', [WU, ids], { axis: 1 });
      // logits [batch, pos, d_vocab_out] (pos = 1 with lastPos, d_vocab_out = K with vocab) = x @ W_U + b_U
      emitLogits(g, cfg, x, WU, bU, 'logits');
    }
  } else {
    emitUnembed(b, x, 'logits', tied ? tiedWeights(b, tied.K > 0) : undefined);
  }
  return b.finish([{ name: 'logits', dims: ['batch', v.lastPos ? 1 : 'pos', v.vocab ? 'K' : cfg.d_vocab_out] }]);
}

/** A tied unembedding's factors as weight inputs of the segment (model/unembed.ts). */
function tiedWeights(b: SegmentBuilder, rank: boolean): TiedWeights {
  return {
    WE: b.w('embed.W_E'),
    scale: b.params.has(TIED_SCALE) ? b.w(TIED_SCALE) : null,
    P: rank ? b.w(TIED_P) : null,
    Q: rank ? b.w(TIED_Q) : null,
  };
}

/**
 * logits [batch, pos, d_vocab_out] = FINAL_X [batch, pos, d_model] @ W_U + b_U, with W_U compiled
 * in as an initializer: onnxruntime pre-packs it once for its GEMM kernel instead of re-packing
 * a graph input on every run (the largest GEMM of a forward: 768 x 50257 in GPT-2 small,
 * measured ~20 ms of a 64-token forward). One such session per model serves every full-logits
 * run, so the pre-packed copy exists once; lastPos / vocab runs keep W_U as a zero-copy input.
 */
export function buildUnembedGraph(cfg: HookedTransformerConfig, params: ParamSource, opts: { prepack?: boolean } = {}): SegmentGraph {
  const g = new GraphBuilder('unembed');
  const x = g.input(FINAL_X, OnnxDType.FLOAT, ['batch', 'pos', cfg.d_model]);
  // prepack (default): W_U is an initializer that onnxruntime packs once for its GEMM (faster
  // runs, but compiling GPT-2 small's costs 0.5-1.3 s); otherwise it is a weight input like the
  // blocks' weights (compiles at once, each run packs it again).
  const bU = g.weight('unembed.b_U', getParam(params, 'unembed.b_U'), undefined, true);
  if (isTiedUnembed(params) && opts.prepack === false) {
    // Tied, W_E a zero-copy input: (x·scale) W_Eᵀ + (x P) Q.
    const t = tiedUnembed(params)!;
    const asInput = (n: string): string => g.weight(n, getParam(params, n), undefined, true);
    emitTiedLogits(g, cfg, x, {
      WE: asInput('embed.W_E'),
      scale: params.has(TIED_SCALE) ? asInput(TIED_SCALE) : null,
      P: t.K > 0 ? asInput(TIED_P) : null,
      Q: t.K > 0 ? asInput(TIED_Q) : null,
    }, bU, 'logits');
  } else if (isTiedUnembed(params)) {
    // Tied and pre-packed (a small model: this session is a packed W_U-sized copy by design): the
    // W_U the factors stand for, built for onnxruntime to copy and pack, then dropped. One GEMM as
    // for an untied model; the rank-one terms would cost two more passes over the logits (GPT-2
    // small at 1x128: ~13% of the unembedding, measured).
    emitLogits(g, cfg, x, g.weight('unembed.W_U', unembedMatrix(params)), bU, 'logits');
  } else {
    const WU = g.weight('unembed.W_U', getParam(params, 'unembed.W_U'), undefined, opts.prepack === false);
    emitLogits(g, cfg, x, WU, bU, 'logits');
  }
  g.output('logits', OnnxDType.FLOAT, ['batch', 'pos', cfg.d_vocab_out]);
  return g.build();
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

/**
 * A block graph with its layer index taken out of every name (`blocks.7.attn.W_Q` ->
 * `blocks.L.attn.W_Q`, the graph named `block`). Block weights are graph inputs, so two layers
 * whose layer-free graphs serialise to the same bytes compute the same function of their inputs:
 * one onnxruntime session serves all of them, fed each layer's weights (a sweep then compiles
 * one session per distinct variant instead of one per variant and layer). Only for variants
 * whose outputs are not hook values (those keep their layer's names for the caller).
 */
export function layerFreeBlockGraph(graph: SegmentGraph, layer: number): SegmentGraph {
  const from = `blocks.${layer}.`;
  const rename = (n: string): string => (n.includes(from) ? n.split(from).join('blocks.L.') : n);
  const weightInputs = new Map<string, F32>();
  for (const [n, t] of graph.weightInputs) weightInputs.set(rename(n), t);
  return {
    ...graph,
    name: 'block',
    nodes: graph.nodes.map((n) => ({ ...n, inputs: n.inputs.map(rename), outputs: n.outputs.map(rename), ...(n.name ? { name: rename(n.name) } : {}) })),
    initializers: graph.initializers.map((t) => ({ ...t, name: rename(t.name) })),
    inputs: graph.inputs.map((i) => ({ ...i, name: rename(i.name) })),
    outputs: graph.outputs.map((o) => ({ ...o, name: rename(o.name) })),
    weightInputs,
  };
}
