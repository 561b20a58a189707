/**
 * The four TransformerLens norms on x [batch, pos, d_model], hooks [batch, pos, 1] and
 * [batch, pos, d_model]:
 *   LN / LNPre:   scale = sqrt(mean((x - mean x)^2) + eps); normalized = (x - mean x) / scale,
 *                 then LN applies w and b and hooks the result (TransformerLens's LayerNorm hooks
 *                 hook_normalized after its affine);
 *   RMS / RMSPre: scale = sqrt(mean(x^2) + eps); hook_normalized = x / scale (RMSNorm hooks it
 *                 BEFORE its weight), then RMS multiplies by w.
 * `plain`: the same maths without hooks.
 */
import type { Emitter } from './emitter.js';

export function emitNorm(e: Emitter, prefix: string, x: string, plain = false): string {
  const { g, cfg } = e;
  const t = cfg.normalization_type;
  if (t === null) return x;
  const hook = (name: string, v: string) => (plain ? v : e.hook(`${prefix}.${name}` as never, v));
  const rms = t === 'RMS' || t === 'RMSPre';
  const xc = rms ? x : g.op('Sub', [x, g.op('ReduceMean', [x], { axes: [-1], keepdims: 1 })]);
  const ms = g.op('ReduceMean', [g.op('Mul', [xc, xc])], { axes: [-1], keepdims: 1 });
  const scale = hook('hook_scale', g.op('Sqrt', [g.op('Add', [ms, g.constF([cfg.eps])])]));
  let y = g.op('Div', [xc, scale]);
  if (t === 'LN') return hook('hook_normalized', g.op('Add', [g.op('Mul', [y, e.w(`${prefix}.w`)]), e.w(`${prefix}.b`)]));
  y = hook('hook_normalized', y);
  return t === 'RMS' ? g.op('Mul', [y, e.w(`${prefix}.w`)]) : y;
}
