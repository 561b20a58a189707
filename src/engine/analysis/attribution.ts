/**
 * Attribution patching: the gradient-based linear approximation of activation patching
 * (Nanda, "Attribution Patching", 2023). Exact patching runs the corrupted prompts once per
 * patched cell; attribution patching runs the clean prompts forward once and the corrupted prompts
 * forward + backward once, then estimates every cell at once:
 *
 *   patched_metric - corrupted_metric  ~=  sum over the cell of (clean_act - corrupted_act) * d metric / d act
 *
 * with the gradient taken on the corrupted run, and reports it normalised like the exact sweeps,
 * (patched - corrupted) / (clean - corrupted). The metric is the logit difference at the last
 * position, averaged over prompts (analysis/patching.ts's logitDiffMetric).
 *
 * Sweeps (the same cells as the exact sweeps of the contraction-circuit study):
 *   residPre / attnOut / mlpOut   [layer, pos]        sum over batch and d_model at one position
 *   heads.z / q / k / v           [layer, head_index] sum over batch, pos and d_head of one head
 *   heads.pattern                 [layer, head_index] sum over batch, query_pos and key_pos
 *   neurons                       [layer, d_mlp]      hook_post, sum over batch and pos
 *
 * Two onnxruntime sessions, built from the model's own parameters (zero-copy) and cached on the
 * patcher, serve any batch and length: the forward pass with the hooks and the metric (clean
 * run), and the same plus the gradient of the metric with respect to every hook
 * (graph/autodiff.ts; corrupted run).
 */
import { GraphBuilder } from '../graph/builder.js';
import { addGradients, inferShapes } from '../graph/autodiff.js';
import { OnnxDType } from '../graph/onnxProto.js';
import { ortF32, ortI64, type CompiledSession } from '../backends/onnx/runtime.js';
import type { HookedTransformer, Tokens } from '../model/hookedTransformer.js';
import type { HookName } from '../hooks/hooks.js';
import { isMoe } from '../model/config.js';
import { emitForward, initializerParams, packQKV } from '../training/model.js';
import type { F32 } from '../tensor/tensor.js';
import { tiedFactorsUsed } from '../model/unembed.js';

export type HeadActivation = 'z' | 'q' | 'k' | 'v' | 'pattern';

export interface AttributionResult {
  /** Mean logit difference (correct - wrong) at the last position: clean and corrupted runs. */
  cleanMetric: number;
  corruptedMetric: number;
  /** [layer, pos] */
  residPre: number[][];
  /** [layer, pos] */
  attnOut: number[][];
  /** [layer, pos]; empty rows for attention-only models. */
  mlpOut: number[][];
  /** [layer, head_index] for each head activation. */
  heads: Record<HeadActivation, number[][]>;
  /** [layer, d_mlp] (hook_post); empty rows for attention-only models. */
  neurons: number[][];
}

export interface AttributionOptions {
  signal?: AbortSignal;
}

const HEAD_ACTS: readonly HeadActivation[] = ['z', 'q', 'k', 'v', 'pattern'];
const METRIC = 'metric';
const gradName = (h: string) => `grad:${h}`;

/** The hooks whose activations and gradients the sweeps need, per layer. */
function sweepHooks(model: HookedTransformer): HookName[] {
  const out: HookName[] = [];
  for (let l = 0; l < model.cfg.n_layers; l++) {
    const b = `blocks.${l}`;
    out.push(`${b}.hook_resid_pre` as HookName, `${b}.hook_attn_out` as HookName);
    for (const a of HEAD_ACTS) out.push(`${b}.attn.hook_${a}` as HookName);
    if (!model.cfg.attn_only) out.push(`${b}.hook_mlp_out` as HookName);
    // Neurons: a mixture of experts has no layer-wide hook_post (each expert's rows are its routed tokens).
    if (!model.cfg.attn_only && !isMoe(model.cfg)) out.push(`${b}.mlp.hook_post` as HookName);
  }
  return out;
}

/** Attribution patching for one model; keeps its compiled session between calls. */
export class AttributionPatcher {
  /** Compiled graphs: the forward pass alone (clean run) and forward + backward (corrupted run). */
  private readonly sessions = new Map<'forward' | 'backward', Promise<CompiledSession>>();
  /** W_QKV / b_QKV per layer, packed once and shared by both graphs. */
  private readonly packed = new Map<number, { W: F32; b: F32 }>();
  readonly hooks: HookName[];

  constructor(readonly model: HookedTransformer) {
    // Its forward and backward graphs are the plain model's: an attached SAE would be ignored.
    if (model.attachedSaes().length > 0) throw new Error(`attribution patching runs the model without SAEs, but SAEs are attached at ${model.attachedSaes().map((s) => s.sae.cfg.hook_name_out).join(', ')}; detach them (or use exact patching)`);
    this.hooks = sweepHooks(model);
  }

  /**
   * The graph: tokens [batch, pos], last_pos [batch, 1, pos] (one-hot of the scored position),
   * answers [batch, 1, 2] (correct, wrong ids) -> metric [] and, for every sweep hook, its
   * activation (named as the hook); with `withGrads` also d metric / d activation (grad:<hook>).
   */
  private compile(kind: 'forward' | 'backward'): Promise<CompiledSession> {
    const hit = this.sessions.get(kind);
    if (hit) return hit;
    const { cfg, params } = this.model;
    const g = new GraphBuilder(`attribution_${kind}`);
    const tokens = g.input('tokens', OnnxDType.INT64, ['batch', 'pos']);
    const lastPos = g.input('last_pos', OnnxDType.FLOAT, ['batch', 1, 'pos']);
    const answers = g.input('answers', OnnxDType.INT64, ['batch', 1, 2]);
    // Weights are zero-copy inputs (the model's own arrays), with Q/K/V packed once here rather
    // than by the graph on every run.
    const { logits } = emitForward(g, cfg, initializerParams(g, params, { asInput: true }), tokens, {
      batch: 'batch', pos: 'pos', hooks: new Set(this.hooks), usePos: cfg.positional_embedding_type === 'standard', selectPositions: lastPos, tiedUnembed: tiedFactorsUsed(params),
      packedQKV: (l) => {
        let p = this.packed.get(l);
        if (!p) this.packed.set(l, (p = packQKV(params, `blocks.${l}`, cfg)));
        return { W: g.weight(`param:blocks.${l}.attn.W_QKV`, p.W, undefined, true), b: g.weight(`param:blocks.${l}.attn.b_QKV`, p.b, undefined, true) };
      },
    });
    // metric [] = mean over batch of logits[b, last, correct] - logits[b, last, wrong]
    const pair = g.op('GatherElements', [logits, answers], { axis: 2 }); // [batch, 1, 2]
    const diff = g.op('ReduceSum', [g.op('Mul', [pair, g.constF([1, -1], [2])]), g.constI64([1, 2])], { keepdims: 0 }); // [batch]
    const metric = g.op('ReduceMean', [diff], { keepdims: 0 }, METRIC);
    const shapes = inferShapes(g);
    const grads = kind === 'backward' ? addGradients(g, metric, this.hooks) : null;
    g.output(METRIC, OnnxDType.FLOAT, []);
    for (const h of this.hooks) {
      g.output(h, OnnxDType.FLOAT, shapes.shape(h));
      // An Identity, not alias(): one gradient value can serve several hooks (an Add passes its
      // gradient to both inputs), so it must not be renamed in place.
      if (grads) g.output(g.op('Identity', [grads.get(h)!], undefined, gradName(h)), OnnxDType.FLOAT, shapes.shape(h));
    }
    const p = this.model.runtime.compile(g.build(), { arena: true }); // many outputs, run per sweep: reuse buffers
    p.catch(() => this.sessions.delete(kind));
    this.sessions.set(kind, p);
    return p;
  }

  /** Compiles both sessions now (with weights as inputs, a fraction of a second for GPT-2 small). */
  async warmUp(): Promise<void> {
    await Promise.all([this.compile('forward'), this.compile('backward')]);
  }

  async run(clean: Tokens, corrupted: Tokens, answers: readonly (readonly [number, number])[], opts: AttributionOptions = {}): Promise<AttributionResult> {
    const model = this.model;
    const cfg = model.cfg;
    const [B, P] = model.checkTokens(clean);
    const [B2, P2] = model.checkTokens(corrupted);
    if (B !== B2 || P !== P2) throw new Error(`clean tokens are [${B}, ${P}] but corrupted are [${B2}, ${P2}]; they must have the same shape`);
    if (answers.length !== B) throw new Error(`answers: got ${answers.length} (correct, wrong) pairs for ${B} prompts`);
    answers.forEach(([c, w], b) => {
      for (const id of [c, w]) if (!Number.isInteger(id) || id < 0 || id >= cfg.d_vocab_out) throw new Error(`answers[${b}]: token id ${id} is out of range [0, ${cfg.d_vocab_out})`);
    });
    const [forward, backward] = await Promise.all([this.compile('forward'), this.compile('backward')]);
    opts.signal?.throwIfAborted();

    const sel = new Float32Array(B * P);
    for (let b = 0; b < B; b++) sel[b * P + P - 1] = 1;
    const ans = BigInt64Array.from(answers.flatMap(([c, w]) => [BigInt(c), BigInt(w)]));
    const feeds = (toks: Tokens) => {
      const flat = new BigInt64Array(B * P);
      toks.forEach((row, b) => row.forEach((t, p) => (flat[b * P + p] = BigInt(t))));
      return { tokens: ortI64(flat, [B, P]), last_pos: ortF32({ dims: [B, 1, P], data: sel }), answers: ortI64(ans, [B, 1, 2]) };
    };
    // Clean: activations only. Corrupted: activations and gradients.
    const cleanRun = await model.runtime.run(forward, feeds(clean), [METRIC, ...this.hooks]);
    opts.signal?.throwIfAborted();
    const corrRun = await model.runtime.run(backward, feeds(corrupted), [METRIC, ...this.hooks, ...this.hooks.map(gradName)]);
    const cleanMetric = cleanRun[METRIC]!.data[0]!;
    const corruptedMetric = corrRun[METRIC]!.data[0]!;
    const denom = cleanMetric - corruptedMetric;
    if (!(Math.abs(denom) > 0)) throw new Error(`the clean and corrupted logit differences are equal (${cleanMetric}); the normalised metric (patched - corrupted) / (clean - corrupted) is undefined`);

    const H = cfg.n_heads, dh = cfg.d_head, d = cfg.d_model, dm = cfg.d_mlp ?? 0;
    const get = (h: string) => ({ c: cleanRun[h]!, x: corrRun[h]!, g: corrRun[gradName(h)]! });
    const res: AttributionResult = {
      cleanMetric, corruptedMetric, residPre: [], attnOut: [], mlpOut: [], neurons: [],
      heads: { z: [], q: [], k: [], v: [], pattern: [] },
    };
    for (let l = 0; l < cfg.n_layers; l++) {
      const b = `blocks.${l}`;
      res.residPre.push(byPosition(get(`${b}.hook_resid_pre`), B, P, d, denom));
      res.attnOut.push(byPosition(get(`${b}.hook_attn_out`), B, P, d, denom));
      for (const a of HEAD_ACTS) {
        const t = get(`${b}.attn.hook_${a}`);
        // q/k/v/z [batch, pos, head_index, d_head]; pattern [batch, head_index, query_pos, key_pos]
        res.heads[a].push(a === 'pattern' ? byAxis(t, [B, H, P * P], denom) : byAxis(t, [B * P, H, dh], denom));
      }
      res.mlpOut.push(cfg.attn_only ? [] : byPosition(get(`${b}.hook_mlp_out`), B, P, d, denom));
      res.neurons.push(cfg.attn_only || isMoe(cfg) ? [] : byAxis(get(`${b}.mlp.hook_post`), [B * P, dm, 1], denom)); // hook_post [batch, pos, d_mlp]
    }
    return res;
  }

  async dispose(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(all.map((p) => p.then((x) => x.session.release()).catch(() => undefined)));
  }

}

interface Triple {
  c: F32;
  x: F32;
  g: F32;
}

/** [batch, pos, width] -> per position: sum over batch and width of (clean - corrupted) * grad, / denom. */
function byPosition(t: Triple, B: number, P: number, W: number, denom: number): number[] {
  const out = new Array<number>(P).fill(0);
  const { c, x, g } = t;
  for (let b = 0; b < B; b++) for (let p = 0; p < P; p++) {
    let s = 0;
    const off = (b * P + p) * W;
    for (let i = 0; i < W; i++) s += (c.data[off + i]! - x.data[off + i]!) * g.data[off + i]!;
    out[p]! += s;
  }
  return out.map((v) => v / denom);
}

/** View as [outer, K, inner] and sum (clean - corrupted) * grad over outer and inner for each k. */
function byAxis(t: Triple, [outer, K, inner]: [number, number, number], denom: number): number[] {
  const out = new Array<number>(K).fill(0);
  const { c, x, g } = t;
  for (let o = 0; o < outer; o++) for (let k = 0; k < K; k++) {
    let s = 0;
    const off = (o * K + k) * inner;
    for (let i = 0; i < inner; i++) s += (c.data[off + i]! - x.data[off + i]!) * g.data[off + i]!;
    out[k]! += s;
  }
  return out.map((v) => v / denom);
}

/** One-shot attribution patching (compiles, runs, releases). Keep an AttributionPatcher to reuse the session. */
export async function attributionPatching(model: HookedTransformer, clean: Tokens, corrupted: Tokens, answers: readonly (readonly [number, number])[], opts: AttributionOptions = {}): Promise<AttributionResult> {
  const p = new AttributionPatcher(model);
  try {
    return await p.run(clean, corrupted, answers, opts);
  } finally {
    await p.dispose();
  }
}
