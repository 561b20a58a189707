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

/**
 * A layer's per-head attention weight with n_heads heads, as TransformerLens's W_K / W_V / b_K /
 * b_V properties give it: under grouped-query attention the stored _W_K [kv_head, d_model, d_head]
 * is repeated so that query head h gets key/value head floor(h / (n_heads / kv_head)).
 */
export function headParam(params: Params, cfg: Pick<HookedTransformerConfig, 'n_heads' | 'n_key_value_heads'>, layer: number, name: 'W_Q' | 'W_K' | 'W_V' | 'W_O' | 'b_Q' | 'b_K' | 'b_V'): F32 {
  const kv = cfg.n_key_value_heads;
  if (kv === null || !/^[Wb]_[KV]$/.test(name)) return getParam(params, `blocks.${layer}.attn.${name}`);
  const t = getParam(params, `blocks.${layer}.attn._${name}`);
  const per = t.data.length / kv;
  const group = cfg.n_heads / kv;
  const out = new Float32Array(per * cfg.n_heads);
  for (let h = 0; h < cfg.n_heads; h++) out.set(t.data.subarray(Math.floor(h / group) * per, (Math.floor(h / group) + 1) * per), h * per);
  return { ...t, dims: [cfg.n_heads, ...t.dims.slice(1)], data: out };
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
