/**
 * The four TransformerLens norms on x [batch, pos, d_model], hooks [batch, pos, 1] and
 * [batch, pos, d_model]:
 *   LN / LNPre:   scale = sqrt(mean((x - mean x)^2) + eps); hook_normalized = (x - mean x) / scale;
 *                 LN then applies w and b;
 *   RMS / RMSPre: scale = sqrt(mean(x^2) + eps); hook_normalized = x / scale; RMS then multiplies by w.
 * Both hook hook_normalized BEFORE the affine, as TransformerLens 3.9's LayerNorm and RMSNorm do.
 * `plain`: the same maths without hooks.
 */
import { isPostNormArch, type HookedTransformerConfig } from '../../model/config.js';
import type { Emitter } from './emitter.js';

export function emitNorm(e: Emitter, prefix: string, x: string, plain = false, t: HookedTransformerConfig['normalization_type'] = e.cfg.normalization_type): string {
  const { g, cfg } = e;
  if (t === null) return x;
  const hook = (name: string, v: string) => (plain ? v : e.hook(`${prefix}.${name}` as never, v));
  const rms = t === 'RMS' || t === 'RMSPre';
  if (!rms && e.fusedLayerNorm) {
    // One LayerNormalization kernel; LN's affine goes inside it unless hook_normalized (the value
    // before w and b) is wanted, in which case it runs after the hook.
    const d = cfg.d_model;
    const wantScale = !plain && (e.wants?.(`${prefix}.hook_scale`) ?? true);
    const wantNormalized = !plain && (e.wants?.(`${prefix}.hook_normalized`) ?? true);
    const fusedAffine = t === 'LN' && !wantNormalized;
    const inputs = fusedAffine ? [x, e.w(`${prefix}.w`), e.w(`${prefix}.b`)] : [x, g.constF(new Array<number>(d).fill(1), [d])];
    const y = g.fresh('ln');
    const outputs = wantScale ? [y, g.fresh('ln_mean'), g.fresh('ln_invstd')] : [y];
    g.nodes.push({ op: 'LayerNormalization', inputs, outputs, attrs: { axis: { kind: 'int', v: -1 }, epsilon: { kind: 'float', v: cfg.eps } } });
    // hook_scale [batch, pos, 1] = sqrt(var + eps) = 1 / InvStdDev.
    if (wantScale) hook('hook_scale', g.op('Reciprocal', [outputs[2]!]));
    if (fusedAffine) return y;
    const normalized = hook('hook_normalized', y);
    return t === 'LN' ? g.op('Add', [g.op('Mul', [normalized, e.w(`${prefix}.w`)]), e.w(`${prefix}.b`)]) : normalized;
  }
  const xc = rms ? x : g.op('Sub', [x, g.op('ReduceMean', [x], { axes: [-1], keepdims: 1 })]);
  const ms = g.op('ReduceMean', [g.op('Mul', [xc, xc])], { axes: [-1], keepdims: 1 });
  const scale = hook('hook_scale', g.op('Sqrt', [g.op('Add', [ms, g.constF([cfg.eps])])]));
  const y = hook('hook_normalized', g.op('Div', [xc, scale]));
  if (t === 'LN') return g.op('Add', [g.op('Mul', [y, e.w(`${prefix}.w`)]), e.w(`${prefix}.b`)]);
  return t === 'RMS' ? g.op('Mul', [y, e.w(`${prefix}.w`)]) : y;
}

/**
 * The norm on a sublayer's input (`which` ln1 before attention, ln2 before the MLP): x
 * [batch, pos, d_model] normalized, or x as is in a post-norm block (OLMo-2), whose ln1 / ln2
 * normalize the sublayer's output instead (emitPostNorm).
 */
export function emitPreNorm(e: Emitter, P: string, which: 'ln1' | 'ln2', x: string, plain = false): string {
  return isPostNormArch(e.cfg) ? x : emitNorm(e, `${P}.${which}`, x, plain);
}

/**
 * The norm on a sublayer's output out [batch, pos, d_model], before hook_attn_out / hook_mlp_out
 * (`which` ln1 after attention, ln2 after the MLP):
 *  - OLMo-2/3's post-norm blocks: ln1 / ln2 themselves (their only norms; never folded);
 *  - Gemma 2/3 (use_normalization_before_and_after): a second norm, ln1_post / ln2_post, hooked
 *    as <which>_post.hook_scale / hook_normalized, always RMS with its weight whatever the block's
 *    own norms became (TransformerLens builds it as RMSNorm and fold_ln leaves it alone);
 *  - otherwise nothing.
 */
export function emitPostNorm(e: Emitter, P: string, which: 'ln1' | 'ln2', out: string, plain = false): string {
  if (isPostNormArch(e.cfg)) return emitNorm(e, `${P}.${which}`, out, plain);
  if (!e.cfg.use_normalization_before_and_after) return out;
  if (e.cfg.normalization_type !== 'RMS' && e.cfg.normalization_type !== 'RMSPre') {
    throw new Error(`use_normalization_before_and_after needs an RMS-normalized model (TransformerLens builds post-norms only as RMSNorm), got normalization_type ${JSON.stringify(e.cfg.normalization_type)}`);
  }
  return emitNorm(e, `${P}.${which}_post`, out, plain, 'RMS');
}
