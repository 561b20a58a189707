/**
 * Embedding and unembedding:
 *   hook_embed [batch, pos, d_model] = W_E[tokens], through BLOOM's embedding LayerNorm (embed.ln,
 *     always LN with its weights) when post_embedding_ln;
 *   hook_pos_embed [batch, pos, d_model] = W_pos[0:pos] broadcast over batch (learned positions only;
 *     rotary models add nothing here, their positions enter in attention);
 *   logits [batch, pos, d_vocab_out] = x W_U + b_U, then c·tanh(logits / c) under a final-logit softcap.
 */
import type { HookedTransformerConfig } from '../../model/config.js';
import type { GraphBuilder } from '../builder.js';
import type { Emitter } from './emitter.js';
import { emitNorm } from './norm.js';

/** tokens [batch, pos] (int ids) -> the residual stream [batch, pos, d_model]. `pos`: a fixed length, else read from tokens. */
export function emitEmbed(e: Emitter, tokens: string, opts: { usePos: boolean; pos?: number }): string {
  const g = e.g;
  const gathered = g.op('Gather', [e.w('embed.W_E'), tokens], { axis: 0 });
  const embed = e.hook('hook_embed', e.cfg.post_embedding_ln ? emitNorm(e, 'embed.ln', gathered, false, 'LN') : gathered);
  if (!opts.usePos) return embed;
  const end = opts.pos !== undefined ? g.constI64([opts.pos]) : g.op('Slice', [g.op('Shape', [tokens]), g.constI64([1]), g.constI64([2])]);
  const wpos = g.op('Slice', [e.w('pos_embed.W_pos'), g.constI64([0]), end, g.constI64([0])]); // [pos, d_model]
  // The hook needs the batch axis; when nobody reads it the Add broadcasts instead.
  const posEmbed = (e.wants?.('hook_pos_embed') ?? true) ? e.hook('hook_pos_embed', g.op('Expand', [wpos, g.op('Shape', [embed])])) : wpos;
  return g.op('Add', [embed, posEmbed]);
}

/** x [batch, pos, d_model] -> logits [batch, pos, d_vocab_out] = x W_U + b_U (softcapped where the model says). */
export function emitUnembed(e: Emitter, x: string, out?: string): string {
  return emitLogits(e.g, e.cfg, x, e.w('unembed.W_U'), e.w('unembed.b_U'), out);
}

/**
 * logits = x W_U + b_U, then Gemma 2's final-logit softcap c·tanh(logits / c) with
 * c = output_logits_soft_cap (HookedTransformer.forward applies it after the unembedding).
 * `out` names the result.
 */
export function emitLogits(g: GraphBuilder, cfg: HookedTransformerConfig, x: string, WU: string, bU: string, out?: string): string {
  const c = cfg.output_logits_soft_cap;
  const capped = c !== null && c > 0;
  const logits = g.op('Add', [g.op('MatMul', [x, WU]), bU], undefined, capped ? undefined : out);
  if (!capped) return logits;
  return g.op('Mul', [g.op('Tanh', [g.op('Mul', [logits, g.constF([1 / c])])]), g.constF([c])], undefined, out);
}
