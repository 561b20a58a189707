/**
 * One training step as one ONNX graph: forward, loss, backward (graph/autodiff.ts), gradient-norm
 * clipping and the AdamW update, so each step is a single onnxruntime run.
 *
 *   inputs   tokens  int64 [batch, pos]         targets int64 [batch, pos] (IGNORE = no loss)
 *            params  [n_params]  m [n_params]  v [n_params]   (flat, ParamLayout order)
 *            hyper   [4] = (1 - lr*wd, lr / (1 - beta1^t), 1 / sqrt(1 - beta2^t), lr*wd)
 *   outputs  loss [] (mean over scored tokens)   token_loss [batch, pos] (0 where unscored)
 *            pos_loss [pos] (mean over the batch)   grad_norm [] (before clipping)
 *            params_out, m_out, v_out [n_params]
 *
 * The optimizer works on one flat vector: a dozen element-wise nodes in all, instead of a dozen
 * per parameter tensor. The update is torch.optim.AdamW's (decoupled decay applied first:
 * p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)), after torch.nn.utils.clip_grad_norm_'s
 * clipping (g *= min(1, max_norm / (||g|| + 1e-6))). Scalars that change per step come in through
 * `hyper`, computed in float64 on the JS side.
 */
import { GraphBuilder } from '../graph/builder.js';
import { addGradients } from '../graph/autodiff.js';
import { OnnxDType, type OnnxGraph } from '../graph/onnxProto.js';
import type { HookedTransformerConfig } from '../model/config.js';
import { emitFlatParams, emitForward, tokenInput, type ParamLayout } from './model.js';
import { IGNORE } from './tasks.js';

export interface OptimizerSettings {
  betas: [number, number];
  eps: number;
  /** Per-parameter decay flags (layout order); all true = torch's AdamW(model.parameters()). */
  decay: boolean[];
  /** clip_grad_norm_ max norm; null = no clipping. */
  maxGradNorm: number | null;
}

export const STEP_IO = {
  tokens: 'tokens', targets: 'targets', params: 'params', m: 'm', v: 'v', hyper: 'hyper',
  loss: 'loss', tokenLoss: 'token_loss', posLoss: 'pos_loss', gradNorm: 'grad_norm',
  paramsOut: 'params_out', mOut: 'm_out', vOut: 'v_out',
} as const;

/** The per-step scalars fed as `hyper`, in float64 (torch computes them in Python floats too). */
export function stepHyper(lr: number, weightDecay: number, betas: [number, number], step: number): Float32Array {
  // step is 1-based here, as torch's state['step'] after its increment.
  const bc1 = 1 - Math.pow(betas[0], step);
  const bc2 = 1 - Math.pow(betas[1], step);
  return Float32Array.from([1 - lr * weightDecay, lr / bc1, 1 / Math.sqrt(bc2), lr * weightDecay]);
}

export function buildTrainStepGraph(cfg: HookedTransformerConfig, layout: ParamLayout, opt: OptimizerSettings, batch: number, pos: number, usePos: boolean): OnnxGraph {
  const g = new GraphBuilder('train_step');
  const N = layout.total;
  const tokens = tokenInput(g, STEP_IO.tokens, batch, pos);
  const targets = g.input(STEP_IO.targets, OnnxDType.INT64, [batch, pos]);
  const flat = g.input(STEP_IO.params, OnnxDType.FLOAT, [N]);
  const m = g.input(STEP_IO.m, OnnxDType.FLOAT, [N]);
  const v = g.input(STEP_IO.v, OnnxDType.FLOAT, [N]);
  const hyper = g.input(STEP_IO.hyper, OnnxDType.FLOAT, [4]);

  const params = emitFlatParams(g, flat, layout);
  const param = (name: string): string => {
    const p = params.get(name);
    if (!p) throw new Error(`internal: parameter ${name} is not in the training layout`);
    return p;
  };
  const { logits } = emitForward(g, cfg, param, tokens, { batch, pos, usePos });

  // Cross-entropy per token: logits [batch*pos, vocab] (class axis 1, as the op wants).
  const V = cfg.d_vocab_out;
  const flatLogits = g.op('Reshape', [logits, g.constI64([batch * pos, V])]);
  const flatTargets = g.op('Reshape', [targets, g.constI64([batch * pos])]);
  const tokLoss = g.fresh('token_loss_flat');
  g.nodes.push({ op: 'SoftmaxCrossEntropyLoss', inputs: [flatLogits, flatTargets], outputs: [tokLoss], attrs: { reduction: { kind: 'string', v: 'none' }, ignore_index: { kind: 'int', v: IGNORE } } });
  const valid = g.op('Cast', [g.op('Not', [g.op('Equal', [flatTargets, g.constI64([IGNORE], [])])])], { to: OnnxDType.FLOAT }); // [batch*pos]
  const count = g.op('Max', [g.op('ReduceSum', [valid, g.constI64([0])], { keepdims: 0 }), g.constF([1])]);
  // loss [] = sum of token losses / number of scored tokens (the original notebook's -correct_log_probs.mean()).
  const loss = g.op('Div', [g.op('ReduceSum', [tokLoss, g.constI64([0])], { keepdims: 0 }), count], undefined, STEP_IO.loss);
  const tok2 = g.op('Reshape', [tokLoss, g.constI64([batch, pos])], undefined, STEP_IO.tokenLoss);
  const posCount = g.op('Max', [g.op('ReduceSum', [g.op('Reshape', [valid, g.constI64([batch, pos])]), g.constI64([0])], { keepdims: 0 }), g.constF([1])]);
  g.op('Div', [g.op('ReduceSum', [tok2, g.constI64([0])], { keepdims: 0 }), posCount], undefined, STEP_IO.posLoss);

  const grad = addGradients(g, loss, [flat]).get(flat)!; // [n_params]

  emitAdamW(g, { flat, grad, m, v, hyper }, layout, opt);

  g.output(STEP_IO.loss, OnnxDType.FLOAT, []);
  g.output(STEP_IO.tokenLoss, OnnxDType.FLOAT, [batch, pos]);
  g.output(STEP_IO.posLoss, OnnxDType.FLOAT, [pos]);
  g.output(STEP_IO.gradNorm, OnnxDType.FLOAT, []);
  g.output(STEP_IO.paramsOut, OnnxDType.FLOAT, [N]);
  g.output(STEP_IO.mOut, OnnxDType.FLOAT, [N]);
  g.output(STEP_IO.vOut, OnnxDType.FLOAT, [N]);
  return g.build();
}

/**
 * The optimizer tail of a step graph, on one flat parameter vector: the gradient norm
 * (STEP_IO.gradNorm, before clipping), clip_grad_norm_'s clipping, and torch.optim.AdamW's update
 * into STEP_IO.paramsOut / mOut / vOut. `hyper` [4] as stepHyper gives it; `layout` places the
 * per-parameter decay flags (weight decay 0 gives plain Adam). Shared by the transformer trainer
 * and the SAE trainer (sae/train.ts).
 */
export function emitAdamW(g: GraphBuilder, io: { flat: string; grad: string; m: string; v: string; hyper: string }, layout: ParamLayout, opt: OptimizerSettings): void {
  const { flat, grad, m, v, hyper } = io;
  const N = layout.total;
  const scalar = (i: number) => g.op('Gather', [hyper, g.constI64([i], [])], { axis: 0 });
  const decayFactor = scalar(0), stepSize = scalar(1), invSqrtBc2 = scalar(2), lrWd = scalar(3);
  const norm = g.op('Sqrt', [g.op('ReduceSumSquare', [grad], { keepdims: 0 })], undefined, STEP_IO.gradNorm);
  let gc = grad;
  if (opt.maxGradNorm !== null) {
    const coef = g.op('Min', [g.op('Div', [g.constF([opt.maxGradNorm]), g.op('Add', [norm, g.constF([1e-6])])]), g.constF([1])]);
    gc = g.op('Mul', [grad, coef]);
  }
  const [b1, b2] = opt.betas;
  let p1: string;
  if (opt.decay.every((x) => x)) {
    p1 = g.op('Mul', [flat, decayFactor]);
  } else if (opt.decay.every((x) => !x)) {
    p1 = flat;
  } else {
    // mask [n_params]: 1 on decayed parameters; p - lr*wd * mask * p.
    const mask = new Float32Array(N);
    layout.specs.forEach((s, i) => {
      if (!opt.decay[i]) return;
      const n = s.dims.reduce((a, b) => a * b, 1);
      mask.fill(1, layout.offsets[i]!, layout.offsets[i]! + n);
    });
    const maskV = g.weight('decay_mask', { dtype: 'float32', dims: [N], data: mask });
    p1 = g.op('Sub', [flat, g.op('Mul', [g.op('Mul', [flat, maskV]), lrWd])]);
  }
  const m2 = g.op('Add', [g.op('Mul', [m, g.constF([b1])]), g.op('Mul', [gc, g.constF([1 - b1])])], undefined, STEP_IO.mOut);
  const v2 = g.op('Add', [g.op('Mul', [v, g.constF([b2])]), g.op('Mul', [g.op('Mul', [gc, gc]), g.constF([1 - b2])])], undefined, STEP_IO.vOut);
  const denom = g.op('Add', [g.op('Mul', [g.op('Sqrt', [v2]), invSqrtBc2]), g.constF([opt.eps])]);
  g.op('Sub', [p1, g.op('Mul', [g.op('Div', [m2, denom]), stepSize])], undefined, STEP_IO.paramsOut);
}
