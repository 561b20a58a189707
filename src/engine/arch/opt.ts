/**
 * OPT (OPTForCausalLM): a GPT-2-style block (learned positions, LayerNorm before attention and
 * the MLP, biases on every projection, tied unembedding without a bias) with a ReLU MLP of
 * `ffn_dim` (fc1 / fc2) and nn.Linear projections. OPT stores its positions with an offset of 2:
 * `embed_positions.weight` has max_position_embeddings + 2 rows and position p reads row p + 2,
 * so TransformerLens's W_pos is that table without its first two rows (and position 0 is then
 * row 0, as for GPT-2).
 *
 * TransformerLens 3.9 converts only the pre-LayerNorm layout with word_embed_proj_dim equal to
 * hidden_size (OPT-125m, 1.3b, 2.7b, 6.7b, ...): its converter always reads the final LayerNorm
 * (absent from post-LayerNorm OPT) and every bias and LayerNorm weight, and it has no project_in /
 * project_out. It fails to load OPT-350m (post-LayerNorm on the residual stream, a 512-wide
 * embedding projected to 1024), so there are no TransformerLens numbers for it; MechLens refuses
 * such configs with an error naming the field rather than computing something unchecked.
 */
import { makeConfig, type HookedTransformerConfig } from '../model/config.js';
import { convertWeights, copyRule, firstPresent, headsRule, linearRule, zerosRule, type StateDict, type WeightRule } from '../model/hf.js';
import type { Params } from '../model/params.js';
import { HfFields, mapAct, type ArchFamily, type HfConfig } from './family.js';

/** Rows of embed_positions before position 0 (OPTLearnedPositionalEmbedding's offset). */
const POSITION_OFFSET = 2;

function config(hf: HfConfig, modelName: string): HookedTransformerConfig {
  const f = new HfFields(hf, 'OPT');
  const d_model = f.num('hidden_size');
  const n_heads = f.num('num_attention_heads');
  const refuse = (what: string): never => {
    throw new Error(`config.json says ${what}; MechLens reads OPT checkpoints as TransformerLens 3.9 does, which loads only pre-LayerNorm OPT models with biases, LayerNorm weights and an embedding as wide as hidden_size (OPT-125m, 1.3b, 2.7b and larger, not OPT-350m)`);
  };
  if (f.bool('do_layer_norm_before', true) === false) refuse('"do_layer_norm_before": false (LayerNorm after each sublayer, as OPT-350m)');
  if (f.bool('_remove_final_layer_norm', false)) refuse('"_remove_final_layer_norm": true (no final LayerNorm)');
  const proj = f.optNum('word_embed_proj_dim');
  if (proj !== null && proj !== d_model) refuse(`"word_embed_proj_dim": ${proj}, not hidden_size ${d_model} (an embedding projected in and out)`);
  if (f.bool('enable_bias', true) === false) refuse('"enable_bias": false (projections without biases)');
  if (f.bool('layer_norm_elementwise_affine', true) === false) refuse('"layer_norm_elementwise_affine": false (LayerNorms without weights)');
  return makeConfig({
    model_name: modelName,
    n_layers: f.num('num_hidden_layers'),
    d_model,
    n_heads,
    d_head: Math.floor(d_model / n_heads),
    d_mlp: f.num('ffn_dim'),
    d_vocab: f.num('vocab_size'),
    n_ctx: f.num('max_position_embeddings'),
    // TransformerLens fixes 1e-5, which is nn.LayerNorm's default that OPT uses.
    eps: 1e-5,
    act_fn: mapAct(f.str('activation_function', 'relu'), 'OPT'),
    normalization_type: 'LN',
    tie_word_embeddings: f.bool('tie_word_embeddings', true),
    bos_token_id: f.tokenId('bos_token_id'),
    eos_token_id: f.tokenId('eos_token_id'),
    original_architecture: 'OPTForCausalLM',
  });
}

/**
 * `model.decoder.` for OPTForCausalLM checkpoints; `decoder.` for those saved from OPTModel (the
 * original facebook/opt-* uploads), which transformers loads into OPTForCausalLM as well.
 */
function detectPrefix(sd: StateDict): string {
  const keys = new Set(sd.keys());
  if (keys.has('model.decoder.embed_tokens.weight')) return 'model.decoder.';
  if (keys.has('decoder.embed_tokens.weight')) return 'decoder.';
  return 'model.decoder.';
}

/**
 * {prefix}{embed_tokens, embed_positions}, {prefix}layers.L.{self_attn_layer_norm,
 * self_attn.{q,k,v,out}_proj, final_layer_norm, fc1, fc2}, {prefix}final_layer_norm, lm_head (or
 * the tied embed_tokens) -> TransformerLens params, as its convert_opt_weights does (zero b_U).
 */
function weights(sd: StateDict, cfg: HookedTransformerConfig): Params {
  const { d_model: D, n_heads: H, d_head: E, d_vocab: V, d_vocab_out: VO, n_ctx, n_layers } = cfg;
  const M = cfg.d_mlp!;
  const p = detectPrefix(sd);
  const heads = (tl: string, hf: string): WeightRule => headsRule(tl, hf, H, E, D);
  const r: WeightRule[] = [
    copyRule('embed.W_E', `${p}embed_tokens.weight`, [V, D]),
    {
      // embed_positions.weight [n_ctx + 2, d_model] -> W_pos [n_ctx, d_model]: rows from the offset on.
      from: [{ name: `${p}embed_positions.weight`, dims: [n_ctx + POSITION_OFFSET, D] }],
      to: ['pos_embed.W_pos'],
      make: ([w]) => [w!.slice(POSITION_OFFSET * D)],
    },
  ];
  for (let l = 0; l < n_layers; l++) {
    const h = `${p}layers.${l}.`;
    const b = `blocks.${l}.`;
    r.push(
      copyRule(`${b}ln1.w`, `${h}self_attn_layer_norm.weight`, [D]), copyRule(`${b}ln1.b`, `${h}self_attn_layer_norm.bias`, [D]),
      heads(`${b}attn.W_Q`, `${h}self_attn.q_proj.weight`),
      heads(`${b}attn.W_K`, `${h}self_attn.k_proj.weight`),
      heads(`${b}attn.W_V`, `${h}self_attn.v_proj.weight`),
      // q/k/v_proj.bias [(head_index d_head)] is b_Q/b_K/b_V [head_index, d_head] reshaped.
      copyRule(`${b}attn.b_Q`, `${h}self_attn.q_proj.bias`, [H * E]),
      copyRule(`${b}attn.b_K`, `${h}self_attn.k_proj.bias`, [H * E]),
      copyRule(`${b}attn.b_V`, `${h}self_attn.v_proj.bias`, [H * E]),
      // out_proj.weight [d_model, (head_index d_head)] -> W_O [head_index, d_head, d_model]
      linearRule(`${b}attn.W_O`, `${h}self_attn.out_proj.weight`, D, H * E), copyRule(`${b}attn.b_O`, `${h}self_attn.out_proj.bias`, [D]),
      copyRule(`${b}ln2.w`, `${h}final_layer_norm.weight`, [D]), copyRule(`${b}ln2.b`, `${h}final_layer_norm.bias`, [D]),
      linearRule(`${b}mlp.W_in`, `${h}fc1.weight`, M, D), copyRule(`${b}mlp.b_in`, `${h}fc1.bias`, [M]),
      linearRule(`${b}mlp.W_out`, `${h}fc2.weight`, D, M), copyRule(`${b}mlp.b_out`, `${h}fc2.bias`, [D]),
    );
  }
  r.push(copyRule('ln_final.w', `${p}final_layer_norm.weight`, [D]), copyRule('ln_final.b', `${p}final_layer_norm.bias`, [D]));
  // Tied checkpoints usually omit lm_head.weight (TransformerLens reads the HF model's lm_head, the embedding then).
  const head = cfg.tie_word_embeddings ? firstPresent(sd, ['lm_head.weight', `${p}embed_tokens.weight`]) : 'lm_head.weight';
  r.push(linearRule('unembed.W_U', head, VO, D), zerosRule('unembed.b_U', VO));
  return convertWeights(sd, cfg, r, 'OPT', `${p}layers.${n_layers}.self_attn_layer_norm.weight`);
}

export const opt: ArchFamily = {
  name: 'opt',
  architectures: ['OPTForCausalLM'],
  modelTypes: ['opt'],
  config,
  weights,
};
