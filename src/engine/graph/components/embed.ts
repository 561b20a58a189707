/**
 * Embedding and unembedding:
 *   hook_embed [batch, pos, d_model] = W_E[tokens], through BLOOM's embedding LayerNorm (embed.ln,
 *     always LN with its weights) when post_embedding_ln;
 *   hook_pos_embed [batch, pos, d_model] = W_pos[0:pos] broadcast over batch (learned positions only;
 *     rotary models add nothing here, their positions enter in attention);
 *   logits [batch, pos, d_vocab_out] = x W_U + b_U, then c·tanh(logits / c) under a final-logit softcap;
 *     with W_U tied to W_E (model/unembed.ts) x W_U = (x·scale) W_Eᵀ + (x P) Q, the first term one
 *     matrix product with transB = 1 over W_E [d_vocab, d_model] itself, so that no transposed
 *     copy of the embedding exists anywhere (onnxruntime's kernel reads B transposed in blocks).
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
export function emitUnembed(e: Emitter, x: string, out?: string, tied?: TiedWeights): string {
  if (tied) return emitTiedLogits(e.g, e.cfg, x, tied, e.w('unembed.b_U'), out);
  return emitLogits(e.g, e.cfg, x, e.w('unembed.W_U'), e.w('unembed.b_U'), out);
}

/**
 * Graph values of a tied unembedding's factors: W_E [d_vocab, d_model] (or its rows W_E[ids]
 * [K, d_model] when only some logits are wanted), scale [d_model] (null: ones), P [d_model, rank]
 * and Q [rank, d_vocab_out] (or Q[:, ids]; both null when rank is 0).
 */
export interface TiedWeights {
  WE: string;
  scale: string | null;
  P: string | null;
  Q: string | null;
}

/**
 * logits [batch, pos, V] = (x·scale) W_Eᵀ + b_U + (x P) Q, then the softcap where the model has
 * one (V is d_vocab_out, or the number of ids when W_E, Q and b_U were gathered to them). The
 * product is com.microsoft's FusedMatMul with transB = 1: onnxruntime's GEMM reads W_E [V,
 * d_model] transposed block by block (no transposed copy, not even a temporary one; the same
 * holds for ONNX Gemm, which takes 2-D operands only), and autodiff differentiates it.
 */
export function emitTiedLogits(g: GraphBuilder, cfg: HookedTransformerConfig, x: string, t: TiedWeights, bU: string, out?: string): string {
  const c = cfg.output_logits_soft_cap;
  const capped = c !== null && c > 0;
  const xs = t.scale ? g.op('Mul', [x, t.scale]) : x;
  const main = g.op('FusedMatMul', [xs, t.WE], { transA: 0, transB: 1 }, undefined, 'com.microsoft'); // [batch, pos, V]
  const rank = t.P && t.Q ? g.op('MatMul', [g.op('MatMul', [x, t.P]), t.Q]) : null; // [batch, pos, V]
  const logits = g.op('Add', rank ? [g.op('Add', [main, bU]), rank] : [main, bU], undefined, capped ? undefined : out);
  if (!capped) return logits;
  return g.op('Mul', [g.op('Tanh', [g.op('Mul', [logits, g.constF([1 / c])])]), g.constF([c])], undefined, out);
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
