/**
 * OLMo-2 (Olmo2ForCausalLM): a post-norm decoder. Attention and the MLP read the residual stream
 * unnormalized; ln1 (HF post_attention_layernorm) and ln2 (post_feedforward_layernorm) normalize
 * their outputs before hook_attn_out / hook_mlp_out (model/config.ts's isPostNormArch, keyed on
 * original_architecture as in TransformerLens, which therefore refuses fold_ln and centring of
 * writing weights). Queries and keys pass an RMSNorm over the whole projection (attn.q_norm.w
 * [(head_index d_head)], attn.k_norm.w [(kv_head d_head)]) before rotary. RMSNorm, SiLU-gated MLP,
 * full rotary (halves), no biases, untied unembedding.
 *
 * TransformerLens 3.9 has no config conversion for OLMo-2 checkpoints (only fixed configs for
 * allenai/OLMo-2-0425-1B and -1124-7B, both with as many key/value heads as query heads, and a
 * weight converter that assumes so). MechLens maps config.json to those configs' values; with
 * fewer key/value heads (OLMo-2 32B) it runs grouped-query attention, which TransformerLens
 * cannot load and so is not checked against it.
 */
import { makeConfig, type HookedTransformerConfig } from '../model/config.js';
import { convertWeights, copyRule, headsRule, linearRule, zerosRule, type StateDict, type WeightRule } from '../model/hf.js';
import type { Params } from '../model/params.js';
import { kvParamName } from '../model/paramSpecs.js';
import { HfFields, mapAct, type ArchFamily, type HfConfig } from './family.js';

function config(hf: HfConfig, modelName: string): HookedTransformerConfig {
  const f = new HfFields(hf, 'OLMo-2');
  const d_model = f.num('hidden_size');
  const n_heads = f.num('num_attention_heads');
  const kv = f.num('num_key_value_heads', n_heads);
  return makeConfig({
    model_name: modelName,
    n_layers: f.num('num_hidden_layers'),
    d_model,
    n_heads,
    d_head: Math.floor(d_model / n_heads),
    d_mlp: f.num('intermediate_size'),
    d_vocab: f.num('vocab_size'),
    n_ctx: f.num('max_position_embeddings'),
    eps: f.num('rms_norm_eps', 1e-6),
    act_fn: mapAct(f.str('hidden_act', 'silu'), 'OLMo-2'),
    n_key_value_heads: kv !== n_heads ? kv : null,
    normalization_type: 'RMS',
    positional_embedding_type: 'rotary',
    rotary_adjacent_pairs: false,
    rotary_base: f.ropeTheta(),
    gated_mlp: true,
    tie_word_embeddings: f.bool('tie_word_embeddings', false),
    bos_token_id: f.tokenId('bos_token_id'),
    eos_token_id: f.tokenId('eos_token_id'),
    original_architecture: 'Olmo2ForCausalLM',
  });
}

/**
 * model.embed_tokens, model.layers.L.{self_attn.{q,k,v,o}_proj, self_attn.{q,k}_norm,
 * post_attention_layernorm, post_feedforward_layernorm, mlp.{gate,up,down}_proj}, model.norm,
 * lm_head -> TransformerLens params, as its convert_olmo2_weights does.
 */
function weights(sd: StateDict, cfg: HookedTransformerConfig): Params {
  const { d_model: D, n_heads: H, d_head: E, d_vocab: V, d_vocab_out: VO, n_layers } = cfg;
  const KV = cfg.n_key_value_heads ?? H;
  const M = cfg.d_mlp!;
  const heads = (tl: string, hf: string, n: number): WeightRule => headsRule(tl, hf, n, E, D);
  const r: WeightRule[] = [copyRule('embed.W_E', 'model.embed_tokens.weight', [V, D])];
  for (let l = 0; l < n_layers; l++) {
    const h = `model.layers.${l}.`;
    const b = `blocks.${l}.attn.`;
    r.push(
      heads(`${b}W_Q`, `${h}self_attn.q_proj.weight`, H),
      heads(`${b}${kvParamName(cfg, 'W_K')}`, `${h}self_attn.k_proj.weight`, KV),
      heads(`${b}${kvParamName(cfg, 'W_V')}`, `${h}self_attn.v_proj.weight`, KV),
      copyRule(`${b}q_norm.w`, `${h}self_attn.q_norm.weight`, [H * E]),
      copyRule(`${b}k_norm.w`, `${h}self_attn.k_norm.weight`, [KV * E]),
      zerosRule(`${b}b_Q`, H * E), zerosRule(`${b}${kvParamName(cfg, 'b_K')}`, KV * E), zerosRule(`${b}${kvParamName(cfg, 'b_V')}`, KV * E),
      // o_proj.weight [d_model, (head_index d_head)] -> W_O [head_index, d_head, d_model]
      linearRule(`${b}W_O`, `${h}self_attn.o_proj.weight`, D, H * E), zerosRule(`${b}b_O`, D),
      copyRule(`blocks.${l}.ln1.w`, `${h}post_attention_layernorm.weight`, [D]),
      linearRule(`blocks.${l}.mlp.W_in`, `${h}mlp.up_proj.weight`, M, D),
      linearRule(`blocks.${l}.mlp.W_gate`, `${h}mlp.gate_proj.weight`, M, D),
      linearRule(`blocks.${l}.mlp.W_out`, `${h}mlp.down_proj.weight`, D, M),
      zerosRule(`blocks.${l}.mlp.b_in`, M), zerosRule(`blocks.${l}.mlp.b_out`, D),
      copyRule(`blocks.${l}.ln2.w`, `${h}post_feedforward_layernorm.weight`, [D]),
    );
  }
  r.push(copyRule('ln_final.w', 'model.norm.weight', [D]));
  r.push(linearRule('unembed.W_U', cfg.tie_word_embeddings ? 'model.embed_tokens.weight' : 'lm_head.weight', VO, D), zerosRule('unembed.b_U', VO));
  return convertWeights(sd, cfg, r, 'OLMo-2', `model.layers.${n_layers}.post_attention_layernorm.weight`);
}

export const olmo2: ArchFamily = {
  name: 'olmo2',
  architectures: ['Olmo2ForCausalLM'],
  modelTypes: ['olmo2'],
  config,
  weights,
};
