/**
 * Ablation of every hook (the no-positional-embedding experiment, step 7): replace one activation by its mean over a batch
 * (or by zero) and measure the change in loss. As in the seed, every hook of the model is
 * ablated in turn except hook_pos_embed and the per-head results (hook_result), in
 * TransformerLens's hook_dict order; the mean is cache[hook].mean(0) of a reference batch
 * (by default the evaluated batch itself) and replaces the activation at every batch row.
 *
 * Each ablated run starts at the hook's layer from the cached clean residual stream.
 */
import type { HookedTransformer, Tokens } from '../model/hookedTransformer.js';
import type { HookedTransformerConfig } from '../model/config.js';
import type { HookName, OutputName } from '../hooks/hooks.js';
import { allHooks } from '../hooks/hooks.js';
import type { Intervention } from '../interventions/plan.js';
import { f32, type F32 } from '../tensor/tensor.js';
import { SweepAbortedError, type SweepOptions } from './sweep.js';

/**
 * 'next_token' is TransformerLens's lm_cross_entropy_loss (position t predicts token t+1);
 * 'previous_token' is the no-positional-embedding experiment's task (position t predicts token t-1: logits[:, 1:] against
 * tokens[:, :-1]).
 */
export type LossKind = 'next_token' | 'previous_token';

/** Mean cross-entropy of logits [batch, pos, V] for `kind`. */
export function tokenLoss(logits: F32, tokens: Tokens, kind: LossKind = 'next_token'): number {
  const [B, P, V] = logits.dims as [number, number, number];
  let total = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < P - 1; t++) {
      const [pos, target] = kind === 'next_token' ? [t, tokens[b]![t + 1]!] : [t + 1, tokens[b]![t]!];
      const row = logits.data.subarray((b * P + pos) * V, (b * P + pos + 1) * V);
      let m = -Infinity;
      for (const x of row) if (x > m) m = x;
      let z = 0;
      for (const x of row) z += Math.exp(x - m);
      total += m + Math.log(z) - row[target]!;
    }
  }
  return total / (B * (P - 1));
}

/** TransformerLens's hook_dict order (module registration order, not forward order). */
export function hookDictOrder(cfg: HookedTransformerConfig): HookName[] {
  const have = new Set<string>(allHooks(cfg));
  // Embed registers its LayerNorm (BLOOM's embed.ln) before HookedTransformer's hook_embed.
  const out: string[] = ['embed.ln.hook_scale', 'embed.ln.hook_normalized', 'hook_embed', 'hook_pos_embed'];
  for (let l = 0; l < cfg.n_layers; l++) {
    const b = `blocks.${l}.`;
    out.push(
      // TransformerBlock registers ln1, ln1_post (Gemma 2/3), ln2, ln2_post, then attn and mlp.
      ...['ln1.hook_scale', 'ln1.hook_normalized', 'ln1_post.hook_scale', 'ln1_post.hook_normalized', 'ln2.hook_scale', 'ln2.hook_normalized', 'ln2_post.hook_scale', 'ln2_post.hook_normalized', 'attn.hook_k', 'attn.hook_q', 'attn.hook_v', 'attn.hook_z', 'attn.hook_attn_scores', 'attn.hook_pattern', 'attn.hook_result', 'attn.hook_rot_k', 'attn.hook_rot_q', 'mlp.hook_pre', 'mlp.hook_pre_linear', 'mlp.hook_post', 'hook_attn_out', 'hook_mlp_out', 'hook_resid_pre', 'hook_resid_mid', 'hook_resid_post'].map((s) => b + s),
    );
  }
  out.push('ln_final.hook_scale', 'ln_final.hook_normalized');
  return out.filter((h) => have.has(h)) as HookName[];
}

export interface AblationOptions extends Pick<SweepOptions, 'signal' | 'onProgress'> {
  kind?: 'mean' | 'zero';
  /** Batch whose activations are averaged for 'mean' (the no-positional-embedding experiment uses another batch of the same task); default the evaluated tokens. */
  meanTokens?: Tokens;
  /** Hooks to ablate; default every hook except hook_pos_embed and *.hook_result (the no-positional-embedding experiment). */
  hooks?: readonly HookName[];
  loss?: LossKind;
}

export interface AblationResult {
  kind: 'mean' | 'zero';
  baseline: number;
  hooks: HookName[];
  /** Loss with each hook ablated (NaN where cancelled), aligned with `hooks`. */
  losses: number[];
}

function layerOf(h: string, cfg: HookedTransformerConfig): number {
  if (h === 'hook_embed' || h === 'hook_pos_embed' || h.startsWith('embed.ln.')) return 0;
  if (h.startsWith('ln_final.')) return cfg.n_layers;
  return Number(/^blocks\.(\d+)\./.exec(h)![1]);
}

/** Loss with every hook ablated in turn (mean over a batch, or zero), and the baseline loss. */
export async function ablateEveryHook(model: HookedTransformer, tokens: Tokens, opts: AblationOptions = {}): Promise<AblationResult> {
  const cfg = model.cfg;
  const kind = opts.kind ?? 'mean';
  const lossKind = opts.loss ?? 'next_token';
  const [, P] = model.checkTokens(tokens);
  const hooks = opts.hooks ? [...opts.hooks] : hookDictOrder(cfg).filter((h) => h !== 'hook_pos_embed' && !h.endsWith('hook_result'));
  // Residual streams entering every layer, and after the last (for ln_final hooks).
  const residNames = Array.from({ length: cfg.n_layers }, (_, l) => `blocks.${l}.hook_resid_pre` as OutputName);
  residNames.push(`blocks.${cfg.n_layers - 1}.hook_resid_post` as OutputName);
  const base = await model.run(tokens, { names: residNames });
  const baseline = tokenLoss(base.logits!, tokens, lossKind);
  let means: Map<OutputName, F32> | null = null;
  if (kind === 'mean') {
    const mt = opts.meanTokens ?? tokens;
    const [, P2] = model.checkTokens(mt);
    if (P2 !== P) throw new Error(`meanTokens have ${P2} positions but the evaluated tokens have ${P}; the mean replaces activations position by position`);
    means = (await model.run(mt, { names: hooks, noLogits: !hooks.some((h) => h.startsWith('ln_final.')) })).cache;
  }
  const losses = new Array<number>(hooks.length).fill(NaN);
  const result: AblationResult = { kind, baseline, hooks, losses };
  for (let i = 0; i < hooks.length; i++) {
    if (opts.signal?.aborted) throw new SweepAbortedError(result);
    const h = hooks[i]!;
    const l = layerOf(h, cfg);
    let iv: Intervention;
    if (kind === 'zero') {
      iv = { kind: 'zero', hook: h };
    } else {
      // mean over the batch axis: [batch, ...] -> [...]
      const t = means!.get(h)!;
      const Bm = t.dims[0]!;
      const per = t.data.length / Bm;
      const mean = new Float32Array(per);
      const acc = new Float64Array(per);
      for (let b = 0; b < Bm; b++) for (let j = 0; j < per; j++) acc[j]! += t.data[b * per + j]!;
      for (let j = 0; j < per; j++) mean[j] = acc[j]! / Bm;
      iv = { kind: 'mean', over: 'supplied', hook: h, mean: f32(t.dims.slice(1), mean) };
    }
    const start = l === 0 ? null : l === cfg.n_layers ? base.cache.get(`blocks.${cfg.n_layers - 1}.hook_resid_post` as OutputName)! : base.cache.get(`blocks.${l}.hook_resid_pre` as OutputName)!;
    const run = start === null ? await model.run(tokens, { interventions: [iv] }) : await model.run(null, { residual: start, startAtLayer: l, interventions: [iv] });
    losses[i] = tokenLoss(run.logits!, tokens, lossKind);
    opts.onProgress?.(i + 1, hooks.length);
  }
  return result;
}
