/**
 * GPT-J (GPTJForCausalLM): attention and MLP in parallel, both reading one LayerNorm of
 * resid_pre (ln_1; TransformerLens gives ln2 the same weights, so ln2's hooks exist and equal
 * ln1's), rotary on each head's first rotary_dim dims in GPT-J's interleaved layout (adjacent
 * pairs (x0, x1), (x2, x3), …), no q/k/v/o biases, a gelu_new MLP with biases, and an unembedding
 * with a bias. As TransformerLens: d_mlp = 4·n_embd and eps = 1e-5 whatever n_inner and
 * layer_norm_epsilon say (GPT-J-6B has n_inner unset and 1e-5), rotary base 10000, BOS prepended.
 */
import { makeConfig, type HookedTransformerConfig } from '../model/config.js';
import { convertWeights, copyRule, headsRule, linearRule, zerosRule, type StateDict, type WeightRule } from '../model/hf.js';
import type { Params } from '../model/params.js';
import { HfFields, mapAct, type ArchFamily, type HfConfig } from './family.js';

function config(hf: HfConfig, modelName: string): HookedTransformerConfig {
  const f = new HfFields(hf, 'GPT-J');
  const d_model = f.num('n_embd');
  const n_heads = f.num('n_head');
  const d_head = Math.floor(d_model / n_heads);
  return makeConfig({
    model_name: modelName,
    n_layers: f.num('n_layer'),
    d_model,
    n_heads,
    d_head,
    d_mlp: 4 * d_model,
    d_vocab: f.num('vocab_size'),
    n_ctx: f.num('n_positions'),
    eps: 1e-5,
    act_fn: mapAct(f.str('activation_function', 'gelu_new'), 'GPT-J'),
    normalization_type: 'LN',
    positional_embedding_type: 'rotary',
    rotary_dim: f.optNum('rotary_dim') ?? d_head,
    rotary_adjacent_pairs: true,
    parallel_attn_mlp: true,
    tie_word_embeddings: f.bool('tie_word_embeddings', false),
    bos_token_id: f.tokenId('bos_token_id'),
    eos_token_id: f.tokenId('eos_token_id'),
    original_architecture: 'GPTJForCausalLM',
  });
}

function weights(sd: StateDict, cfg: HookedTransformerConfig): Params {
  const { d_model: D, n_heads: H, d_head: E, d_vocab: V, d_vocab_out: VO, n_layers } = cfg;
  const M = cfg.d_mlp!;
  const heads = (tl: string, hf: string): WeightRule => headsRule(tl, hf, H, E, D);
  const r: WeightRule[] = [copyRule('embed.W_E', 'transformer.wte.weight', [V, D])];
  for (let l = 0; l < n_layers; l++) {
    const h = `transformer.h.${l}.`;
    const b = `blocks.${l}.`;
    r.push(
      copyRule(`${b}ln1.w`, `${h}ln_1.weight`, [D]), copyRule(`${b}ln1.b`, `${h}ln_1.bias`, [D]),
      // The one LayerNorm serves the MLP too (TransformerLens's ln2 = ln1).
      copyRule(`${b}ln2.w`, `${h}ln_1.weight`, [D]), copyRule(`${b}ln2.b`, `${h}ln_1.bias`, [D]),
      heads(`${b}attn.W_Q`, `${h}attn.q_proj.weight`), heads(`${b}attn.W_K`, `${h}attn.k_proj.weight`), heads(`${b}attn.W_V`, `${h}attn.v_proj.weight`),
      zerosRule(`${b}attn.b_Q`, H * E), zerosRule(`${b}attn.b_K`, H * E), zerosRule(`${b}attn.b_V`, H * E),
      // out_proj.weight [d_model, (head_index d_head)] -> W_O [head_index, d_head, d_model]
      linearRule(`${b}attn.W_O`, `${h}attn.out_proj.weight`, D, H * E), zerosRule(`${b}attn.b_O`, D),
      linearRule(`${b}mlp.W_in`, `${h}mlp.fc_in.weight`, M, D), copyRule(`${b}mlp.b_in`, `${h}mlp.fc_in.bias`, [M]),
      linearRule(`${b}mlp.W_out`, `${h}mlp.fc_out.weight`, D, M), copyRule(`${b}mlp.b_out`, `${h}mlp.fc_out.bias`, [D]),
    );
  }
  r.push(copyRule('ln_final.w', 'transformer.ln_f.weight', [D]), copyRule('ln_final.b', 'transformer.ln_f.bias', [D]));
  if (cfg.tie_word_embeddings) r.push(linearRule('unembed.W_U', 'transformer.wte.weight', VO, D), zerosRule('unembed.b_U', VO));
  else r.push(linearRule('unembed.W_U', 'lm_head.weight', VO, D), copyRule('unembed.b_U', 'lm_head.bias', [VO]));
  return convertWeights(sd, cfg, r, 'GPT-J', `transformer.h.${n_layers}.ln_1.weight`);
}

export const gptj: ArchFamily = {
  name: 'gpt-j',
  architectures: ['GPTJForCausalLM'],
  modelTypes: ['gptj'],
  config,
  weights,
};
