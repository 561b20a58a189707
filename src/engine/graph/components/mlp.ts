/**
 * The MLP on its normalized input x [batch, pos, d_model] -> mlp_out [batch, pos, d_model]
 * (before the residual add; the caller hooks it as hook_mlp_out).
 *   plain: hook_pre = x W_in + b_in; hook_post = act(pre)
 *   gated: hook_pre = x W_gate; hook_pre_linear = x W_in; hook_post = act(pre) * pre_linear + b_in
 *          (TransformerLens's GatedMLP)
 * All [batch, pos, d_mlp]; out = post W_out + b_out.
 */
import type { Emitter } from './emitter.js';
import { hookOr } from './emitter.js';

/**
 * The activation. GELUs use onnxruntime's fused contrib kernels (com.microsoft FastGelu is
 * exactly gelu_new's tanh form; Gelu is the erf form): the same numbers as the element-wise
 * formula, but one vectorised pass, and it stays fast when hook_pre is also a graph output
 * (which otherwise blocks onnxruntime's own fusion and costs ~4 ms per GPT-2-small block).
 * SiLU is x · sigmoid(x).
 */
export function emitAct(e: Emitter, x: string): string {
  const g = e.g;
  switch (e.cfg.act_fn) {
    case 'relu':
      return g.op('Relu', [x]);
    case 'gelu':
      return g.op('Gelu', [x], undefined, undefined, 'com.microsoft');
    case 'silu':
      return g.op('Mul', [x, g.op('Sigmoid', [x])]);
    case 'gelu_new':
    case 'gelu_fast':
    case 'gelu_pytorch_tanh':
    case 'solu_ln':
      return g.op('FastGelu', [x], undefined, undefined, 'com.microsoft');
  }
}

export function emitMlp(e: Emitter, P: string, x: string, plain: boolean): string {
  const g = e.g;
  const hk = (name: string, v: string) => hookOr(e, plain, `${P}.${name}`, v);
  let post: string;
  if (e.cfg.gated_mlp) {
    const pre = hk('mlp.hook_pre', g.op('MatMul', [x, e.w(`${P}.mlp.W_gate`)]));
    const preLinear = hk('mlp.hook_pre_linear', g.op('MatMul', [x, e.w(`${P}.mlp.W_in`)]));
    post = hk('mlp.hook_post', g.op('Add', [g.op('Mul', [emitAct(e, pre), preLinear]), e.w(`${P}.mlp.b_in`)]));
  } else {
    const pre = hk('mlp.hook_pre', g.op('Add', [g.op('MatMul', [x, e.w(`${P}.mlp.W_in`)]), e.w(`${P}.mlp.b_in`)]));
    post = hk('mlp.hook_post', emitAct(e, pre));
  }
  return g.op('Add', [g.op('MatMul', [post, e.w(`${P}.mlp.W_out`)]), e.w(`${P}.mlp.b_out`)]);
}
