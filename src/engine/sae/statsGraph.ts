/**
 * The graph behind a feature-statistics pass: the SAE's encoder alone (no decoder, no error
 * term) on the input hook's value at n positions (any rows, flattened).
 *
 *   x [n, d_in]       the input hook's value
 *   acts [n, d_sae]   emitSaeEncoder (every architecture's activations are >= 0)
 *
 * The 2-D input matters for speed: onnxruntime then fuses the encoder's MatMul, bias Add and
 * ReLU into one Gemm whose epilogue adds the bias and clamps (on [batch, pos, d_in] the Add and
 * the ReLU are separate passes over the [n, d_sae] activations; ~12% of the encoder's CPU time
 * for 8 x 128 tokens of a 24576-feature SAE, measured).
 *
 * The activations come back whole and featureStats reduces them in JavaScript: one sequential
 * walk over [n, d_sae] costs less than the reductions onnxruntime offers (each a separate pass
 * that allocates its own [n, d_sae] output; see featureStats for the measurements).
 */
import { GraphBuilder } from '../graph/builder.js';
import { OnnxDType } from '../graph/onnxProto.js';
import { emitSaeEncoder, saeWeightNames, type SaeSlot } from './graph.js';
import type { Sae } from './sae.js';

export const STATS_X = 'x';
export const STATS_ACTS = 'acts';

export function buildSaeActsGraph(slot: SaeSlot, sae: Sae): ReturnType<GraphBuilder['build']> {
  const g = new GraphBuilder(`sae_acts_${slot.id}`);
  const x = g.input(STATS_X, OnnxDType.FLOAT, ['n', slot.d_in]);
  const w = saeWeightNames(g, slot, sae);
  const { post } = emitSaeEncoder(g, w, slot, x, (_s, v) => v);
  g.alias(post, STATS_ACTS);
  g.output(STATS_ACTS, OnnxDType.FLOAT, ['n', slot.d_sae]);
  return g.build();
}
