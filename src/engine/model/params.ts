/**
 * Model parameters under TransformerLens state-dict names, each a Float32 tensor:
 *   embed.W_E [d_vocab, d_model]            pos_embed.W_pos [n_ctx, d_model]
 *   blocks.L.ln1.w / .b [d_model]           blocks.L.ln2.w / .b [d_model]   (absent once folded: LNPre)
 *   blocks.L.attn.W_Q/W_K/W_V [head_index, d_model, d_head]   b_Q/b_K/b_V [head_index, d_head]
 *   blocks.L.attn.W_O [head_index, d_head, d_model]           b_O [d_model]
 *   blocks.L.mlp.W_in [d_model, d_mlp] b_in [d_mlp]  W_out [d_mlp, d_model] b_out [d_model]
 *   ln_final.w / .b [d_model]               unembed.W_U [d_model, d_vocab_out] b_U [d_vocab_out]
 */
import type { F32 } from '../tensor/tensor.js';
import type { HookedTransformerConfig } from './config.js';

export type Params = Map<string, F32>;

export function getParam(params: Params, name: string): F32 {
  const t = params.get(name);
  if (!t) throw new Error(`model parameter ${name} is missing`);
  return t;
}

export type Processing = 'none' | 'default' | 'default+refactor';
export const PROCESSING_MODES: readonly Processing[] = ['none', 'default', 'default+refactor'];

/** A model ready to run: config (after processing, e.g. normalization_type LNPre) and params. */
export interface LoadedModel {
  cfg: HookedTransformerConfig;
  params: Params;
  processing: Processing;
  /** Where it came from, for display: folder, HF id, or 'memory'. */
  source: string;
}
