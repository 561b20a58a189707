/**
 * Qwen2 / Qwen2.5 and Qwen1.5 (Qwen2ForCausalLM): Llama's block and checkpoint names, with biases
 * on q_proj / k_proj / v_proj (none on o_proj or the MLP), a large rotary base (rope_theta, 10^6
 * in Qwen2.5) and grouped-query attention always stored as _W_K / _W_V (TransformerLens's Qwen2
 * branch sets n_key_value_heads unconditionally). TransformerLens prepends no BOS for this family
 * (Qwen's tokenizer has none). Its sliding-window fields (use_sliding_window, off in every
 * released checkpoint) are ignored, as TransformerLens ignores them.
 */
import { makeConfig, type HookedTransformerConfig } from '../model/config.js';
import { HfFields, mapAct, type ArchFamily, type HfConfig } from './family.js';
import { llamaWeights } from './llama.js';

function config(hf: HfConfig, modelName: string): HookedTransformerConfig {
  const f = new HfFields(hf, 'Qwen2');
  const d_model = f.num('hidden_size');
  const n_heads = f.num('num_attention_heads');
  const d_head = Math.floor(d_model / n_heads);
  return makeConfig({
    model_name: modelName,
    n_layers: f.num('num_hidden_layers'),
    d_model,
    n_heads,
    d_head,
    d_mlp: f.num('intermediate_size'),
    d_vocab: f.num('vocab_size'),
    n_ctx: f.num('max_position_embeddings'),
    eps: f.num('rms_norm_eps', 1e-6),
    act_fn: mapAct(f.str('hidden_act', 'silu'), 'Qwen2'),
    n_key_value_heads: f.num('num_key_value_heads', n_heads),
    normalization_type: 'RMS',
    positional_embedding_type: 'rotary',
    rotary_adjacent_pairs: false,
    rotary_dim: d_head,
    rotary_base: f.ropeTheta(),
    gated_mlp: true,
    tie_word_embeddings: f.bool('tie_word_embeddings', false),
    bos_token_id: f.tokenId('bos_token_id'),
    eos_token_id: f.tokenId('eos_token_id'),
    original_architecture: 'Qwen2ForCausalLM',
    default_prepend_bos: false,
  });
}

export const qwen2: ArchFamily = {
  name: 'qwen2',
  architectures: ['Qwen2ForCausalLM'],
  modelTypes: ['qwen2'],
  config,
  weights: (sd, cfg) => llamaWeights(sd, cfg, 'Qwen2', { qkvBias: true }),
};
