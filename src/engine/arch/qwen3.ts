/**
 * Qwen3 (Qwen3ForCausalLM): Llama's block and checkpoint names plus an RMSNorm over each query
 * and key head (self_attn.q_norm / k_norm, gains [head_dim] shared by all heads) between the
 * projections and rotary; head_dim from the config (Qwen3 sets it apart from hidden_size /
 * num_attention_heads); no q/k/v biases (attention_bias is false in every release, and
 * TransformerLens's Qwen3 conversion fills zeros); n_ctx capped at 2048 and no BOS, as
 * TransformerLens does. GQA is used only when the head counts differ.
 */
import { makeConfig, type HookedTransformerConfig } from '../model/config.js';
import { HfFields, mapAct, type ArchFamily, type HfConfig } from './family.js';
import { llamaWeights } from './llama.js';

function config(hf: HfConfig, modelName: string): HookedTransformerConfig {
  const f = new HfFields(hf, 'Qwen3');
  const d_model = f.num('hidden_size');
  const n_heads = f.num('num_attention_heads');
  const headDim = f.optNum('head_dim');
  const d_head = headDim !== null && headDim > 0 ? headDim : Math.floor(d_model / n_heads);
  const kv = f.num('num_key_value_heads', n_heads);
  return makeConfig({
    model_name: modelName,
    n_layers: f.num('num_hidden_layers'),
    d_model,
    n_heads,
    d_head,
    d_mlp: f.num('intermediate_size'),
    d_vocab: f.num('vocab_size'),
    n_ctx: 2048,
    eps: f.num('rms_norm_eps', 1e-6),
    act_fn: mapAct(f.str('hidden_act', 'silu'), 'Qwen3'),
    n_key_value_heads: kv !== n_heads ? kv : null,
    normalization_type: 'RMS',
    positional_embedding_type: 'rotary',
    rotary_adjacent_pairs: false,
    rotary_dim: d_head,
    rotary_base: f.ropeTheta(),
    gated_mlp: true,
    use_qk_norm: true,
    tie_word_embeddings: f.bool('tie_word_embeddings', false),
    bos_token_id: f.tokenId('bos_token_id'),
    eos_token_id: f.tokenId('eos_token_id'),
    original_architecture: 'Qwen3ForCausalLM',
    default_prepend_bos: false,
  });
}

export const qwen3: ArchFamily = {
  name: 'qwen3',
  architectures: ['Qwen3ForCausalLM'],
  modelTypes: ['qwen3'],
  config,
  weights: (sd, cfg) => llamaWeights(sd, cfg, 'Qwen3', { qkNorm: true }),
};
