/**
 * Mistral (MistralForCausalLM): Llama's blocks and checkpoint names, plus sliding-window
 * attention (every layer local, window_size = sliding_window) and grouped-query attention always
 * stored as _W_K/_W_V (TransformerLens's Mistral branch sets n_key_value_heads unconditionally).
 * head_dim may differ from hidden_size / num_attention_heads; n_ctx is capped at 2048 as
 * TransformerLens does.
 */
import { makeConfig, type HookedTransformerConfig } from '../model/config.js';
import { HfFields, mapAct, type ArchFamily, type HfConfig } from './family.js';
import { llamaWeights } from './llama.js';

function config(hf: HfConfig, modelName: string): HookedTransformerConfig {
  const f = new HfFields(hf, 'Mistral');
  const d_model = f.num('hidden_size');
  const n_heads = f.num('num_attention_heads');
  const n_layers = f.num('num_hidden_layers');
  const headDim = f.optNum('head_dim');
  const window = f.optNum('sliding_window');
  const local = window !== null && window > 0;
  return makeConfig({
    model_name: modelName,
    n_layers,
    d_model,
    n_heads,
    d_head: headDim !== null && headDim > 0 ? headDim : Math.floor(d_model / n_heads),
    d_mlp: f.num('intermediate_size'),
    d_vocab: f.num('vocab_size'),
    n_ctx: 2048,
    eps: f.num('rms_norm_eps', 1e-6),
    act_fn: mapAct(f.str('hidden_act', 'silu'), 'Mistral'),
    use_local_attn: local,
    window_size: local ? window : null,
    attn_types: local ? new Array<'local'>(n_layers).fill('local') : null,
    n_key_value_heads: f.num('num_key_value_heads', n_heads),
    normalization_type: 'RMS',
    positional_embedding_type: 'rotary',
    rotary_base: f.ropeTheta(),
    gated_mlp: true,
    tie_word_embeddings: f.bool('tie_word_embeddings', false),
    bos_token_id: f.tokenId('bos_token_id'),
    eos_token_id: f.tokenId('eos_token_id'),
    original_architecture: 'MistralForCausalLM',
  });
}

export const mistral: ArchFamily = {
  name: 'mistral',
  architectures: ['MistralForCausalLM'],
  modelTypes: ['mistral'],
  config,
  weights: (sd, cfg) => llamaWeights(sd, cfg, 'Mistral'),
};
