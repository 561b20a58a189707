/**
 * OLMoE (OlmoeForCausalLM): a pre-norm decoder (RMSNorm) whose queries and keys pass an RMSNorm
 * over the whole projection (attn.q_norm.w [(head_index d_head)], attn.k_norm.w
 * [(kv_head d_head)], as OLMo-2's), then q, k and v are clamped to ±clip_qkv when config.json sets
 * it; rotary in halves; no biases; grouped-query attention always stored as _W_K / _W_V
 * (TransformerLens's OLMoE branch sets n_key_value_heads unconditionally); a sparse
 * mixture-of-experts MLP (graph/components/moe.ts) choosing num_experts_per_tok of num_experts
 * gated SiLU experts, their router probabilities renormalized only when norm_topk_prob says so
 * (false in the released OLMoE-1B-7B).
 */
import { makeConfig, type HookedTransformerConfig } from '../model/config.js';
import { convertWeights, copyRule, type StateDict } from '../model/hf.js';
import type { Params } from '../model/params.js';
import { HfFields, mapAct, type ArchFamily, type HfConfig } from './family.js';
import { attentionRules, checkHeadDim, expertRules } from './mixtral.js';

function config(hf: HfConfig, modelName: string): HookedTransformerConfig {
  const f = new HfFields(hf, 'OLMoE');
  const d_model = f.num('hidden_size');
  const n_heads = f.num('num_attention_heads');
  const d_head = checkHeadDim(f, 'OLMoE');
  if (f.bool('attention_bias', false)) {
    throw new Error('config.json field "attention_bias" is true, but TransformerLens 3.9\'s OLMoE conversion reads no attention biases (it fills zeros); MechLens cannot match TransformerLens on this checkpoint');
  }
  return makeConfig({
    model_name: modelName,
    n_layers: f.num('num_hidden_layers'),
    d_model,
    n_heads,
    d_head,
    d_mlp: f.num('intermediate_size'),
    d_vocab: f.num('vocab_size'),
    n_ctx: f.num('max_position_embeddings'),
    eps: f.num('rms_norm_eps', 1e-5),
    act_fn: mapAct(f.str('hidden_act', 'silu'), 'OLMoE'),
    n_key_value_heads: f.num('num_key_value_heads', n_heads),
    normalization_type: 'RMS',
    positional_embedding_type: 'rotary',
    rotary_adjacent_pairs: false,
    rotary_dim: d_head,
    rotary_base: f.ropeTheta(),
    gated_mlp: true,
    num_experts: f.num('num_experts'),
    experts_per_token: f.num('num_experts_per_tok'),
    norm_topk_prob: f.bool('norm_topk_prob', false),
    clip_qkv: f.optNum('clip_qkv'),
    tie_word_embeddings: f.bool('tie_word_embeddings', false),
    bos_token_id: f.tokenId('bos_token_id'),
    eos_token_id: f.tokenId('eos_token_id'),
    original_architecture: 'OlmoeForCausalLM',
  });
}

/** Llama's names for attention and norms, OLMo's whole-projection q/k norms, experts under `mlp`. */
function weights(sd: StateDict, cfg: HookedTransformerConfig): Params {
  const { n_heads: H, d_head: E } = cfg;
  const KV = cfg.n_key_value_heads ?? H;
  const r = attentionRules(sd, cfg);
  for (let l = 0; l < cfg.n_layers; l++) {
    const h = `model.layers.${l}.`;
    r.push(
      copyRule(`blocks.${l}.attn.q_norm.w`, `${h}self_attn.q_norm.weight`, [H * E]),
      copyRule(`blocks.${l}.attn.k_norm.w`, `${h}self_attn.k_norm.weight`, [KV * E]),
      ...expertRules(sd, cfg, l, `${h}mlp`, { gate: 'gate_proj', up: 'up_proj', down: 'down_proj' }),
    );
  }
  return convertWeights(sd, cfg, r, 'OLMoE', `model.layers.${cfg.n_layers}.input_layernorm.weight`);
}

export const olmoe: ArchFamily = {
  name: 'olmoe',
  architectures: ['OlmoeForCausalLM'],
  modelTypes: ['olmoe'],
  config,
  weights,
};
