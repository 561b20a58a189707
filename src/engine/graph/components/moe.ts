/**
 * The mixture-of-experts MLP (Mixtral, OLMoE) on its normalized input x [batch, pos, d_model] ->
 * mlp_out [batch, pos, d_model], as TransformerLens 3.9's MoE computes it, hooks included:
 *   rows xf [batch·pos, d_model] (TransformerLens flattens before routing);
 *   mlp.hook_expert_weights [batch·pos, expert] = softmax(xf W_gateᵀ) over all experts (the
 *     router's probabilities, hooked BEFORE the top-k);
 *   top-k of those probabilities: weights [batch·pos, top_k] (descending) and
 *     mlp.hook_expert_indices [batch·pos, top_k]; with norm_topk_prob (Mixtral) the k weights are
 *     divided by their sum (after the top-k, as TransformerLens and HF do), otherwise (OLMoE's
 *     released checkpoints) they stay the raw probabilities;
 *   expert e runs on its routed rows only, in the order TransformerLens's torch.where over the
 *     [top_k, batch·pos] one-hot mask gives them (every row that ranked e first, in row order,
 *     then every row that ranked it second, ...): mlp.experts.e.hook_gate = xs W_gateᵀ,
 *     hook_pre = xs W_inᵀ, hook_post = act(gate) * pre, all [routed, d_mlp]; its output
 *     post W_outᵀ [routed, d_model] times the row's routing weight is added into the row.
 *
 * The graph is sparse, like TransformerLens: each expert multiplies only its routed rows (one
 * sort of the routing per layer, then a Slice and a Gather per expert), so a forward costs top_k / num_experts of the dense MLP work, and the
 * expert hooks are exactly TransformerLens's rows, not a dense [batch·pos, d_mlp] per expert.
 * All experts' weighted outputs are scattered back with one ScatterND (reduction add), in expert
 * order, which is TransformerLens's index_add_ order. hook_expert_indices is cached as float32
 * (TransformerLens: int64) because every hook here is float32; the ids are exact, and an
 * intervention on it is cast back to int64 before the experts read it, so routing follows it.
 *
 * The weights are TransformerLens's nn.Linear layout ([d_out, d_in]), read as MatMul with a
 * Transpose (onnxruntime fuses the pair into one transposed GEMM). The float ops used (Softmax,
 * TopK, Gather along axis 0, Concat, ScatterND with add) all have autodiff rules, and the routing
 * is integer arithmetic, so the training graph builds from this same component.
 */
import { OnnxDType } from '../onnxProto.js';
import type { Emitter } from './emitter.js';
import { dimOf, hookOr } from './emitter.js';
import { isMoe } from '../../model/config.js';
import { emitAct, emitMlp } from './mlp.js';

/** The block's MLP, dense (mlp.ts) or a mixture of experts: what the block graphs call. */
export function emitFeedForward(e: Emitter, P: string, x: string, plain: boolean): string {
  return isMoe(e.cfg) ? emitMoe(e, P, x, plain) : emitMlp(e, P, x, plain);
}

export function emitMoe(e: Emitter, P: string, x: string, plain: boolean): string {
  const { g, cfg } = e;
  const D = cfg.d_model;
  const E = cfg.num_experts!;
  const K = cfg.experts_per_token!;
  const hk = (name: string, v: string) => hookOr(e, plain, `${P}.mlp.${name}`, v);
  const linear = (v: string, W: string) => g.op('MatMul', [v, g.op('Transpose', [e.w(W)], { perm: [1, 0] })]);

  const xf = g.op('Reshape', [x, g.constI64([-1, D])]); // [batch·pos, d_model]
  const probs = hk('hook_expert_weights', g.op('Softmax', [linear(xf, `${P}.mlp.W_gate.weight`)], { axis: -1 })); // [batch·pos, expert]
  const [top, idx0] = g.opN('TopK', [probs, g.constI64([K])], 2, { axis: -1, largest: 1, sorted: 1 }) as [string, string];
  // hook_expert_indices [batch·pos, top_k]: float32 in the cache, int64 for the routing below.
  const idx = plain ? idx0 : g.op('Cast', [hk('hook_expert_indices', g.op('Cast', [idx0], { to: OnnxDType.FLOAT }))], { to: OnnxDType.INT64 });
  const weights = cfg.norm_topk_prob ? g.op('Div', [top, g.op('ReduceSum', [top, g.constI64([-1])], { keepdims: 1 })]) : top;
  const weightsFlat = g.op('Reshape', [weights, g.constI64([-1])]); // [(batch·pos top_k)]

  // Routing, once per layer: every (rank, row) pair in TransformerLens's order, experts one after
  // another, found by sorting the keys expert·(top_k·rows) + rank·rows + row of the [top_k, rows]
  // layout (all distinct). Each expert's pairs are then a contiguous run [start_e, end_e) of the
  // sorted list, cut with Slice; one NonZero per expert would say the same, but onnxruntime's
  // session creation grows much faster than linearly with NonZero nodes (measured: 2000 of them
  // 23 s, against 2.5 s for as many Slice-derived sizes).
  const rowsN = dimOf(g, xf, 0); // int64 [1]: batch·pos
  const pairs = g.op('Mul', [rowsN, g.constI64([K])]); // int64 [1]: top_k·batch·pos
  const idxT = g.op('Reshape', [g.op('Transpose', [idx], { perm: [1, 0] }), g.constI64([-1])]); // [(top_k rows)]: expert of (rank, row)
  const flatPos = g.op('Range', [g.constI64([0], []), g.op('Squeeze', [pairs, g.constI64([0])]), g.constI64([1], [])]); // rank·rows + row
  const keys = g.op('Add', [g.op('Mul', [idxT, pairs]), flatPos]);
  const order = g.opN('TopK', [keys, pairs], 2, { axis: 0, largest: 0, sorted: 1 })[1]!; // [(top_k rows)], ascending keys
  const rank = g.op('Div', [order, rowsN]);
  const row = g.op('Sub', [order, g.op('Mul', [rank, rowsN])]);
  const wIdx = g.op('Add', [g.op('Mul', [row, g.constI64([K], [])]), rank]); // into weights [rows, top_k]
  // counts [expert] of routed pairs; ends = their running sum, starts = ends - counts.
  const counts = g.op('ReduceSum', [g.op('Cast', [g.op('Equal', [g.op('Unsqueeze', [idxT, g.constI64([1])]), g.constI64(Array.from({ length: E }, (_, i) => i))])], { to: OnnxDType.INT64 }), g.constI64([0])], { keepdims: 0 });
  const ends = g.op('CumSum', [counts, g.constI64([0], [])]);
  const starts = g.op('Sub', [ends, counts]);

  const rows: string[] = [];
  const outs: string[] = [];
  for (let ex = 0; ex < E; ex++) {
    const Pe = `${P}.mlp.experts.${ex}`;
    const at = (v: string) => g.op('Slice', [v, g.constI64([ex]), g.constI64([ex + 1])]);
    const [from, to] = [at(starts), at(ends)];
    const rowE = g.op('Slice', [row, from, to]); // [routed]
    const xs = g.op('Gather', [xf, rowE], { axis: 0 }); // [routed, d_model]
    const gate = hookOr(e, plain, `${Pe}.hook_gate`, linear(xs, `${Pe}.W_gate.weight`));
    const pre = hookOr(e, plain, `${Pe}.hook_pre`, linear(xs, `${Pe}.W_in.weight`));
    const post = hookOr(e, plain, `${Pe}.hook_post`, g.op('Mul', [emitAct(e, gate), pre]));
    const w = g.op('Gather', [weightsFlat, g.op('Slice', [wIdx, from, to])], { axis: 0 }); // [routed]
    outs.push(g.op('Mul', [linear(post, `${Pe}.W_out.weight`), g.op('Unsqueeze', [w, g.constI64([1])])])); // [routed, d_model]
    rows.push(rowE);
  }
  // One scatter-add of every expert's rows, expert by expert (TransformerLens's index_add_ order).
  const allRows = g.op('Unsqueeze', [g.op('Concat', rows, { axis: 0 }), g.constI64([1])]); // [(top_k rows), 1]
  const allOuts = g.op('Concat', outs, { axis: 0 }); // [(top_k rows), d_model]
  const zeros = g.op('ConstantOfShape', [g.op('Shape', [xf])]); // float32 zeros [batch·pos, d_model]
  const out = g.op('ScatterND', [zeros, allRows, allOuts], { reduction: 'add' });
  return g.op('Reshape', [out, g.op('Shape', [x])]);
}
