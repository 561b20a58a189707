/**
 * One chunk of a feature-statistics pass, reduced inside onnxruntime: the SAE's encoder on the
 * input hook's value, then per feature what a dashboard needs from the chunk's positions.
 * Fetching the activations themselves ([batch, pos, d_sae]: 100 MB for 8 x 128 tokens of a
 * 24576-feature SAE) and walking every one of them in JavaScript cost as much as the forward.
 *
 *   x [batch, pos, d_in]      the input hook's value (no decoder: statistics need only the features)
 *   acts [batch, pos, d_sae]  emitSaeEncoder (every architecture's activations are >= 0)
 *   flat [n, d_sae]           n = batch * pos; position i = b * pos + p
 *   count [d_sae]             positions with acts > 0 (float32: exact below 2^24)
 *   sum [d_sae]               sum of acts, float64 (the chunks' sums are added in float64 too)
 *   cand_v [m], cand_i [2, m] the candidates for the top-context lists: every (i, f) with
 *                             acts > 0 and acts >= floor[f], row-major (i, then f) as a loop
 *                             over the activations would visit them; floor [d_sae] is fed per
 *                             chunk (each list's smallest activation once full, else 0), so after
 *                             the first chunks only a few positions per feature come back
 *   keep [batch, pos, n_keep] the activations of chosen features (their histograms)
 *   acts                      only with `withActs` (tests compare the reductions with it)
 */
import { GraphBuilder } from '../graph/builder.js';
import { OnnxDType } from '../graph/onnxProto.js';
import { emitSaeEncoder, saeWeightNames, type SaeSlot } from './graph.js';
import type { Sae } from './sae.js';

export const STATS_X = 'x';
/** ONNX TensorProto.DOUBLE (OnnxDType lists the types the model graphs use; only these sums are float64). */
const DOUBLE = 11 as OnnxDType;
export const STATS_FLOOR = 'floor';

export interface StatsGraphOptions {
  /** Features whose every activation is returned as `keep`. */
  keep: readonly number[];
  /** Also return the activations ([batch, pos, d_sae]). */
  withActs?: boolean;
}

export function buildSaeStatsGraph(slot: SaeSlot, sae: Sae, opts: StatsGraphOptions): ReturnType<GraphBuilder['build']> {
  const g = new GraphBuilder(`sae_stats_${slot.id}`);
  const D = slot.d_sae;
  const x = g.input(STATS_X, OnnxDType.FLOAT, ['batch', 'pos', slot.d_in]);
  const floor = g.input(STATS_FLOOR, OnnxDType.FLOAT, [D]);
  const w = saeWeightNames(g, slot, sae);
  const { post } = emitSaeEncoder(g, w, slot, x, (_s, v) => v);
  const flat = g.op('Reshape', [post, g.constI64([-1, D])]);
  const axis0 = g.constI64([0]);
  const fires = g.op('Greater', [flat, g.constF([0])]);
  g.op('ReduceSum', [g.op('Cast', [fires], { to: OnnxDType.FLOAT }), axis0], { keepdims: 0 }, 'count');
  g.op('ReduceSum', [g.op('Cast', [flat], { to: DOUBLE }), axis0], { keepdims: 0 }, 'sum');
  const nz = g.op('NonZero', [g.op('And', [fires, g.op('GreaterOrEqual', [flat, floor])])]);
  g.op('GatherND', [flat, g.op('Transpose', [nz], { perm: [1, 0] })], undefined, 'cand_v');
  g.op('Cast', [nz], { to: OnnxDType.FLOAT }, 'cand_i');
  g.output('count', OnnxDType.FLOAT, [D]);
  g.output('sum', DOUBLE, [D]);
  g.output('cand_v', OnnxDType.FLOAT, ['m']);
  g.output('cand_i', OnnxDType.FLOAT, [2, 'm']);
  if (opts.keep.length > 0) {
    g.op('Gather', [post, g.constI64([...opts.keep])], { axis: 2 }, 'keep');
    g.output('keep', OnnxDType.FLOAT, ['batch', 'pos', opts.keep.length]);
  }
  if (opts.withActs) {
    g.alias(post, 'acts');
    g.output('acts', OnnxDType.FLOAT, ['batch', 'pos', D]);
  }
  return g.build();
}
