/**
 * GPT-NeoX / Pythia (GPTNeoXForCausalLM): LayerNorm, partial rotary on each head's first
 * rotary_pct·d_head dims in GPT-NeoX's halves layout, attention and MLP in parallel (both read
 * resid_pre; no hook_resid_mid), exact GELU, untied unembedding. TransformerLens prepends no BOS
 * by default for this family.
 */
import { makeConfig, type HookedTransformerConfig } from '../model/config.js';
import { convertWeights, copyRule, firstPresent, linearRule, zerosRule, type StateDict, type WeightRule } from '../model/hf.js';
import type { Params } from '../model/params.js';
import { HfFields, mapAct, type ArchFamily, type HfConfig } from './family.js';

function config(hf: HfConfig, modelName: string): HookedTransformerConfig {
  const f = new HfFields(hf, 'GPT-NeoX');
  const d_model = f.num('hidden_size');
  const n_heads = f.num('num_attention_heads');
  const d_head = Math.floor(d_model / n_heads);
  // transformers 5 moved rotary_pct into rope_parameters.partial_rotary_factor.
  const rp = f.obj('rope_parameters');
  const pct = f.optNum('rotary_pct') ?? f.optNum('partial_rotary_factor') ?? (typeof rp?.['partial_rotary_factor'] === 'number' ? (rp['partial_rotary_factor'] as number) : 1);
  return makeConfig({
    model_name: modelName,
    n_layers: f.num('num_hidden_layers'),
    d_model,
    n_heads,
    d_head,
    d_mlp: f.num('intermediate_size'),
    d_vocab: f.num('vocab_size'),
    n_ctx: f.num('max_position_embeddings'),
    eps: f.num('layer_norm_eps', 1e-5),
    act_fn: mapAct(f.str('hidden_act', 'gelu'), 'GPT-NeoX'),
    normalization_type: 'LN',
    positional_embedding_type: 'rotary',
    rotary_dim: Math.round(pct * d_head),
    // TransformerLens's GPT-NeoX branch keeps the default base (Pythia's rotary_emb_base is 10000).
    rotary_base: 10000,
    rotary_adjacent_pairs: false,
    parallel_attn_mlp: f.bool('use_parallel_residual', true),
    tie_word_embeddings: f.bool('tie_word_embeddings', false),
    bos_token_id: f.tokenId('bos_token_id'),
    eos_token_id: f.tokenId('eos_token_id'),
    original_architecture: 'GPTNeoXForCausalLM',
    default_prepend_bos: false,
  });
}

function weights(sd: StateDict, cfg: HookedTransformerConfig): Params {
  const { d_model: D, n_heads: H, d_head: E, d_vocab: V, d_vocab_out: VO, n_layers } = cfg;
  const M = cfg.d_mlp!;
  const r: WeightRule[] = [copyRule('embed.W_E', 'gpt_neox.embed_in.weight', [V, D])];
  for (let l = 0; l < n_layers; l++) {
    const h = `gpt_neox.layers.${l}.`;
    const b = `blocks.${l}.`;
    r.push(
      copyRule(`${b}ln1.w`, `${h}input_layernorm.weight`, [D]), copyRule(`${b}ln1.b`, `${h}input_layernorm.bias`, [D]),
      {
        // query_key_value.weight [(head_index qkv d_head), d_model] -> W_Q/W_K/W_V [head_index, d_model, d_head]
        // (the fused axis is head-major, unlike GPT-2's qkv-major c_attn).
        from: [{ name: `${h}attention.query_key_value.weight`, dims: [3 * H * E, D] }],
        to: [`${b}attn.W_Q`, `${b}attn.W_K`, `${b}attn.W_V`],
        make: ([w]) => [0, 1, 2].map((q) => {
          const out = new Float32Array(H * D * E);
          for (let i = 0; i < H; i++) for (let j = 0; j < E; j++) {
            const row = ((i * 3 + q) * E + j) * D;
            for (let m = 0; m < D; m++) out[(i * D + m) * E + j] = w![row + m]!;
          }
          return out;
        }),
      },
      {
        from: [{ name: `${h}attention.query_key_value.bias`, dims: [3 * H * E] }],
        to: [`${b}attn.b_Q`, `${b}attn.b_K`, `${b}attn.b_V`],
        make: ([bias]) => [0, 1, 2].map((q) => {
          const out = new Float32Array(H * E);
          for (let i = 0; i < H; i++) out.set(bias!.subarray((i * 3 + q) * E, (i * 3 + q + 1) * E), i * E);
          return out;
        }),
      },
      // dense.weight [d_model, (head_index d_head)] -> W_O [head_index, d_head, d_model]
      linearRule(`${b}attn.W_O`, `${h}attention.dense.weight`, D, H * E), copyRule(`${b}attn.b_O`, `${h}attention.dense.bias`, [D]),
      copyRule(`${b}ln2.w`, `${h}post_attention_layernorm.weight`, [D]), copyRule(`${b}ln2.b`, `${h}post_attention_layernorm.bias`, [D]),
      linearRule(`${b}mlp.W_in`, `${h}mlp.dense_h_to_4h.weight`, M, D), copyRule(`${b}mlp.b_in`, `${h}mlp.dense_h_to_4h.bias`, [M]),
      linearRule(`${b}mlp.W_out`, `${h}mlp.dense_4h_to_h.weight`, D, M), copyRule(`${b}mlp.b_out`, `${h}mlp.dense_4h_to_h.bias`, [D]),
    );
  }
  r.push(copyRule('ln_final.w', 'gpt_neox.final_layer_norm.weight', [D]), copyRule('ln_final.b', 'gpt_neox.final_layer_norm.bias', [D]));
  // transformers >= 5.14 calls the unembedding lm_head, earlier versions embed_out.
  const head = cfg.tie_word_embeddings ? 'gpt_neox.embed_in.weight' : firstPresent(sd, ['embed_out.weight', 'lm_head.weight']);
  r.push(linearRule('unembed.W_U', head, VO, D), zerosRule('unembed.b_U', VO));
  return convertWeights(sd, cfg, r, 'GPT-NeoX', `gpt_neox.layers.${n_layers}.input_layernorm.weight`);
}

export const neox: ArchFamily = {
  name: 'gpt-neox',
  architectures: ['GPTNeoXForCausalLM'],
  modelTypes: ['gpt_neox'],
  config,
  weights,
};
