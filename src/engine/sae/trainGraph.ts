/**
 * One SAE training step as one ONNX graph (as the transformer trainer's stepGraph.ts): encoder,
 * activation, decoder, SAELens's training loss, its gradient (graph/autodiff.ts), clipping and
 * the Adam update on one flat parameter vector, so each step is a single onnxruntime run.
 *
 *   inputs   x [batch, d_in]                 activations of the model's hook (a shuffled batch)
 *            params, m, v [n_params]         flat, layout W_enc, b_enc, W_dec, b_dec
 *            hyper [4]                       as stepHyper (weight decay 0: Adam, as SAELens)
 *            coef [1]                        standard: the L1 coefficient of this step (after its
 *                                            warm-up); topk: aux_loss_coefficient x min(dead / k_aux, 1)
 *            dead [d_sae]                    topk: 1 for dead features (the auxiliary loss's latents)
 *            k_aux int64 [1]                 topk: how many dead latents the auxiliary loss uses (>= 1)
 *   outputs  loss [] = mse_loss + aux_loss    mse_loss [] = Σ_d (x̂ - x)² averaged over the batch
 *            aux_loss []                      standard: coef · mean_b Σ_f acts·‖W_dec[f]‖;
 *                                             topk: coef · mean_b Σ_d (ê - (x - x̂))² (ê from the dead latents)
 *            fired [d_sae]                    how many of the batch's rows each feature fired on
 *            sse [], sst []                   Σ (x̂ - x)², Σ (x - mean_batch(x))² (explained variance)
 *            grad_norm [], params_out, m_out, v_out
 *
 * Standard (SAELens's StandardTrainingSAE): acts = relu((x - b_dec) W_enc + b_enc),
 * x̂ = acts W_dec + b_dec, L1 penalty on acts weighted by the decoder rows' norms (so shrinking
 * W_dec cannot dodge it). TopK (TopKTrainingSAE with rescale_acts_by_decoder_norm): the k largest
 * of pre · ‖W_dec[f]‖ are kept (relu'd), and decoded through W_dec / ‖W_dec[f]‖, i.e. as if the
 * decoder rows had unit norm; saving folds the norms into the weights (train.ts), as SAELens
 * does. Since relu(pre·n)/n = relu(pre) for n > 0, the reconstruction is relu(pre) on the kept
 * features times W_dec, with the norms only choosing which features are kept; TopK's choice is
 * not differentiated (its mask is a constant of the step), as torch does not differentiate the
 * indices of torch.topk. The auxiliary loss (EleutherAI's AuxK, as SAELens computes it) lets the
 * k_aux largest dead latents reconstruct the main reconstruction's residual, detached.
 */
import { GraphBuilder } from '../graph/builder.js';
import { addGradients } from '../graph/autodiff.js';
import { OnnxDType, type OnnxGraph } from '../graph/onnxProto.js';
import { emitFlatParams, makeLayout, type ParamLayout } from '../training/model.js';
import { emitAdamW, STEP_IO, type OptimizerSettings } from '../training/stepGraph.js';

export type SaeTrainArchitecture = 'standard' | 'topk';

export interface SaeGraphSpec {
  architecture: SaeTrainArchitecture;
  d_in: number;
  d_sae: number;
  /** TopK's k. */
  k: number;
  apply_b_dec_to_input: boolean;
}

export const SAE_STEP_IO = {
  x: 'x', coef: 'coef', dead: 'dead', kAux: 'k_aux',
  mse: 'mse_loss', aux: 'aux_loss', fired: 'fired', sse: 'sse', sst: 'sst',
} as const;

/** The flat vector's parameters, in SAELens's state-dict names and shapes. */
export function saeLayout(dIn: number, dSae: number): ParamLayout {
  return makeLayout([
    { name: 'W_enc', dims: [dIn, dSae], axes: ['d_in', 'd_sae'], isMatrix: true },
    { name: 'b_enc', dims: [dSae], axes: ['d_sae'], isMatrix: false },
    { name: 'W_dec', dims: [dSae, dIn], axes: ['d_sae', 'd_in'], isMatrix: true },
    { name: 'b_dec', dims: [dIn], axes: ['d_in'], isMatrix: false },
  ] as ParamLayout['specs']);
}

export function buildSaeStepGraph(spec: SaeGraphSpec, opt: Omit<OptimizerSettings, 'decay'>, batch: number): OnnxGraph {
  const { d_in: D, d_sae: S } = spec;
  const layout = saeLayout(D, S);
  const g = new GraphBuilder('sae_train_step');
  const x = g.input(SAE_STEP_IO.x, OnnxDType.FLOAT, [batch, D]);
  const flat = g.input(STEP_IO.params, OnnxDType.FLOAT, [layout.total]);
  const m = g.input(STEP_IO.m, OnnxDType.FLOAT, [layout.total]);
  const v = g.input(STEP_IO.v, OnnxDType.FLOAT, [layout.total]);
  const hyper = g.input(STEP_IO.hyper, OnnxDType.FLOAT, [4]);
  const coef = g.input(SAE_STEP_IO.coef, OnnxDType.FLOAT, [1]);
  const topk = spec.architecture === 'topk';
  const dead = topk ? g.input(SAE_STEP_IO.dead, OnnxDType.FLOAT, [S]) : '';
  const kAux = topk ? g.input(SAE_STEP_IO.kAux, OnnxDType.INT64, [1]) : '';

  // Float zeros / ones shaped like a value (constants of the step: no gradient flows through them).
  const zerosOf = (t: string) => g.op('ConstantOfShape', [g.op('Shape', [t])]);
  const onesOf = (t: string) => g.op('Add', [zerosOf(t), g.constF([1])]);
  const p = emitFlatParams(g, flat, layout);
  const W_enc = p.get('W_enc')!, b_enc = p.get('b_enc')!, W_dec = p.get('W_dec')!, b_dec = p.get('b_dec')!;
  const xin = spec.apply_b_dec_to_input ? g.op('Sub', [x, b_dec]) : x; // [batch, d_in]
  const pre = g.op('Add', [g.op('MatMul', [xin, W_enc]), b_enc]); // [batch, d_sae]
  // ‖W_dec[f]‖ [d_sae]
  const decNorm = g.op('Sqrt', [g.op('ReduceSumSquare', [W_dec], { axes: [1], keepdims: 0 })]);
  // Which entries are computed: 1 on the kept features (topk) or every feature (standard); [batch, d_sae].
  let acts: string;
  if (topk) {
    const scaled = g.op('Mul', [pre, decNorm]);
    const [, idx] = g.opN('TopK', [scaled, g.constI64([spec.k])], 2, { axis: -1, largest: 1, sorted: 0 });
    const zeros = zerosOf(pre);
    const ones = onesOf(idx!);
    const keep = g.op('ScatterElements', [zeros, idx!, ones], { axis: 1 }); // [batch, d_sae], 0/1
    acts = g.op('Mul', [g.op('Relu', [pre]), keep]); // = topk acts / ‖W_dec[f]‖
  } else {
    acts = g.op('Relu', [pre]);
  }
  const recon = g.op('Add', [g.op('MatMul', [acts, W_dec]), b_dec]); // [batch, d_in]
  const diff = g.op('Sub', [recon, x]);
  const sse = g.op('ReduceSumSquare', [diff], { keepdims: 0 }, SAE_STEP_IO.sse);
  const mse = g.op('Div', [sse, g.constF([batch])], undefined, SAE_STEP_IO.mse);
  const centred = g.op('Sub', [x, g.op('ReduceMean', [x], { axes: [0], keepdims: 1 })]);
  g.op('ReduceSumSquare', [centred], { keepdims: 0 }, SAE_STEP_IO.sst);
  const firedMask = g.op('Cast', [g.op('Greater', [acts, g.constF([0])])], { to: OnnxDType.FLOAT });
  g.op('ReduceSum', [firedMask, g.constI64([0])], { keepdims: 0 }, SAE_STEP_IO.fired);

  let aux: string;
  const detach: string[] = [];
  if (topk) {
    // The dead latents' pre-activations (others -inf), their k_aux largest, reconstructing the residual.
    const scaled = g.op('Mul', [pre, decNorm]);
    const isDead = g.op('Greater', [dead, g.constF([0.5])]);
    const masked = g.op('Where', [isDead, scaled, g.constF([-Infinity])]);
    const [, idxAux] = g.opN('TopK', [masked, kAux], 2, { axis: -1, largest: 1, sorted: 0 });
    const zeros = zerosOf(pre);
    const ones = onesOf(idxAux!);
    const keepAux = g.op('ScatterElements', [zeros, idxAux!, ones], { axis: 1 });
    // SAELens keeps the raw (scaled) values, negative ones too, and decodes through W_dec / norm: pre on those latents.
    const auxRecon = g.op('MatMul', [g.op('Mul', [pre, keepAux]), W_dec]);
    const residual = g.op('Identity', [g.op('Sub', [x, recon])]);
    detach.push(residual);
    const auxSse = g.op('ReduceSumSquare', [g.op('Sub', [auxRecon, residual])], { keepdims: 0 });
    aux = g.op('Mul', [g.op('Div', [auxSse, g.constF([batch])]), g.op('Squeeze', [coef, g.constI64([0])])], undefined, SAE_STEP_IO.aux);
  } else {
    // Σ_f acts·‖W_dec[f]‖ per row (acts >= 0), averaged over the batch, times the coefficient.
    const l1 = g.op('ReduceMean', [g.op('MatMul', [acts, g.op('Unsqueeze', [decNorm, g.constI64([1])])])], { keepdims: 0 });
    aux = g.op('Mul', [l1, g.op('Squeeze', [coef, g.constI64([0])])], undefined, SAE_STEP_IO.aux);
  }
  const loss = g.op('Add', [mse, aux], undefined, STEP_IO.loss);
  const grad = addGradients(g, loss, [flat], { detach }).get(flat)!; // [n_params]
  emitAdamW(g, { flat, grad, m, v, hyper }, layout, { ...opt, decay: layout.specs.map(() => false) });

  g.output(STEP_IO.loss, OnnxDType.FLOAT, []);
  g.output(SAE_STEP_IO.mse, OnnxDType.FLOAT, []);
  g.output(SAE_STEP_IO.aux, OnnxDType.FLOAT, []);
  g.output(SAE_STEP_IO.fired, OnnxDType.FLOAT, [S]);
  g.output(SAE_STEP_IO.sse, OnnxDType.FLOAT, []);
  g.output(SAE_STEP_IO.sst, OnnxDType.FLOAT, []);
  g.output(STEP_IO.gradNorm, OnnxDType.FLOAT, []);
  g.output(STEP_IO.paramsOut, OnnxDType.FLOAT, [layout.total]);
  g.output(STEP_IO.mOut, OnnxDType.FLOAT, [layout.total]);
  g.output(STEP_IO.vOut, OnnxDType.FLOAT, [layout.total]);
  return g.build();
}
